// `runctl doctor` against real nats-servers: one with JetStream, one without. A server started
// without -js accepts connections like any other, so only asking JetStream itself tells them apart.
import { type ChildProcess, spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { connect } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { type NatsServer, natsServerBin, startNatsServer } from "../src/nats-server.ts";
import { freePort } from "../src/ports.ts";
import { runctlJson, type Workspace, workspace } from "../src/runctl-cli.ts";

const Doctor = z.object({
  checks: z.array(z.object({ name: z.string(), status: z.string(), detail: z.string() })),
});

let withJs: NatsServer;
let withoutJs: { url: string; child: ChildProcess };

/** A plain nats-server (no -js): ready once it greets a client. */
async function startWithoutJetStream() {
  const port = await freePort("127.0.0.1");
  const child = spawn(natsServerBin(), ["-a", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  // Never leave it listening if the test process ends early.
  process.once("exit", () => child.kill("SIGKILL"));
  const greets = () =>
    new Promise<boolean>((resolve) => {
      const socket = connect({ host: "127.0.0.1", port }, () => {});
      socket.once("data", (d) => {
        socket.destroy();
        resolve(d.toString().startsWith("INFO "));
      });
      socket.once("error", () => resolve(false));
    });
  for (let i = 0; i < 300 && !(await greets()); i++) await delay(100);
  return { url: `nats://127.0.0.1:${port}`, child };
}
let ws: Workspace;

beforeAll(async () => {
  withJs = await startNatsServer();
  withoutJs = await startWithoutJetStream();
  ws = await workspace();
});

afterAll(async () => {
  await withJs?.close();
  withoutJs?.child.kill("SIGTERM");
  if (ws) await rm(ws.home, { recursive: true, force: true });
});

const nats = async (url: string) => {
  const r = await runctlJson(["doctor"], { ...ws, env: { ...ws.env, RUNCTL_NATS_URL: url } });
  return { ...r, check: Doctor.parse(r.doc).checks.find((c) => c.name === "nats") };
};

describe("runctl doctor and NATS", () => {
  it("passes a server with JetStream, warning that it lets anyone in", async () => {
    const r = await nats(withJs.url);
    expect(r.check, r.stderr).toMatchObject({
      status: "warn",
      detail: expect.stringMatching(/JetStream enabled, and accepts clients without credentials/),
    });
  });

  it("fails a server without JetStream, and says how to enable it", async () => {
    const r = await nats(withoutJs.url);
    expect(r.check).toMatchObject({ status: "fail", detail: expect.stringContaining("JetStream does not") });
    expect(r.code).toBe(1);
    expect(JSON.stringify(r.doc)).toContain("nats-server -js");
  });

  it("fails a server that does not answer", async () => {
    const r = await nats(`nats://127.0.0.1:${await freePort("127.0.0.1")}`);
    expect(r.check?.status).toBe("fail");
  });
});
