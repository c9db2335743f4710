// `runctl doctor` against real nats-servers: one with JetStream, one without. A server started
// without -js accepts connections like any other, so only asking JetStream itself tells them apart.
// And whether a server lets anyone in: not one in JWT (operator) mode, but one with users that
// admits clients without credentials as its default user (no_auth_user, which the server
// advertises as not requiring authentication); `runctl local --nats` warns likewise.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { type NatsServer, natsServerBin, startNatsServer } from "../src/nats-server.ts";
import { freePort } from "../src/ports.ts";
import { runctl, runctlJson, type Workspace, workspace } from "../src/runctl-cli.ts";

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
let jwtMode: NatsServer;
let defaultUser: NatsServer;
let configDir: string;

beforeAll(async () => {
  withJs = await startNatsServer();
  withoutJs = await startWithoutJetStream();
  ws = await workspace();
  jwtMode = await startNatsServer({ jwt: true });
  configDir = await mkdtemp(join(tmpdir(), "runctl-nats-conf-"));
  const conf = join(configDir, "default-user.conf");
  // Authentication "required", but a client without credentials becomes alice.
  await writeFile(
    conf,
    'authorization { users = [ { user: "alice", password: "s3cr3t-pw" } ] }\nno_auth_user: "alice"\n',
  );
  defaultUser = await startNatsServer({ args: ["-c", conf] });
});

afterAll(async () => {
  await jwtMode?.close();
  await defaultUser?.close();
  if (configDir) await rm(configDir, { recursive: true, force: true });
  await withJs?.close();
  withoutJs?.child.kill("SIGTERM");
  if (ws) await rm(ws.home, { recursive: true, force: true });
});

const nats = async (url: string, env: NodeJS.ProcessEnv = {}) => {
  const r = await runctlJson(["doctor"], { ...ws, env: { ...ws.env, RUNCTL_NATS_URL: url, ...env } });
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

  it("passes a server in JWT mode reached with a user's credentials, without a warning", async () => {
    const creds = jwtMode.jwt?.userCredsFile ?? "";
    const r = await nats(jwtMode.url, { RUNCTL_NATS_CREDS: creds });
    expect(r.check, r.stderr).toMatchObject({
      status: "ok",
      detail: expect.stringMatching(/answers \(authentication required\), JetStream enabled/),
    });
    // Without the credentials it is refused, and doctor says so.
    const refused = await nats(jwtMode.url);
    expect(refused.check?.status).toBe("fail");
    expect(refused.check?.detail).toMatch(/refused the credentials: Authorization Violation/);
  });

  it("warns about a server with users that lets clients without credentials in as a default user", async () => {
    const r = await nats(`nats://alice:s3cr3t-pw@127.0.0.1:${defaultUser.port}`);
    expect(r.check, r.stderr).toMatchObject({
      status: "warn",
      detail: expect.stringMatching(/JetStream enabled, and accepts clients without credentials/),
    });
    expect(JSON.stringify(r.doc)).not.toContain("s3cr3t-pw");
  });

  it("local --nats warns about a server that lets anyone in, and not about one in JWT mode", async () => {
    const script = join(ws.project, "hello.py");
    await writeFile(script, "print('hi')\n");
    const local = (url: string, env: NodeJS.ProcessEnv = {}) =>
      runctl(["local", "--nats", url, "--python", "/usr/bin/python3", script], {
        ...ws,
        env: { ...ws.env, ...env },
      });
    const jwt = await local(jwtMode.url, { RUNCTL_NATS_CREDS: jwtMode.jwt?.userCredsFile ?? "" });
    expect(jwt.code, jwt.stderr).toBe(0);
    expect(jwt.stderr).not.toMatch(/without credentials/);
    const open = await local(`nats://alice:s3cr3t-pw@127.0.0.1:${defaultUser.port}`);
    expect(open.code, open.stderr).toBe(0);
    expect(open.stderr).toMatch(
      /accepts clients without credentials: anyone who can reach it can steer any run/,
    );
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
