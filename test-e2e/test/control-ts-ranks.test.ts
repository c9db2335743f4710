// Four TypeScript ranks (`runctl exec --nproc-per-node 4 -- node rank.mjs`),
// each polling the run's queue at its own pace, steered over NATS through the
// supervisor's bridge: every rank applies the same commands, in the same order,
// once each, and acks each one.
import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { z } from "zod";
import { startNatsServer } from "../src/nats-server.ts";
import { runctlJson, startLocalRun, type Workspace, waitFor, workspace } from "../src/runctl-cli.ts";

const RANK = fileURLToPath(new URL("../fixtures/ts_rank.mjs", import.meta.url));
const RANKS = 4;
const Sent = z.object({
  command: z.object({ id: z.string() }).passthrough(),
  acks: z.array(z.object({ rank: z.number(), status: z.string() }).passthrough()),
});
const Applied = z.object({ id: z.string(), status: z.string(), lr: z.number() });

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

it("4 TypeScript ranks at different paces apply the same commands in one order", async () => {
  const run = await startLocalRun(
    ["--nats", nats.url, "--nproc-per-node", String(RANKS), process.execPath, RANK],
    ws,
  );
  await waitFor(
    () =>
      Array.from({ length: RANKS }, (_, r) => existsSync(join(run.runDir, `ready.rank${r}`))).every(Boolean),
    "every rank to start",
  );
  const ids: string[] = [];
  for (const mult of [0.5, 2, 0.25]) {
    const r = await runctlJson(
      ["ctl", "--nats", nats.url, run.id, "optimizer.lr.multiplier", String(mult), "--wait"],
      ws,
    );
    expect(r.code, r.stderr).toBe(0);
    const { command, acks } = Sent.parse(r.doc);
    expect(acks.map((a) => a.rank).sort()).toEqual([0, 1, 2, 3]);
    expect(acks.every((a) => a.status === "applied")).toBe(true);
    ids.push(command.id);
  }
  const stop = await runctlJson(["ctl", "--nats", nats.url, run.id, "run.stop", "--wait"], ws);
  expect(stop.code, stop.stderr).toBe(0);
  const done = await run.result;
  expect(done.code, done.stderr).toBe(0);

  for (let rank = 0; rank < RANKS; rank++) {
    const lines = (await readFile(join(run.runDir, `applied.rank${rank}.jsonl`), "utf8")).trim().split("\n");
    const applied = lines.map((l) => Applied.parse(JSON.parse(l)));
    const steering = applied.filter((a) => ids.includes(a.id));
    expect(steering.map((a) => a.id)).toEqual(ids);
    expect(steering.map((a) => a.lr)).toEqual([0.05, 0.1, 0.025]);
  }
});
