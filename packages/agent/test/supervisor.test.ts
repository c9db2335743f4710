// The supervisor with real Python processes (Debian's /usr/bin/python3, which
// has torch once scripts/test-all.sh installed python3-torch).
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { newRunId, RunSpec } from "@runctl/core";
import { readMeta, readMetrics } from "@runctl/tracker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isProcessLiving, livingMembers, resolveLaunchCommand, Supervisor } from "../src/mod.ts";

const PYTHON = "/usr/bin/python3";
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "runctl-supervisor-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function start(
  script: string,
  options: {
    args?: string[];
    nproc?: number;
    sub: string;
    resumeFrom?: string;
    terminal?: { stdout: Writable; stderr: Writable };
  },
) {
  const cwd = join(root, options.sub);
  const { mkdir } = await import("node:fs/promises");
  await mkdir(cwd, { recursive: true });
  const launch = resolveLaunchCommand({
    target: fixture(script),
    args: options.args ?? [],
    cwd,
    env: process.env,
    python: PYTHON,
  });
  const spec = RunSpec.parse({
    v: 1,
    runId: newRunId(),
    command: launch.argv,
    commandKind: launch.kind,
    cwd,
    runsDir: join(cwd, "runs"),
    checkpointDir: join(cwd, "checkpoints"),
    nprocPerNode: options.nproc ?? 1,
    graceMs: 3000,
    ...(options.resumeFrom ? { resume: { from: options.resumeFrom } } : {}),
  });
  return Supervisor.start(spec, {
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    ...(options.terminal ? { terminal: options.terminal } : {}),
  });
}

describe("Supervisor", () => {
  it("runs a tracked script: env, metrics, output.log, summary, completed", async () => {
    const sup = await start("train_stdlib.py", { args: ["--epochs", "3"], sub: "basic" });
    const outcome = await sup.done;
    expect(outcome).toMatchObject({ status: "completed", exitCode: 0 });
    const meta = await readMeta(outcome.runDir);
    expect(meta).toMatchObject({
      status: "completed",
      exit_code: 0,
      summary: { final_loss: 0.125 },
      writer: "supervisor",
    });
    expect(meta.attempts).toHaveLength(1);
    const { records } = await readMetrics(outcome.runDir);
    expect(records.map((r) => r.loss)).toEqual([0.5, 0.25, 0.125]);
    const log = await readFile(join(outcome.runDir, "output.log"), "utf8");
    expect(log).toContain("epoch 2 loss 0.125");
    const env = JSON.parse(/^env (.*)$/m.exec(log)?.[1] ?? "{}") as Record<string, string>;
    expect(env).toMatchObject({
      RUNCTL_RUN_ID: outcome.runId,
      RUNCTL_RUN_DIR: outcome.runDir,
      WHIRR_RUN_ID: outcome.runId,
      WHIRR_RUN_DIR: outcome.runDir,
      TRAINCTL_CHECKPOINT_DIR: join(root, "basic", "checkpoints"),
      TRAINCTL_DEVICE: "cpu",
      RANK: "0",
      WORLD_SIZE: "1",
    });
    // The supervisor samples system metrics from the start.
    const system = await readFile(join(outcome.runDir, "system.jsonl"), "utf8");
    expect(JSON.parse(system.split("\n")[0] ?? "{}")).toHaveProperty("memory_total_gb");
  });

  it("resumes from a checkpoint given as RUNCTL_RESUME_FROM", async () => {
    const first = await (await start("train_stdlib.py", { args: ["--epochs", "2"], sub: "resume" })).done;
    expect(first.status).toBe("completed");
    const ckpt = join(root, "resume", "checkpoints", "ckpt_0001.pt");
    const second = await (
      await start("train_stdlib.py", { args: ["--epochs", "4"], sub: "resume", resumeFrom: ckpt })
    ).done;
    expect(second.status).toBe("completed");
    const log = await readFile(join(second.runDir, "output.log"), "utf8");
    expect(log).toContain("resumed from ckpt_0001.pt at epoch 2");
    expect((await readMetrics(second.runDir)).records.map((r) => r.epoch)).toEqual([2, 3]);
    expect(await readMeta(second.runDir)).toMatchObject({ resumed_from: ckpt });
  });

  it("runs a 2-rank torch.distributed (gloo) job as one run with both ranks' output", async () => {
    const sup = await start("ddp_gloo.py", { nproc: 2, sub: "ddp" });
    const outcome = await sup.done;
    const log = await readFile(join(outcome.runDir, "output.log"), "utf8");
    expect(outcome.status, log).toBe("completed");
    expect(log).toContain("[rank 0] rank 0 done");
    expect(log).toContain("[rank 1] rank 1 done");
    expect(log).toMatch(/\[rank 1\] step 4 loss [\d.]+ world 2/);
    expect((await readMetrics(outcome.runDir)).records).toHaveLength(5);
  });

  it("stops the other ranks when one fails and reports its exit code and last lines", async () => {
    const sup = await start("fail_rank.py", { nproc: 3, sub: "fail" });
    const outcome = await sup.done;
    expect(outcome).toMatchObject({ status: "failed", exitCode: 3 });
    const meta = await readMeta(outcome.runDir);
    expect(meta.exit_code).toBe(3);
    expect(meta.error).toContain("rank 1 exited with code 3");
    expect(meta.error).toContain("loss is NaN");
  });

  it("stop() cancels the run and leaves no process of its groups behind", async () => {
    const sup = await start("sleeper.py", { sub: "stop" });
    const pidsFile = join(sup.runDir, "pids.txt");
    while (!existsSync(pidsFile) || !(await readFile(pidsFile, "utf8")).endsWith("\n")) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const [rankPid, grandchild] = (await readFile(pidsFile, "utf8")).trim().split(" ").map(Number);
    sup.stop("SIGINT");
    const outcome = await sup.done;
    expect(outcome).toMatchObject({ status: "cancelled", exitCode: 130 });
    expect(livingMembers(rankPid as number)).toEqual([]);
    expect(grandchild).toBeGreaterThan(0);
    expect((await readMeta(outcome.runDir)).status).toBe("cancelled");
  });

  it("refuses a second run on a checkpoint directory in use", async () => {
    const first = await start("sleeper.py", { sub: "lock" });
    await expect(start("train_stdlib.py", { sub: "lock" })).rejects.toMatchObject({
      code: "checkpoint_dir_locked",
    });
    first.stop("SIGTERM");
    expect((await first.done).status).toBe("cancelled");
    const again = await start("train_stdlib.py", { sub: "lock", args: ["--epochs", "1"] });
    expect((await again.done).status).toBe("completed");
  });

  it("ends when the script exits, though a helper it left in a new session holds its output", async () => {
    const sup = await start("leaves_helper.py", { sub: "helper" });
    const outcome = await sup.done;
    expect(outcome).toMatchObject({ status: "completed", exitCode: 0 });
    const helper = Number(await readFile(join(outcome.runDir, "helper.pid"), "utf8"));
    // Stopped with the run's leftovers: it carried the attempt's marker into its own session.
    // (Dead or a zombie: a container's init may never reap it.)
    expect(isProcessLiving(helper)).toBe(false);
    expect(await readFile(join(outcome.runDir, "output.log"), "utf8")).toContain("main done");
  });

  it("names the signal a rank died of, with the shell's exit code 128+N", async () => {
    const sup = await start("segfault.py", { sub: "segv" });
    const outcome = await sup.done;
    expect(outcome).toMatchObject({ status: "failed", exitCode: 139 });
    const meta = await readMeta(outcome.runDir);
    expect(meta.exit_code).toBe(139);
    expect(meta.error).toMatch(/killed by SIGSEGV \(exit code 139\)/);
  });

  it("keeps all output in output.log, and bounded memory, when the terminal stops reading", async () => {
    // A terminal that never takes anything: every write stays queued in the stream.
    const stalled = () =>
      new Writable({
        highWaterMark: 1024,
        write(_chunk, _enc, _done) {
          // never calls back: the reader has stopped
        },
      });
    const stdout = stalled();
    const sup = await start("flood.py", {
      sub: "flood",
      args: ["64"],
      terminal: { stdout, stderr: stalled() },
    });
    const outcome = await sup.done;
    expect(outcome).toMatchObject({ status: "completed", exitCode: 0 });
    const { size } = await import("node:fs/promises").then((fs) =>
      fs.stat(join(outcome.runDir, "output.log")),
    );
    expect(size).toBe(64 * 1024 * 1024);
    // What waits for the terminal stays near the backlog limit (8 MiB), not the 64 MiB written.
    expect(stdout.writableLength).toBeLessThan(16 * 1024 * 1024);
  });
});
