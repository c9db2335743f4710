// `runctl runs`, `show`, `compare` and `export`, run as the built binary on real run directories.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { RunMeta } from "@runctl/core";
import { RunWriter } from "@runctl/tracker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { runctl, type Sandbox, sandbox } from "./run-cli.ts";

const Failure = z.object({
  success: z.literal(false),
  error: z.object({
    code: z.string(),
    message: z.string(),
    hint: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});
const RunsOut = z.object({ success: z.literal(true), runs: z.array(RunMeta) });
const ShowOut = z.object({
  success: z.literal(true),
  run: RunMeta,
  config: z.record(z.string(), z.unknown()),
  metrics: z.object({
    count: z.number(),
    last: z.record(z.string(), z.unknown()).nullable(),
    series: z
      .object({ name: z.string(), points: z.array(z.object({ step: z.number(), value: z.number() })) })
      .optional(),
  }),
  attempts: z.array(z.object({ number: z.number(), status: z.string() }).passthrough()),
});
const CompareOut = z.object({
  success: z.literal(true),
  runs: z.array(z.string()),
  config: z.record(z.string(), z.record(z.string(), z.unknown())),
  differing: z.array(z.string()),
  metrics: z.record(z.string(), z.record(z.string(), z.unknown())),
  best: z.record(z.string(), z.string()),
});
const ExportOut = z.object({
  success: z.literal(true),
  path: z.string(),
  runs: z.number(),
  columns: z.array(z.string()),
});

// Ids dated 2020 so that the corrupt run, whose listed start time comes from its id, is the oldest.
const A = "20200101-120000-aaaaa1"; // completed, baseline
const B = "20200101-120000-aaaab2"; // failed, shares a prefix with A
const LOST = "20200102-090000-bbbbb1"; // "running", but its writer pid is dead
const CORRUPT = "20200103-000000-ccccc1"; // meta.json is not JSON
const LIVE = "20200104-000000-ddddd1"; // running, written by this test process
const NOTE = 'lr, "warm"\nrestarts';
const CORRUPT_META = '{"id": "20200103-000000-ccccc1", "name": "half-writ';

let box: Sandbox;
let live: RunWriter;
const T0 = Date.now();
const minutesAgo = (m: number) => new Date(T0 - m * 60_000);
const cli = (args: string[], cwd = box.project) => runctl(args, { cwd, env: box.env });
const ok = async (args: string[]) => {
  const r = await cli(args);
  expect(r.code, r.stderr).toBe(0);
  return r;
};
const fail = async (args: string[]) => {
  const r = await cli([...args, "--json"]);
  expect(r.code, r.stdout).toBe(1);
  return Failure.parse(JSON.parse(r.stdout)).error;
};
const json = async <T>(schema: z.ZodType<T>, args: string[]): Promise<T> =>
  schema.parse(JSON.parse((await ok([...args, "--json"])).stdout));

/** A pid that certainly belonged to a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", ""]);
  expect(child.status).toBe(0);
  return child.pid;
}

beforeAll(async () => {
  box = await sandbox();
  const runsDir = join(box.project, "runs");

  const a = RunWriter.create({
    runsDir,
    id: A,
    name: "baseline",
    tags: ["base", "sweep"],
    config: { lr: 0.01, optimizer: { name: "adam", betas: [0.9, 0.999] }, note: NOTE },
    command: ["python", "train.py", "--lr", "0.01"],
    meta: { git: { commit: "abcdef0123456789", short_hash: "abcdef0", branch: "main", dirty: true } },
    now: minutesAgo(120),
  });
  for (let step = 0; step < 50; step++) a.appendMetrics({ loss: 2 / (step + 1), acc: step / 50 }, step * 10);
  a.setSummary({ best_acc: 0.98, wer: 0.2, answer_acc: 0.7 });
  a.finish("completed", { exitCode: 0, now: minutesAgo(117) });

  const b = RunWriter.create({
    runsDir,
    id: B,
    name: "high-lr",
    tags: ["sweep"],
    config: { lr: 0.1, optimizer: { name: "adam", betas: [0.9, 0.999] }, warmup: 100 },
    now: minutesAgo(90),
  });
  for (let step = 0; step < 5; step++) b.appendMetrics({ loss: 3 - step * 0.1, acc: 0.5 }, step);
  b.setSummary({ wer: 0.3, answer_acc: 0.8 });
  b.finish("failed", { exitCode: 1, error: "exit code 1\nValueError: loss is nan", now: minutesAgo(89) });

  RunWriter.create({
    runsDir,
    id: LOST,
    name: "lost",
    config: { lr: 0.05 },
    pid: deadPid(),
    now: minutesAgo(60),
  }).close();

  RunWriter.create({ runsDir, id: CORRUPT, name: "corrupt" }).close();
  await writeFile(join(runsDir, CORRUPT, "meta.json"), CORRUPT_META);

  live = RunWriter.create({ runsDir, id: LIVE, name: "live", tags: ["live"], config: { lr: 0.02 } });
  live.appendMetrics({ val_loss: 1.5 });
  // Keeps the run alive for the readers however long the suite takes.
  live.startHeartbeat(2_000);
});

afterAll(() => live?.close());

describe("runctl runs", { timeout: 60_000 }, () => {
  it("lists every run newest first, with effective statuses and key metrics", async () => {
    const r = await ok(["runs"]);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+NAME\s+STATUS\s+STARTED\s+DURATION\s+METRICS\s+TAGS$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual([LIVE, LOST, B, A, CORRUPT]);
    const row = (id: string) => lines.find((l) => l.startsWith(id)) ?? "";
    expect(row(A)).toMatch(/baseline\s+completed\s+2h ago\s+3m00s\s+best_acc=0\.98 wer=0\.2\s+base,sweep$/);
    // Summary has two numbers for A; B has them too; the live run falls back to its latest metrics.
    expect(row(LIVE)).toMatch(/live\s+running\s+.+\s+val_loss=1\.5\s+live$/);
    expect(row(LOST)).toMatch(/lost\s+failed\s+1h ago/);
    expect(row(CORRUPT)).toMatch(new RegExp(`^${CORRUPT}\\s+${CORRUPT}\\s+failed`));
    expect(r.stderr).toBe("");
  });

  it("--json returns meta.json objects with the effective status", async () => {
    const { runs } = await json(RunsOut, ["runs"]);
    const byId = new Map(runs.map((m) => [m.id, m]));
    expect(runs.map((m) => m.id)).toEqual([LIVE, LOST, B, A, CORRUPT]);
    expect(byId.get(A)).toMatchObject({
      status: "completed",
      tags: ["base", "sweep"],
      summary: { best_acc: 0.98 },
    });
    expect(byId.get(LIVE)?.status).toBe("running");
    expect(byId.get(LOST)?.status).toBe("failed");
    expect(byId.get(LOST)?.error).toMatch(/^lost: writer pid \d+ on .+ is not running$/);
    expect(byId.get(CORRUPT)?.status).toBe("failed");
    expect(byId.get(CORRUPT)?.error).toMatch(/^corrupt meta\.json: /);
    // Reading never repairs or rewrites.
    expect(await readFile(join(box.project, "runs", CORRUPT, "meta.json"), "utf8")).toBe(CORRUPT_META);
    const lost = JSON.parse(await readFile(join(box.project, "runs", LOST, "meta.json"), "utf8")) as RunMeta;
    expect(lost.status).toBe("running");
  });

  it("filters by status (repeatable, comma-separated), tag and last", async () => {
    const ids = async (...args: string[]) => (await json(RunsOut, ["runs", ...args])).runs.map((m) => m.id);
    expect(await ids("--status", "completed")).toEqual([A]);
    expect(await ids("--status", "failed")).toEqual([LOST, B, CORRUPT]);
    expect(await ids("--status", "running", "--status", "completed")).toEqual([LIVE, A]);
    expect(await ids("--status", "running,completed")).toEqual([LIVE, A]);
    expect(await ids("--tag", "sweep")).toEqual([B, A]);
    expect(await ids("--tag", "sweep", "--tag", "base")).toEqual([A]);
    expect(await ids("--last", "2")).toEqual([LIVE, LOST]);
    expect(await ids("--status", "failed", "--last", "1")).toEqual([LOST]);
  });

  it("rejects an unknown status, listing the valid ones", async () => {
    const error = await fail(["runs", "--status", "finished"]);
    expect(error.code).toBe("bad_status");
    expect(error.message).toContain('"finished"');
    expect(error.hint).toContain("pending, provisioning, running, completed, failed, cancelled, preempted");
    const human = await cli(["runs", "--status", "finished"]);
    expect(human.code).toBe(1);
    expect(human.stdout).toBe("");
  });

  it("says how to start a run when there is none, on stderr", async () => {
    const empty = await sandbox();
    const r = await runctl(["runs", "--json"], { cwd: empty.project, env: empty.env });
    expect(r.code, r.stderr).toBe(0);
    expect(RunsOut.parse(JSON.parse(r.stdout)).runs).toEqual([]);
    expect(r.stderr).toContain("runctl local train.py");
    const human = await runctl(["runs"], { cwd: empty.project, env: empty.env });
    expect(human.stdout).toBe("");
    expect(human.stderr).toContain("runctl local train.py");
    const filtered = await cli(["runs", "--tag", "nope"]);
    expect(filtered.stderr).toMatch(/No runs in .* match the filters/);
  });

  it("follows RUNCTL_RUNS_DIR", async () => {
    const r = await runctl(["runs", "--json"], {
      cwd: box.home,
      env: { ...box.env, RUNCTL_RUNS_DIR: join(box.project, "runs") },
    });
    expect(RunsOut.parse(JSON.parse(r.stdout)).runs).toHaveLength(5);
  });
});

describe("runctl show", { timeout: 60_000 }, () => {
  it("shows a run found by a unique prefix, with a chart of loss", async () => {
    const r = await ok(["show", "20200101-120000-aaaaa"]);
    const out = r.stdout;
    expect(out).toMatch(new RegExp(`^id\\s+${A}\n`));
    expect(out).toMatch(/\nname\s+baseline\n/);
    expect(out).toMatch(/\nstatus\s+completed\n/);
    expect(out).toMatch(/\nduration\s+3m00s\n/);
    expect(out).toMatch(/\nattempts\s+#1\s+completed\s+\S+\s+ran 3m00s\s+exit 0\n/);
    expect(out).toMatch(/\ncommand\s+python train\.py --lr 0\.01\n/);
    expect(out).toMatch(/\ntags\s+base, sweep\n/);
    expect(out).toMatch(/\ngit\s+abcdef0 on main \(dirty\)\n/);
    expect(out).toMatch(
      /\nconfig\n\s+lr\s+0\.01\n\s+optimizer\.name\s+adam\n\s+optimizer\.betas\s+\[0\.9,0\.999\]\n/,
    );
    expect(out).toMatch(/\nsummary\n\s+best_acc\s+0\.98\n/);
    expect(out).toMatch(
      /\nlast metrics \(step 490, _idx 49, 50 records, at [^)]+\)\n\s+loss\s+0\.04\n\s+acc\s+0\.98\n/,
    );
    expect(out).toContain("loss over steps: min 0.04 at step 490, max 2 at step 0, last 0.04 (50 points)");
    const chart = out.slice(out.indexOf("loss over steps"));
    const rows = chart
      .split("\n")
      .slice(1)
      .filter((l) => l.includes("|"));
    expect(rows).toHaveLength(10);
    expect(rows[0]).toMatch(/^\s+2 \|\*/);
    expect(rows[9]).toMatch(/^\s+0\.04 \|.*\*$/);
    expect(chart).toMatch(/\+-{50}\n\s+0\s+490\n/);
    // ASCII only, so any terminal can show it.
    expect(/^[\x20-\x7e\n]*$/.test(chart)).toBe(true);
  });

  it("--json returns meta, config, metrics with the charted series, and attempts", async () => {
    const out = await json(ShowOut, ["show", A]);
    expect(out.run).toMatchObject({ id: A, status: "completed", name: "baseline" });
    expect(out.config).toEqual({ lr: 0.01, optimizer: { name: "adam", betas: [0.9, 0.999] }, note: NOTE });
    expect(out.metrics.count).toBe(50);
    expect(out.metrics.last).toMatchObject({ _idx: 49, step: 490, loss: 0.04, acc: 0.98 });
    expect(out.metrics.series?.name).toBe("loss");
    expect(out.metrics.series?.points).toHaveLength(50);
    expect(out.metrics.series?.points[1]).toEqual({ step: 10, value: 1 });
    expect(out.attempts).toEqual([expect.objectContaining({ number: 1, status: "completed", exit_code: 0 })]);
  });

  it("--metric picks the charted metric, --lines its height; an unknown metric is an error", async () => {
    const acc = await json(ShowOut, ["show", A, "--metric", "acc"]);
    expect(acc.metrics.series?.name).toBe("acc");
    const short = await ok(["show", A, "--metric", "acc", "--lines", "4"]);
    expect(short.stdout).toContain("acc over steps: min 0 at step 0, max 0.98 at step 490");
    expect(short.stdout.split("\n").filter((l) => / \|/.test(l))).toHaveLength(4);
    const none = await ok(["show", A, "--lines", "0"]);
    expect(none.stdout).not.toContain(" |");
    const error = await fail(["show", A, "--metric", "bleu"]);
    expect(error.code).toBe("metric_not_found");
    expect(error.hint).toContain("loss, acc");
  });

  it("shows why a failed run failed, and a lost run as failed", async () => {
    const failed = await ok(["show", B]);
    expect(failed.stdout).toMatch(/\nstatus\s+failed\nerror\s+exit code 1\n\s+ValueError: loss is nan\n/);
    expect(failed.stdout).toMatch(/\nexit code\s+1\n/);
    const lost = await ok(["show", "20200102"]);
    expect(lost.stdout).toMatch(/\nstatus\s+failed\nerror\s+lost: writer pid \d+ on .+ is not running\n/);
    expect(lost.stdout).toMatch(/\nmetrics\s+\(none logged\)\n/);
    const lostJson = await json(ShowOut, ["show", LOST]);
    expect(lostJson.run.status).toBe("failed");
    expect(lostJson.metrics).toEqual({ count: 0, last: null });
  });

  it("answers an unknown id with run_not_found and an ambiguous prefix with run_ambiguous", async () => {
    const missing = await fail(["show", "19990101"]);
    expect(missing.code).toBe("run_not_found");
    expect(missing.hint).toContain("runctl runs");
    const ambiguous = await fail(["show", "20200101-120000-aaaa"]);
    expect(ambiguous.code).toBe("run_ambiguous");
    expect(ambiguous.message).toContain(A);
    expect(ambiguous.message).toContain(B);
  });

  it("refuses a corrupt meta.json with run_meta_corrupt and leaves the file as it was", async () => {
    const file = join(box.project, "runs", CORRUPT, "meta.json");
    const before = await readFile(file);
    const error = await fail(["show", CORRUPT]);
    expect(error.code).toBe("run_meta_corrupt");
    expect(error.message).toContain(file);
    const human = await cli(["show", CORRUPT]);
    expect(human.code).toBe(1);
    expect(human.stderr).toMatch(/^Error: Run metadata .* is corrupt[\s\S]*Hint: /);
    expect((await readFile(file)).equals(before)).toBe(true);
  });
});

describe("runctl compare", { timeout: 60_000 }, () => {
  it("--json lines configs up by dotted key and picks the best metric per row", async () => {
    const out = await json(CompareOut, ["compare", A, "20200101-120000-aaaab"]);
    expect(out.runs).toEqual([A, B]);
    expect(out.config).toEqual({
      lr: { [A]: 0.01, [B]: 0.1 },
      note: { [A]: NOTE },
      "optimizer.betas": { [A]: [0.9, 0.999], [B]: [0.9, 0.999] },
      "optimizer.name": { [A]: "adam", [B]: "adam" },
      warmup: { [B]: 100 },
    });
    expect(out.differing).toEqual(["lr", "note", "warmup"]);
    expect(out.metrics).toEqual({
      acc: { [A]: 0.98, [B]: 0.5 },
      answer_acc: { [A]: 0.7, [B]: 0.8 },
      best_acc: { [A]: 0.98 },
      loss: { [A]: 0.04, [B]: 2.6 },
      wer: { [A]: 0.2, [B]: 0.3 },
    });
    // Lower wins for loss and wer; higher for acc, and for answer_acc although it contains "wer".
    expect(out.best).toEqual({ acc: A, answer_acc: B, loss: A, wer: A });
  });

  it("prints config differences marked with * and best values marked, without colour in a pipe", async () => {
    const r = await ok(["compare", A, B, LOST]);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toMatch(/^RUN\s+NAME\s+STATUS$/);
    expect(lines.some((l) => /^\*\s+lr\s+0\.01\s+0\.1\s+0\.05$/.test(l))).toBe(true);
    expect(lines.some((l) => /^\s+optimizer\.name\s+adam\s+adam\s+-$/.test(l))).toBe(false);
    expect(lines.some((l) => /^\*\s+optimizer\.name\s+adam\s+adam\s+-$/.test(l))).toBe(true);
    expect(lines.some((l) => /^loss\s+0\.04 \*\s+2\.6\s+-$/.test(l))).toBe(true);
    expect(lines.some((l) => /^acc\s+0\.98 \*\s+0\.5\s+-$/.test(l))).toBe(true);
    expect(r.stdout).toContain("lowest for loss/error/perplexity/wer");
    expect(r.stdout).not.toContain("\u001b[");
  });

  it("needs two different runs", async () => {
    expect((await fail(["compare", A])).code).toBe("compare_too_few_runs");
    expect((await fail(["compare", A, "20200101-120000-aaaaa1"])).code).toBe("compare_too_few_runs");
    expect((await fail(["compare"])).code).toBe("compare_too_few_runs");
    expect((await fail(["compare", A, "nope"])).code).toBe("run_not_found");
  });
});

/** RFC 4180: quoted fields may hold commas, doubled quotes and line breaks; records end with CRLF. */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '"' && field === "") {
      let j = i + 1;
      for (;;) {
        const q = text.indexOf('"', j);
        if (q < 0) throw new Error("unterminated quoted field");
        field += text.slice(j, q);
        if (text[q + 1] === '"') {
          field += '"';
          j = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      continue;
    }
    if (c === ",") {
      record.push(field);
      field = "";
      i++;
    } else if (c === "\r" && text[i + 1] === "\n") {
      record.push(field);
      records.push(record);
      record = [];
      field = "";
      i += 2;
    } else {
      field += c;
      i++;
    }
  }
  if (field !== "" || record.length > 0) throw new Error("last record has no CRLF");
  return records;
}

describe("runctl export", { timeout: 60_000 }, () => {
  it("writes RFC 4180 CSV that parses back to the runs, and --json describes it", async () => {
    const out = await json(ExportOut, ["export", "all.csv"]);
    const path = join(box.project, "all.csv");
    expect(out).toMatchObject({ path, runs: 5 });
    expect(out.columns).toEqual([
      "id",
      "name",
      "status",
      "started_at",
      "finished_at",
      "duration_s",
      "tags",
      "config.lr",
      "config.note",
      "config.optimizer.betas",
      "config.optimizer.name",
      "config.warmup",
      "summary.answer_acc",
      "summary.best_acc",
      "summary.wer",
    ]);
    const [header, ...rows] = parseCsv(await readFile(path, "utf8"));
    expect(header).toEqual(out.columns);
    const row = (id: string) => {
      const cells = rows.find((r) => r[0] === id);
      expect(cells, id).toBeDefined();
      return Object.fromEntries(out.columns.map((c, i) => [c, cells?.[i]]));
    };
    expect(rows.map((r) => r[0])).toEqual([LIVE, LOST, B, A, CORRUPT]);
    expect(row(A)).toMatchObject({
      name: "baseline",
      status: "completed",
      duration_s: "180",
      tags: "base;sweep",
      "config.lr": "0.01",
      "config.note": NOTE,
      "config.optimizer.betas": "[0.9,0.999]",
      "config.warmup": "",
      "summary.best_acc": "0.98",
    });
    expect(row(B)).toMatchObject({ status: "failed", "config.warmup": "100", "config.note": "" });
    expect(row(LOST)).toMatchObject({ status: "failed", finished_at: "", duration_s: "" });
    expect(row(CORRUPT)).toMatchObject({ status: "failed", "config.lr": "" });
  });

  it("writes JSON with typed values and applies the filters", async () => {
    const out = await json(ExportOut, ["export", "sweep.JSON", "--tag", "sweep", "--status", "completed"]);
    expect(out.runs).toBe(1);
    const rows = JSON.parse(await readFile(out.path, "utf8")) as Array<Record<string, unknown>>;
    expect(rows).toEqual([
      expect.objectContaining({
        id: A,
        tags: ["base", "sweep"],
        duration_s: 180,
        "config.lr": 0.01,
        "config.optimizer.betas": [0.9, 0.999],
        "summary.wer": 0.2,
      }),
    ]);
    expect(Object.keys(rows[0] ?? {})).toEqual(out.columns);
  });

  it("refuses to overwrite without --force, and rejects other extensions", async () => {
    const path = join(box.project, "keep.csv");
    await writeFile(path, "precious\n");
    const error = await fail(["export", "keep.csv"]);
    expect(error.code).toBe("export_exists");
    expect(error.hint).toContain("--force");
    expect(await readFile(path, "utf8")).toBe("precious\n");
    const forced = await json(ExportOut, ["export", "keep.csv", "--force", "--last", "1"]);
    expect(forced.runs).toBe(1);
    expect(parseCsv(await readFile(path, "utf8"))[1]?.[0]).toBe(LIVE);

    const bad = await fail(["export", "runs.xlsx"]);
    expect(bad.code).toBe("export_bad_format");
    expect(bad.hint).toMatch(/\.csv.*\.json/);
    expect(existsSync(join(box.project, "runs.xlsx"))).toBe(false);
    expect((await fail(["export", "missing/dir/runs.csv"])).code).toBe("export_unwritable");
  });
});
