// `runctl checkpoint …` and `runctl monitor`, run as the built binary on real files.
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { appendFile, link, mkdir, readdir, rename, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { CheckpointFile, CheckpointInfo, CleanupResult } from "@runctl/agent";
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { BIN, runctl, type Sandbox, sandbox } from "./run-cli.ts";

const Failure = z.object({
  success: z.literal(false),
  error: z.object({ code: z.string(), message: z.string(), hint: z.string() }),
});
const ListOut = z.object({
  success: z.literal(true),
  dir: z.string(),
  sortedBy: z.enum(["step", "mtime"]),
  total: z.number(),
  checkpoints: z.array(CheckpointFile),
});
const InfoOut = z.object({ success: z.literal(true), checkpoint: CheckpointInfo });
const CleanupOut = z.object({ success: z.literal(true), cleanup: CleanupResult });
const MonitorOut = z.object({
  success: z.literal(true),
  log: z.object({ path: z.string(), lastLines: z.array(z.string()) }).nullable(),
  checkpointDir: z.string().nullable(),
  checkpoints: z.array(CheckpointFile).nullable(),
});

/** A real safetensors file: JSON header with dtype/shape/data_offsets, then zeroed tensor data. */
function safetensors(tensors: Record<string, { dtype: "F32" | "F16"; shape: number[] }>): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let offset = 0;
  for (const [name, { dtype, shape }] of Object.entries(tensors)) {
    const size = shape.reduce((a, b) => a * b, 1) * (dtype === "F32" ? 4 : 2);
    header[name] = { dtype, shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([prefix, json, Buffer.alloc(offset)]);
}

let box: Sandbox;
beforeAll(async () => {
  box = await sandbox();
});
const cli = (args: string[], cwd = box.project) => runctl(args, { cwd, env: box.env });

/** A fresh directory in the sandbox project with checkpoints at steps 100..500 (older steps, older mtimes). */
async function checkpointDir(name: string): Promise<string> {
  const dir = join(box.project, name);
  await mkdir(dir, { recursive: true });
  for (const step of [100, 200, 300, 400, 500]) {
    const path = join(dir, `ckpt_${String(step).padStart(6, "0")}.pt`);
    await writeFile(path, Buffer.concat([Buffer.from("PK\x03\x04"), Buffer.alloc(step)]));
    await utimes(path, step, step);
  }
  await writeFile(join(dir, "notes.txt"), "not a checkpoint");
  return dir;
}

describe("runctl checkpoint", () => {
  it("list --json returns the checkpoints newest first by step", async () => {
    const dir = await checkpointDir("list");
    const r = await cli(["checkpoint", "list", "list", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const out = ListOut.parse(JSON.parse(r.stdout));
    expect(out).toMatchObject({ dir, sortedBy: "step", total: 5 });
    expect(out.checkpoints.map((c) => c.step)).toEqual([500, 400, 300, 200, 100]);
    expect(out.checkpoints[0]).toMatchObject({ name: "ckpt_000500.pt", size: 504 });
    const limited = ListOut.parse(
      JSON.parse((await cli(["checkpoint", "list", "list", "--limit", "2", "--json"])).stdout),
    );
    expect(limited.checkpoints.map((c) => c.step)).toEqual([500, 400]);
    expect(limited.total).toBe(5);
  });

  it("list defaults to local.checkpoint_dir, relative to the project root", async () => {
    const project = join(box.project, "proj");
    await mkdir(join(project, "src"), { recursive: true });
    await writeFile(join(project, ".runctl.toml"), '[local]\ncheckpoint_dir = "weights"\n');
    await mkdir(join(project, "weights"));
    await writeFile(join(project, "weights", "model.safetensors"), safetensors({}));
    const r = await cli(["checkpoint", "list", "--json"], join(project, "src"));
    expect(r.code, r.stderr).toBe(0);
    const out = ListOut.parse(JSON.parse(r.stdout));
    expect(out.dir).toBe(join(project, "weights"));
    expect(out.checkpoints.map((c) => c.name)).toEqual(["model.safetensors"]);
  });

  it("list of a missing directory exits 1 with checkpoint_dir_not_found and a hint", async () => {
    const r = await cli(["checkpoint", "list", "nope", "--json"]);
    expect(r.code).toBe(1);
    const doc = Failure.parse(JSON.parse(r.stdout));
    expect(doc.error.code).toBe("checkpoint_dir_not_found");
    expect(doc.error.message).toContain(join(box.project, "nope"));
    const human = await cli(["checkpoint", "list", "nope"]);
    expect(human.code).toBe(1);
    expect(human.stdout).toBe("");
    expect(human.stderr).toMatch(/Error: Checkpoint directory .*nope does not exist\n\s+Hint: /);
  });

  it("info --json reads a safetensors header", async () => {
    const path = join(box.project, "model_000042.safetensors");
    await writeFile(
      path,
      safetensors({ "w.weight": { dtype: "F32", shape: [8, 4] }, "w.bias": { dtype: "F16", shape: [4] } }),
    );
    const r = await cli(["checkpoint", "info", "model_000042.safetensors", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(InfoOut.parse(JSON.parse(r.stdout)).checkpoint).toMatchObject({
      path,
      format: "safetensors",
      step: 42,
      safetensors: {
        tensorCount: 2,
        parameterCount: 36,
        dtypes: { F32: 1, F16: 1 },
        metadata: { format: "pt" },
      },
    });
    const human = await cli(["checkpoint", "info", "model_000042.safetensors"]);
    expect(human.stdout).toMatch(/parameters\s+36\n/);
  });

  it("info of a truncated safetensors file exits 1 with checkpoint_corrupt", async () => {
    const whole = safetensors({ w: { dtype: "F32", shape: [64] } });
    await writeFile(join(box.project, "cut.safetensors"), whole.subarray(0, whole.length - 100));
    const r = await cli(["checkpoint", "info", "cut.safetensors", "--json"]);
    expect(r.code).toBe(1);
    const doc = Failure.parse(JSON.parse(r.stdout));
    expect(doc.error.code).toBe("checkpoint_corrupt");
    expect(doc.error.message).toMatch(/truncated/);
  });

  it("cleanup --dry-run reports and deletes nothing", async () => {
    const dir = await checkpointDir("dry");
    const r = await cli(["checkpoint", "cleanup", "dry", "--keep-last-n", "2", "--dry-run", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const { cleanup } = CleanupOut.parse(JSON.parse(r.stdout));
    expect(cleanup).toMatchObject({ dryRun: true, freedBytes: 100 + 200 + 300 + 12 });
    expect(cleanup.deleted.map((c) => c.step)).toEqual([300, 200, 100]);
    expect(await readdir(dir)).toHaveLength(6);
  });

  it("cleanup without --yes in a non-interactive shell exits 1 and deletes nothing", async () => {
    const dir = await checkpointDir("noyes");
    const r = await cli(["checkpoint", "cleanup", "noyes", "--keep-last-n", "1", "--json"]);
    expect(r.code).toBe(1);
    const doc = Failure.parse(JSON.parse(r.stdout));
    expect(doc.error.code).toBe("confirmation_required");
    expect(doc.error.hint).toMatch(/--yes/);
    expect(doc.error.hint).toMatch(/--dry-run/);
    expect(await readdir(dir)).toHaveLength(6);
  });

  it("cleanup --yes keeps the newest N and only checkpoint files", async () => {
    const dir = await checkpointDir("yes");
    const r = await cli(["checkpoint", "cleanup", "yes", "--keep-last-n", "2", "--yes", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const { cleanup } = CleanupOut.parse(JSON.parse(r.stdout));
    expect(cleanup.kept.map((c) => c.step)).toEqual([500, 400]);
    expect(cleanup.freedBytes).toBe(612);
    expect((await readdir(dir)).sort()).toEqual(["ckpt_000400.pt", "ckpt_000500.pt", "notes.txt"]);
  });

  it("cleanup refuses --keep-last-n 0", async () => {
    const dir = await checkpointDir("zero");
    const r = await cli(["checkpoint", "cleanup", "zero", "--keep-last-n", "0", "--yes", "--json"]);
    expect(r.code).toBe(1);
    expect(Failure.parse(JSON.parse(r.stdout)).error.code).toBe("checkpoint_keep_invalid");
    expect(await readdir(dir)).toHaveLength(6);
  });

  // The question needs a terminal; Python's standard pty module provides one.
  const hasPython = spawnSync("python3", ["-c", "import pty"], { stdio: "ignore" }).status === 0;
  it.skipIf(!hasPython)("cleanup asks on a terminal and deletes only after yes", async () => {
    const dir = await checkpointDir("tty");
    const args = ["checkpoint", "cleanup", "tty", "--keep-last-n", "3"];
    const no = await inTerminal(args, "n");
    expect(no.output).toMatch(/Delete 2 file\(s\), .* \[y\/N\]/);
    expect(no.code).toBe(1);
    expect(no.output).toMatch(/cancelled; nothing was deleted/);
    expect(await readdir(dir)).toHaveLength(6);
    const yes = await inTerminal(args, "y");
    expect(yes.code, yes.output).toBe(0);
    expect((await readdir(dir)).sort()).toEqual([
      "ckpt_000300.pt",
      "ckpt_000400.pt",
      "ckpt_000500.pt",
      "notes.txt",
    ]);
  });
});

/** Runs runctl on a pseudo-terminal, answers its question once, and returns everything it wrote. */
function inTerminal(args: string[], answer: string): Promise<{ code: number; output: string }> {
  const driver = `
import json, os, pty, sys
argv, cwd, env, answer = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.chdir(cwd)
    os.execve(argv[0], argv, env)
out, answered = b"", False
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
    if not answered and b"[y/N]" in out:
        os.write(fd, (answer + "\\n").encode())
        answered = True
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(os.waitstatus_to_exitcode(status))
`;
  const payload = JSON.stringify([[process.execPath, BIN, ...args], box.project, box.env, answer]);
  return new Promise((resolve, reject) => {
    const child = spawn("python3", ["-c", driver, payload], { stdio: ["ignore", "pipe", "inherit"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => {
      output += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, output }));
  });
}

describe("runctl monitor", () => {
  it("--json returns the last log lines and the newest checkpoints", async () => {
    await checkpointDir("mon");
    await writeFile(join(box.project, "mon.log"), "epoch 1\nepoch 2\nepoch 3\n");
    const r = await cli([
      "monitor",
      "--log",
      "mon.log",
      "--checkpoint",
      "mon",
      "--lines",
      "2",
      "--limit",
      "3",
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const out = MonitorOut.parse(JSON.parse(r.stdout));
    expect(out.log).toEqual({ path: join(box.project, "mon.log"), lastLines: ["epoch 2", "epoch 3"] });
    expect(out.checkpoints?.map((c) => c.step)).toEqual([500, 400, 300]);
  });

  it("answers a missing log, nothing to watch or a bad interval with exit 1", async () => {
    const missing = await cli(["monitor", "--log", "absent.log", "--json"]);
    expect(missing.code).toBe(1);
    expect(Failure.parse(JSON.parse(missing.stdout)).error.code).toBe("log_not_found");
    const nothing = await cli(["monitor", "--json"]);
    expect(nothing.code).toBe(1);
    expect(Failure.parse(JSON.parse(nothing.stdout)).error.code).toBe("monitor_nothing_to_watch");
    const interval = await cli(["monitor", "--log", "absent.log", "--follow", "--interval", "0", "--json"]);
    expect(interval.code).toBe(1);
    expect(Failure.parse(JSON.parse(interval.stdout)).error.code).toBe("monitor_bad_interval");
  });

  it("--follow --json streams appended lines and new checkpoints as NDJSON until SIGINT", async () => {
    const dir = join(box.project, "follow");
    await mkdir(dir);
    const log = join(box.project, "follow.log");
    await writeFile(log, "before\n");
    const child = spawn(
      process.execPath,
      [BIN, "monitor", "--log", log, "--checkpoint", dir, "--follow", "--interval", "0.1", "--json"],
      { cwd: box.project, env: box.env, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    const events: Array<Record<string, unknown>> = [];
    const lines = createInterface({ input: child.stdout });
    const died = exited.then((code) => {
      throw new Error(`monitor exited early with ${code}: ${stderr}`);
    });
    const waitFor = (predicate: (e: Record<string, unknown>) => boolean) =>
      Promise.race([
        died,
        new Promise<void>((resolve) => {
          const check = () => {
            if (events.some(predicate)) {
              lines.off("line", check);
              resolve();
            }
          };
          lines.on("line", check);
          check();
        }),
      ]);
    lines.on("line", (line) => events.push(JSON.parse(line) as Record<string, unknown>));
    try {
      await waitFor((e) => e.event === "snapshot");
      expect(events[0]).toMatchObject({ event: "snapshot", log: { lastLines: ["before"] }, checkpoints: [] });
      await appendFile(log, "step 10 loss 0.5\n");
      await writeFile(join(dir, "ckpt_000010.pt"), "PK\x03\x04");
      await Promise.all([
        waitFor((e) => e.event === "log" && e.line === "step 10 loss 0.5"),
        waitFor((e) => e.event === "checkpoint"),
      ]);
      // Truncation (`> log`) starts over from the top; rotation reads the old file to its end, then the new one.
      await writeFile(log, "after truncate\n");
      await waitFor((e) => e.event === "log" && e.line === "after truncate");
      // Rotated the way the poller could see it in one step: the old file keeps a second name and a last
      // line, then a new file takes the path in one rename (a plain `mv` + create could look like "removed").
      await link(log, `${log}.1`);
      await appendFile(`${log}.1`, "last words\n");
      await writeFile(`${log}.new`, "fresh file\n");
      await rename(`${log}.new`, log);
      await waitFor((e) => e.event === "log" && e.line === "fresh file");
    } finally {
      child.kill("SIGINT");
    }
    // Ctrl-C is how a follow is meant to end, so runctl treats it as success: exit 0, not 130.
    expect(await exited, stderr).toBe(0);
    expect(events.find((e) => e.event === "checkpoint")).toMatchObject({
      change: "new",
      checkpoint: { name: "ckpt_000010.pt", step: 10 },
    });
    const story = events
      .filter((e) => e.event === "log" || e.event === "log_reset")
      .map((e) => e.line ?? e.reason);
    expect(story).toEqual([
      "step 10 loss 0.5",
      "truncated",
      "after truncate",
      "last words",
      "rotated",
      "fresh file",
    ]);
    expect(events.at(-1)).toMatchObject({
      success: true,
      event: "end",
      reason: "interrupted",
      checkpoints: 1,
    });
    expect(existsSync(join(dir, "ckpt_000010.pt"))).toBe(true);
  }, 30_000);
});
