import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { readMeta } from "@runctl/tracker";
import { afterAll, beforeAll, expect, it } from "vitest";
import { z } from "zod";
import { lrChanges } from "../src/lr-trace.ts";
import { startNatsServer } from "../src/nats-server.ts";
import { runctlJson, startLocalRun, startRunctl, type Workspace, workspace } from "../src/runctl-cli.ts";

const SCRIPT = fileURLToPath(new URL("../fixtures/ddp_control.py", import.meta.url));
const Acks = z.object({ acks: z.array(z.object({ rank: z.number(), status: z.string() }).passthrough()) });

let ws: Workspace;
let nats: Awaited<ReturnType<typeof startNatsServer>>;
beforeAll(async () => {
  ws = await workspace();
  nats = await startNatsServer();
});
afterAll(async () => {
  await nats?.close();
  await rm(ws.home, { recursive: true, force: true });
});

it("steers a 2-rank torch run through NATS, across a nats-server restart", async () => {
  const url = nats.url;
  const local = await startLocalRun(
    ["--nats", url, "--python", "/usr/bin/python3", "--nproc-per-node", "2", SCRIPT],
    ws,
    "polling",
  );
  const { id, runDir } = local;

  // Controls reach NATS through the bridge.
  let listed = "";
  for (let i = 0; i < 50 && !listed.includes("optimizer.lr.multiplier"); i++) {
    listed = JSON.stringify((await runctlJson(["ctl", "--nats", url, id, "controls"], ws)).doc);
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(listed).toContain("optimizer.lr.multiplier");

  const first = await runctlJson(["ctl", "--nats", url, id, "optimizer.lr.multiplier", "0.5", "--wait"], ws);
  expect(first.code, first.stderr).toBe(0);
  expect(
    Acks.parse(first.doc)
      .acks.map((a) => [a.rank, a.status])
      .sort(),
  ).toEqual([
    [0, "applied"],
    [1, "applied"],
  ]);

  await nats.stop();
  const during = startRunctl(
    ["ctl", "--nats", url, id, "optimizer.lr.multiplier", "0.5", "--wait", "--timeout", "90", "--json"],
    ws,
  );
  await new Promise((r) => setTimeout(r, 1500));
  await nats.start();
  const second = await during.result;
  expect(second.code, `${second.stdout}\n${second.stderr}`).toBe(0);
  expect(Acks.parse(JSON.parse(second.stdout)).acks.filter((a) => a.status === "applied")).toHaveLength(2);

  const stop = await runctlJson(["ctl", "--nats", url, id, "run.stop", "--wait", "--timeout", "60"], ws);
  expect(stop.code, stop.stderr).toBe(0);
  const done = await local.result;
  expect(done.code, done.stderr).toBe(0);
  expect((await readMeta(runDir)).status).toBe("completed");

  // Both ranks changed their learning rate twice (0.1 → 0.05 → 0.025), at the same steps.
  const [r0, r1] = [await lrChanges(runDir, 0), await lrChanges(runDir, 1)];
  expect(r0).toHaveLength(2);
  expect(r1).toEqual(r0);
  const history = await runctlJson(["ctl", "--nats", url, id, "history"], ws);
  expect(JSON.stringify(history.doc).match(/optimizer\.lr\.multiplier/g)?.length).toBe(2);
});
