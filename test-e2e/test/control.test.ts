import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readMeta } from "@runctl/tracker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { runctlJson, startLocalRun, type Workspace, workspace } from "../src/runctl-cli.ts";

const SCRIPT = fileURLToPath(new URL("../fixtures/ddp_control.py", import.meta.url));
const TRAP = fileURLToPath(new URL("../fixtures/signal_trap.py", import.meta.url));
const Acks = z.object({
  acks: z.array(
    z.object({ rank: z.number(), status: z.string(), error: z.string().optional() }).passthrough(),
  ),
});

let ws: Workspace;
beforeAll(async () => {
  ws = await workspace();
});
afterAll(async () => {
  await rm(ws.home, { recursive: true, force: true });
});

describe("runctl ctl", () => {
  it("changes the learning rate of both ranks at the same step, with an ack from each", async () => {
    const local = await startLocalRun(
      ["--python", "/usr/bin/python3", "--nproc-per-node", "2", SCRIPT],
      ws,
      "polling",
    );
    const { id, runDir } = local;

    const controls = await runctlJson(["ctl", id, "controls"], ws);
    expect(JSON.stringify(controls.doc)).toContain("optimizer.lr.multiplier");

    const unknown = await runctlJson(["ctl", id, "optimizer.lr.multipler", "0.5"], ws);
    expect(unknown.code).toBe(1);
    expect(unknown.doc).toMatchObject({ success: false, error: { code: "unknown_control" } });

    const invalid = await runctlJson(["ctl", id, "optimizer.lr.multiplier", "-1", "--wait"], ws);
    expect(invalid.code).toBe(1);
    expect(invalid.doc).toMatchObject({ success: false, error: { code: "command_not_applied" } });

    const set = await runctlJson(["ctl", id, "optimizer.lr.multiplier", "0.5", "--wait"], ws);
    expect(set.code, set.stderr).toBe(0);
    const acks = Acks.parse(set.doc).acks;
    expect(acks.map((a) => [a.rank, a.status]).sort()).toEqual([
      [0, "applied"],
      [1, "applied"],
    ]);

    const stop = await runctlJson(["ctl", id, "run.stop", "--wait"], ws);
    expect(stop.code, stop.stderr).toBe(0);
    const done = await local.result;
    expect(done.code, done.stderr).toBe(0);
    expect((await readMeta(runDir)).status).toBe("completed");

    const firstHalved = async (rank: number) => {
      const lines = (await readFile(join(runDir, `lr.rank${rank}.jsonl`), "utf8")).trim().split("\n");
      const points = lines.map((l) => z.object({ step: z.number(), lr: z.number() }).parse(JSON.parse(l)));
      expect(points[0]?.lr).toBeCloseTo(0.1);
      return points.find((p) => Math.abs(p.lr - 0.05) < 1e-9)?.step;
    };
    const [step0, step1] = [await firstHalved(0), await firstHalved(1)];
    expect(step0).toBeGreaterThan(0);
    expect(step1).toBe(step0);

    const history = await runctlJson(["ctl", id, "history"], ws);
    expect(JSON.stringify(history.doc)).toContain('"path":"optimizer.lr.multiplier"');
  });

  it("asks the supervisor to signal every rank (--signal), and stops the run with SIGTERM", async () => {
    const local = await startLocalRun(
      ["--python", "/usr/bin/python3", "--nproc-per-node", "2", TRAP],
      ws,
      "ready",
    );
    const { id, runDir } = local;

    const usr1 = await runctlJson(["ctl", id, "--signal", "USR1", "--wait"], ws);
    expect(usr1.code, usr1.stderr).toBe(0);
    expect(usr1.doc).toMatchObject({
      success: true,
      acks: [{ rank: -1, status: "applied", value: "SIGUSR1" }],
    });
    const bogus = await runctlJson(["ctl", id, "--signal", "SIGFOO", "--wait"], ws);
    expect(bogus.code).toBe(1);
    expect(bogus.doc).toMatchObject({ success: false, error: { code: "command_not_applied" } });

    const term = await runctlJson(["ctl", id, "--signal", "SIGTERM", "--wait"], ws);
    expect(term.code, term.stderr).toBe(0);
    const done = await local.result;
    expect(done.code).toBe(143);
    expect((await readMeta(runDir)).status).toBe("cancelled");
    const received = (await readFile(join(runDir, "signals.txt"), "utf8")).trim().split("\n").sort();
    expect(received).toEqual(["SIGTERM", "SIGTERM", "SIGUSR1", "SIGUSR1"]);
  });

  it("works on a bare runtimectl queue directory and reports missing acks", async () => {
    const queue = join(ws.home, "queue");
    const sent = await runctlJson(
      ["ctl", "-q", queue, "model.dropout", "0.2", "--kwargs", '{"layer": 3}'],
      ws,
    );
    expect(sent.doc).toMatchObject({
      success: true,
      command: { path: "model.dropout", args: [0.2], kwargs: { layer: 3 }, seq: 0 },
    });
    const line = JSON.parse((await readFile(join(queue, "commands.jsonl"), "utf8")).trim());
    expect(line).toMatchObject({ op: "set", path: "model.dropout", args: [0.2], kwargs: { layer: 3 } });
    const waited = await runctlJson(
      ["ctl", "-q", queue, "model.dropout", "0.3", "--wait", "--timeout", "1"],
      ws,
    );
    expect(waited.code).toBe(1);
    expect(waited.doc).toMatchObject({ success: false, error: { code: "ack_timeout" } });
  });
});
