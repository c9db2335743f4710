// Runtime control over NATS from a machine that does not hold the run's directory: a 2-rank torch
// run started with `runctl local --nats`, steered by `runctl ctl` run from another working
// directory with another RUNCTL_RUNS_DIR; a plain NATS client that sends an oversized command; a
// run that has ended; and a server that wants a user and password given in the URL.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { connectNats, runSubjects } from "@runctl/control";
import { readMeta } from "@runctl/tracker";
import { afterAll, beforeAll, expect, it } from "vitest";
import { z } from "zod";
import { lrChanges } from "../src/lr-trace.ts";
import { startNatsServer } from "../src/nats-server.ts";
import { runctl, runctlJson, startLocalRun, type Workspace, workspace } from "../src/runctl-cli.ts";

const SCRIPT = fileURLToPath(new URL("../fixtures/ddp_control.py", import.meta.url));
const Acks = z.object({
  acks: z.array(
    z.object({ rank: z.number(), status: z.string(), world_size: z.number().optional() }).loose(),
  ),
});
const ErrorDoc = z.object({ success: z.literal(false), error: z.object({ code: z.string() }).loose() });
const Runs = z.object({ runs: z.array(z.object({ id: z.string() }).loose()) }).loose();

/** A one-line script in the workspace's project directory. */
async function hello(ws: Workspace): Promise<string> {
  const path = join(ws.project, "hello.py");
  await writeFile(path, "print('hi')\n");
  return path;
}

let here: Workspace;
let elsewhere: Workspace;
let nats: Awaited<ReturnType<typeof startNatsServer>>;
beforeAll(async () => {
  here = await workspace();
  nats = await startNatsServer();
  // Another machine: its own project directory and runs directory, the server in its environment.
  const other = await workspace();
  const runsDir = join(other.home, "other-runs");
  await mkdir(runsDir);
  elsewhere = { ...other, env: { ...other.env, RUNCTL_RUNS_DIR: runsDir, RUNCTL_NATS_URL: nats.url } };
});
afterAll(async () => {
  await nats?.close();
  await rm(here.home, { recursive: true, force: true });
  await rm(elsewhere.home, { recursive: true, force: true });
});

/** msgpack, written from the spec, for the few types this test sends: what a client in any language does. */
function msgpack(value: unknown): Buffer {
  if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value < 128)
    return Buffer.from([value]);
  if (typeof value === "string") {
    const bytes = Buffer.from(value, "utf8");
    const head = Buffer.alloc(5);
    head[0] = 0xdb;
    head.writeUInt32BE(bytes.length, 1);
    return Buffer.concat([head, bytes]);
  }
  if (Array.isArray(value) && value.length < 16) {
    return Buffer.concat([Buffer.from([0x90 | value.length]), ...value.map(msgpack)]);
  }
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value);
    return Buffer.concat([
      Buffer.from([0x80 | entries.length]),
      ...entries.flatMap(([k, v]) => [msgpack(k), msgpack(v)]),
    ]);
  }
  throw new Error(`not encodable here: ${String(value)}`);
}

it("steers a 2-rank run from a machine without its directory; one oversized command wedges nothing; an ended run is refused at once", async () => {
  const local = await startLocalRun(
    ["--nats", nats.url, "--python", "/usr/bin/python3", "--nproc-per-node", "2", SCRIPT],
    here,
    "polling",
  );
  const { id, runDir } = local;
  // The run records where it listens, without credentials; ctl elsewhere needs only its id.
  expect((await readMeta(runDir)).control).toEqual({ kind: "nats", prefix: "runctl", url: nats.url });

  const first = await runctlJson(
    ["ctl", id, "optimizer.lr.multiplier", "0.5", "--wait", "--timeout", "60"],
    elsewhere,
  );
  expect(first.code, first.stderr).toBe(0);
  const firstAcks = Acks.parse(first.doc).acks;
  expect(firstAcks.map((a) => [a.rank, a.status]).sort()).toEqual([
    [0, "applied"],
    [1, "applied"],
  ]);
  expect(firstAcks.every((a) => a.world_size === 2)).toBe(true);
  // The table lists both ranks.
  const table = await runctl(["ctl", id, "status"], elsewhere);
  expect(table.stdout).toMatch(/applied/);

  // A plain client sends a command over 64 KiB between a signal and the next command.
  const signal = await runctlJson(["ctl", id, "--signal", "SIGCONT", "--wait", "--timeout", "60"], elsewhere);
  expect(signal.code, signal.stderr).toBe(0);
  const nc = await connectNats({ url: nats.url });
  const huge = {
    v: 1,
    id: "huge-command",
    ts: 1,
    op: "set",
    path: "optimizer.lr.multiplier",
    args: ["y".repeat(70_000)],
  };
  await nc.request(runSubjects("runctl", id).commands, msgpack(huge), { timeout: 5_000 });
  await nc.close();
  const after = await runctlJson(
    ["ctl", id, "optimizer.lr.multiplier", "0.5", "--wait", "--timeout", "60"],
    elsewhere,
  );
  expect(after.code, after.stderr).toBe(0);
  expect(Acks.parse(after.doc).acks.filter((a) => a.status === "applied")).toHaveLength(2);

  const stop = await runctlJson(["ctl", id, "run.stop", "--wait", "--timeout", "60"], elsewhere);
  expect(stop.code, stop.stderr).toBe(0);
  const done = await local.result;
  expect(done.code, done.stderr).toBe(0);
  expect((await readMeta(runDir)).status).toBe("completed");

  // Each command reached the file queue once, the oversized one as a blank line (its seq), nothing repeated.
  const lines = (await readFile(join(runDir, "control", "commands.jsonl"), "utf8")).split("\n").slice(0, -1);
  expect(
    lines.map((l) => (l === "" ? "" : ((JSON.parse(l) as { op?: string; path?: string }).path ?? "signal"))),
  ).toEqual(["optimizer.lr.multiplier", "supervisor.signal", "", "optimizer.lr.multiplier", "run.stop"]);
  const history = await runctlJson(["ctl", id, "history"], elsewhere);
  const hugeAck = JSON.stringify(history.doc);
  expect(hugeAck).toContain("huge-command");
  expect(hugeAck).toMatch(/payload_too_large/);
  const fileAcks = (await readFile(join(runDir, "control", "acks.jsonl"), "utf8")).trim().split("\n");
  expect(fileAcks.filter((l) => l.includes('"op":"signal"'))).toHaveLength(1);
  const [r0, r1] = [await lrChanges(runDir, 0), await lrChanges(runDir, 1)];
  expect(r0).toHaveLength(2);
  expect(r1).toEqual(r0);

  // The run has ended: refused at once, from elsewhere (the bridge said so on NATS) and here (meta.json).
  for (const ws of [elsewhere, here]) {
    const late = await runctlJson(
      ["ctl", "--nats", nats.url, id, "optimizer.lr.multiplier", "0.5", "--wait"],
      ws,
    );
    expect(late.code).toBe(1);
    expect(ErrorDoc.parse(late.doc).error.code).toBe("run_ended");
  }
});

it("honours credentials in a NATS URL and never prints or stores the password", async () => {
  const secured = await startNatsServer({ args: ["--user", "alice", "--pass", "s3cr3t-pw"] });
  try {
    const ws = await workspace();
    const url = `nats://alice:s3cr3t-pw@127.0.0.1:${secured.port}`;
    const script = await hello(ws);
    const ok = await runctl(["local", "--nats", url, "--python", "/usr/bin/python3", script], ws);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).not.toMatch(/without credentials/);
    const listed = Runs.parse((await runctlJson(["runs"], ws)).doc).runs;
    const meta = await readFile(join(ws.project, "runs", listed[0]?.id ?? "", "meta.json"), "utf8");
    expect(JSON.parse(meta).control).toEqual({
      kind: "nats",
      prefix: "runctl",
      url: `nats://127.0.0.1:${secured.port}`,
    });
    expect(meta).not.toContain("s3cr3t-pw");

    const wrong = `nats://alice:wr0ng-pw@127.0.0.1:${secured.port}`;
    const refused = await runctl(["local", "--nats", wrong, "--python", "/usr/bin/python3", script], ws);
    expect(refused.code).not.toBe(0);
    expect(`${refused.stdout}${refused.stderr}`).not.toContain("wr0ng-pw");
    const allMeta = await Promise.all(
      Runs.parse((await runctlJson(["runs"], ws)).doc).runs.map((r) =>
        readFile(join(ws.project, "runs", r.id, "meta.json"), "utf8"),
      ),
    );
    for (const m of allMeta) expect(m).not.toContain("wr0ng-pw");

    const doctor = await runctl(["doctor"], { ...ws, env: { ...ws.env, RUNCTL_NATS_URL: url } });
    expect(doctor.stdout).toMatch(/authentication required/);
    expect(`${doctor.stdout}${doctor.stderr}`).not.toContain("s3cr3t-pw");
    const shown = await runctl(["config", "show"], { ...ws, env: { ...ws.env, RUNCTL_NATS_URL: url } });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain("alice:***@");
    expect(shown.stdout).not.toContain("s3cr3t-pw");
    await rm(ws.home, { recursive: true, force: true });
  } finally {
    await secured.close();
  }
});

it("warns at local --nats and ctl --nats that a server without authentication lets anyone steer", async () => {
  const ws = await workspace();
  const run = await runctl(
    ["local", "--nats", nats.url, "--python", "/usr/bin/python3", await hello(ws)],
    ws,
  );
  expect(run.code, run.stderr).toBe(0);
  expect(run.stderr).toMatch(/accepts clients without credentials/);
  const ctl = await runctl(["ctl", "--nats", nats.url, "no-such-run-anywhere", "controls"], ws);
  expect(ctl.stderr).toMatch(/accepts clients without credentials/);
  const doctor = await runctl(["doctor"], { ...ws, env: { ...ws.env, RUNCTL_NATS_URL: nats.url } });
  expect(doctor.stdout).toMatch(/accepts clients without credentials/);
  await rm(ws.home, { recursive: true, force: true });
});
