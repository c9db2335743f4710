// The CLI against hostile input (the hardening issue), run as a user runs it:
// the built binary, a real job server on loopback. Escape sequences in names,
// commands, tags and file names are shown, not executed; deep `--config` and
// repeated GPU ids are refused; `show` reports the metrics lines it skipped.
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type QueueServer, startQueueServer } from "@runctl/queue-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runctl, type Sandbox, sandbox } from "./run-cli.ts";

let box: Sandbox;
let server: QueueServer;

beforeAll(async () => {
  box = await sandbox();
  server = await startQueueServer({ dataDir: join(box.home, "queue"), log: () => {} });
});
afterAll(async () => {
  await server.close();
  await rm(box.home, { recursive: true, force: true });
});

const cli = (args: string[]) => runctl(args, { cwd: box.project, env: box.env });

const ESC = "\u001b";
const HOSTILE = `${ESC}]0;pwned${ESC}\\${ESC}[2J\u202e\u0007`;

async function submitRaw(body: Record<string, unknown>): Promise<number> {
  const res = await fetch(`${server.url}/api/v1/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ workdir: "/w", ...body }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { job_id: number }).job_id;
}

describe("terminal escapes", () => {
  it("jobs and job show control characters escaped; --json keeps them as they are", async () => {
    const id = await submitRaw({ name: `n${HOSTILE}`, command_argv: [`c${HOSTILE}`], tags: [`t${HOSTILE}`] });
    const jobs = await cli(["jobs", "--server", server.url]);
    expect(jobs.code).toBe(0);
    expect(jobs.stdout).not.toContain(ESC);
    expect(jobs.stdout).toContain("n\\x1b]0;pwned\\x1b");
    const job = await cli(["job", String(id), "--server", server.url]);
    expect(job.code).toBe(0);
    // Nothing that acts on a terminal: no control character but the line breaks, no bidi override.
    expect([...job.stdout].filter((c) => (c < " " && c !== "\n") || c === "\u202e")).toEqual([]);
    expect(job.stdout).toContain("n\\x1b]0;pwned\\x1b\\\\x1b[2J\\u202e\\x07");
    expect(job.stdout).toContain("c\\x1b]0;pwned");
    expect(job.stdout).toContain("t\\x1b]0;pwned");
    const json = await cli(["job", String(id), "--server", server.url, "--json"]);
    expect(JSON.parse(json.stdout).job.name).toBe(`n${HOSTILE}`);
  });

  it("bundle --list shows file names escaped", async () => {
    const project = join(box.home, "escapes");
    await mkdir(project);
    await writeFile(join(project, "train.py"), "print(1)\n");
    await writeFile(join(project, `evil${ESC}[2J.py`), "x\n");
    const r = await runctl(["bundle", "--list"], { cwd: project, env: box.env });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain(ESC);
    expect(r.stdout).toContain("evil\\x1b[2J.py");
  });

  it("ctl history, status and controls show control paths escaped", async () => {
    const queue = join(box.home, "queue-dir");
    await mkdir(queue);
    const path = `lr${ESC}[2Jx`;
    await writeFile(
      join(queue, "commands.jsonl"),
      `${JSON.stringify({ id: "c1", ts: 1, op: "set", path, args: [1], kwargs: {} })}\n`,
    );
    await writeFile(
      join(queue, "acks.jsonl"),
      `${JSON.stringify({ id: "c1", ts: 1, path, op: "set", status: "applied", rank: 0, seq: 0 })}\n`,
    );
    await writeFile(
      join(queue, "controls.json"),
      JSON.stringify({ controls: [{ path, description: `d${ESC}[31m` }] }),
    );
    for (const word of ["history", "status", "controls"]) {
      const r = await cli(["ctl", "-q", queue, word]);
      expect(r.code).toBe(0);
      expect(r.stdout).not.toContain(ESC);
      expect(r.stdout).toContain("lr\\x1b[2Jx");
    }
  });
});

describe("flag values", () => {
  it("submit refuses a --config nested past the limit, naming it, and queues nothing", async () => {
    const deep = `${'{"a":'.repeat(2999)}{}${"}".repeat(2999)}`;
    const r = await cli([
      "submit",
      "--server",
      server.url,
      "--config",
      deep,
      "--json",
      "--",
      "python",
      "x.py",
    ]);
    expect(r.code).toBe(1);
    const error = JSON.parse(r.stdout).error;
    expect(error.code).toBe("bad_run_config");
    expect(error.message).toContain("--config is nested more than 64 levels deep");
    const list = await cli(["jobs", "--server", server.url, "--status", "all", "--json"]);
    expect(
      JSON.parse(list.stdout).jobs.some((j: { command_argv: string[] }) => j.command_argv[1] === "x.py"),
    ).toBe(false);
  });

  it("worker refuses --gpus that lists a GPU twice", async () => {
    const r = await cli(["worker", "--server", server.url, "--gpus", "0,1,0", "--json"]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: "bad_gpus" });
    expect(JSON.parse(r.stdout).error.message).toContain("GPU 0 more than once");
  });
});

describe("show and compare", () => {
  it("report metrics lines they skipped (too long, too deep) and show the others", async () => {
    const runs = join(box.project, "runs");
    const id = "20261203-000000-abcdef";
    const dir = join(runs, id);
    await mkdir(dir, { recursive: true });
    await writeFile(
      join(dir, "meta.json"),
      JSON.stringify({
        id,
        name: "r",
        tags: [],
        started_at: "2026-12-03T00:00:00.000Z",
        status: "completed",
      }),
    );
    const line = (i: number) => `{"_idx":${i},"_timestamp":"2026-12-03T00:00:0${i}Z","loss":${1 / (i + 1)}}`;
    const big = `{"_idx":9,"blob":"${"x".repeat(2 * 1024 * 1024)}"}`;
    await writeFile(join(dir, "metrics.jsonl"), `${line(0)}\n${big}\n${"[".repeat(3000)}\n${line(1)}\n`);
    const r = await runctl(["show", id, "--json"], { cwd: box.project, env: box.env });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).metrics.count).toBe(2);
    expect(r.stderr).toContain("metrics.jsonl: skipped 2 line(s)");
    expect(r.stderr).toContain("longer than 1048576 bytes");
    expect(r.stderr).toContain("nested more than 64 levels");

    const other = "20261203-000001-abcdef";
    await mkdir(join(runs, other));
    await writeFile(
      join(runs, other, "meta.json"),
      JSON.stringify({
        id: other,
        name: "o",
        tags: [],
        started_at: "2026-12-03T00:00:01.000Z",
        status: "completed",
      }),
    );
    await writeFile(join(runs, other, "metrics.jsonl"), `${line(0)}\n`);
    const compared = await runctl(["compare", id, other], { cwd: box.project, env: box.env });
    expect(compared.code).toBe(0);
    expect(compared.stderr).toContain(`run ${id}: metrics.jsonl: skipped 2 line(s)`);
  });
});
