// `runctl local` end to end: real Python (Debian's, with torch), the built CLI,
// signals sent to the CLI process itself, and the run directory read back.
import { existsSync } from "node:fs";
import { chmod, copyFile, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { livingMembers } from "@runctl/agent";
import { readMeta, readMetrics, withEffectiveStatus } from "@runctl/tracker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import {
  runctlJson,
  startLocalRun,
  startRunctl,
  type Workspace,
  waitFor,
  workspace,
} from "../src/runctl-cli.ts";

const EXAMPLE = fileURLToPath(new URL("../../examples/train.py", import.meta.url));
const DDP = fileURLToPath(new URL("../../packages/agent/test/fixtures/ddp_gloo.py", import.meta.url));
const SLEEPER = fileURLToPath(new URL("../../packages/agent/test/fixtures/sleeper.py", import.meta.url));
const PY = ["--python", "/usr/bin/python3"];

const RunOut = z
  .object({ run: z.object({ id: z.string(), status: z.string() }).passthrough() })
  .passthrough();

let ws: Workspace;
beforeAll(async () => {
  ws = await workspace();
  await copyFile(EXAMPLE, join(ws.project, "train.py"));
});
afterAll(async () => {
  await rm(ws.home, { recursive: true, force: true });
});

const runDirOf = (id: string) => join(ws.project, "runs", id);

/** `runctl local sleeper.py` in the foreground, once its script is running. */
async function startSleeper(checkpointDir: string) {
  return startLocalRun([...PY, "--checkpoint-dir", checkpointDir, SLEEPER], ws, "pids.txt");
}

describe("runctl local", () => {
  it("runs the quick-start script as a tracked run and resumes it from its newest checkpoint", async () => {
    const first = await runctlJson(["local", "train.py", "--", "--epochs", "3"], ws);
    expect(first.code, first.stderr).toBe(0);
    const run = RunOut.parse(first.doc).run;
    expect(run.status).toBe("completed");
    const meta = await readMeta(runDirOf(run.id));
    expect(meta).toMatchObject({
      name: "linear-regression",
      status: "completed",
      summary: { final_loss: expect.any(Number) },
    });
    expect((await readMetrics(runDirOf(run.id))).records.map((r) => r.epoch)).toEqual([0, 1, 2]);
    // The run's output went to stderr under --json, and to output.log.
    expect(first.stderr).toContain("epoch 2: loss");
    expect(await readFile(join(runDirOf(run.id), "output.log"), "utf8")).toContain("epoch 2: loss");

    const resumed = await runctlJson(["local", "--resume", "auto", "train.py", "--", "--epochs", "5"], ws);
    expect(resumed.code, resumed.stderr).toBe(0);
    const second = RunOut.parse(resumed.doc).run.id;
    expect(resumed.stderr).toContain("epoch_0002.ckpt");
    expect((await readMetrics(runDirOf(second))).records.map((r) => r.epoch)).toEqual([3, 4]);
    const logs = await runctlJson(["logs", second], ws);
    expect(logs.doc).toMatchObject({ success: true, status: "completed" });
    expect(z.object({ output: z.string() }).passthrough().parse(logs.doc).output).toContain("resuming from");
  });

  it("runs 2 torch.distributed (gloo) ranks as one run", async () => {
    const r = await runctlJson(["local", ...PY, "--nproc-per-node", "2", DDP], ws);
    expect(r.code, r.stderr).toBe(0);
    const id = RunOut.parse(r.doc).run.id;
    const log = await readFile(join(runDirOf(id), "output.log"), "utf8");
    expect(log).toContain("[rank 0] rank 0 done");
    expect(log).toContain("[rank 1] rank 1 done");
    expect((await readMeta(runDirOf(id))).world_size).toBe(2);
  });

  it("SIGINT to runctl cancels the run and leaves no process of its groups", async () => {
    const { child, result, id } = await startSleeper("ck-int");
    const pgids = (await readMeta(runDirOf(id))).rank_pgids as number[];
    child.kill("SIGINT");
    const r = await result;
    expect(r.code).toBe(130);
    expect((await readMeta(runDirOf(id))).status).toBe("cancelled");
    for (const pgid of pgids) expect(livingMembers(pgid)).toEqual([]);
  });

  it("a foreground runctl killed with SIGKILL takes its run down with it", async () => {
    const { child, result, id } = await startSleeper("ck-cli-kill");
    const pgids = (await readMeta(runDirOf(id))).rank_pgids as number[];
    child.kill("SIGKILL");
    await result;
    // The orphan guard stops the ranks and records the run as a Ctrl-C would have.
    await waitFor(
      async () => (await readMeta(runDirOf(id))).status === "cancelled",
      "the run to be cancelled",
    );
    for (const pgid of pgids) expect(livingMembers(pgid)).toEqual([]);
  });

  it("an agent killed with SIGKILL is reported failed (lost), and its ranks do not outlive it", async () => {
    // A foreground run is supervised in the CLI's own process (the test above); a detached
    // run's agent is a process of its own.
    const started = await runctlJson(
      ["local", "--detach", ...PY, "--checkpoint-dir", "ck-kill", SLEEPER],
      ws,
    );
    expect(started.code, started.stderr).toBe(0);
    const id = RunOut.parse(started.doc).run.id;
    await waitFor(() => existsSync(join(runDirOf(id), "pids.txt")), "the script to start");
    const meta = await readMeta(runDirOf(id));
    const pgids = meta.rank_pgids as number[];
    process.kill(meta.pid as number, "SIGKILL");
    try {
      expect(meta.status).toBe("running");
      await waitFor(
        async () => withEffectiveStatus(await readMeta(runDirOf(id))).status === "failed",
        "the run to read as lost",
      );
      const read = withEffectiveStatus(await readMeta(runDirOf(id)));
      expect(read.error).toMatch(/^lost/);
      const shown = await runctlJson(["logs", id], ws);
      expect(shown.doc).toMatchObject({ success: true, status: "failed" });
      // The orphan guard ends every rank's process group (the script and the child it started).
      await waitFor(
        () => pgids.every((pgid) => livingMembers(pgid).length === 0),
        "the orphaned ranks to end",
        30_000,
      );
    } finally {
      for (const pgid of pgids) {
        try {
          process.kill(-pgid, "SIGKILL");
        } catch {
          // already gone, as it should be
        }
      }
    }
  });

  it("--detach runs in the background; logs -f follows it and stop cancels it", async () => {
    const started = await runctlJson(
      ["local", "--detach", ...PY, "--checkpoint-dir", "ck-detach", SLEEPER],
      ws,
    );
    expect(started.code, started.stderr).toBe(0);
    const id = RunOut.parse(started.doc).run.id;
    await waitFor(() => existsSync(join(runDirOf(id), "pids.txt")), "the script to start");
    const follow = startRunctl(["logs", id, "-f"], ws);
    const stop = await runctlJson(["stop", id], ws);
    expect(stop.doc).toMatchObject({ success: true, status: "cancelled", stopped: true });
    const followed = await follow.result;
    expect(followed.code).toBe(0);
    expect(followed.stdout).toContain("ready");
  });

  describe("bad input gets a clear error and exit code 1", () => {
    it("missing script", async () => {
      const r = await runctlJson(["local", "nope.py"], ws);
      expect(r.code).toBe(1);
      expect(r.doc).toMatchObject({ success: false, error: { code: "script_not_found" } });
    });

    it("non-executable file", async () => {
      await writeFile(join(ws.project, "train.sh"), "#!/bin/sh\necho hi\n");
      await chmod(join(ws.project, "train.sh"), 0o644);
      const r = await runctlJson(["local", "./train.sh"], ws);
      expect(r.code).toBe(1);
      expect(r.doc).toMatchObject({ success: false, error: { code: "not_executable" } });
      expect(z.object({ error: z.object({ hint: z.string() }) }).parse(r.doc).error.hint).toContain(
        "chmod +x",
      );
    });

    it("bad --nproc-per-node", async () => {
      for (const value of ["0", "two", "-1"]) {
        const r = await runctlJson(["local", "--nproc-per-node", value, "train.py"], ws);
        expect(r.code, value).toBe(1);
        expect(r.doc).toMatchObject({ success: false, error: { code: "bad_usage" } });
      }
    });

    it("unknown run id", async () => {
      for (const cmd of ["logs", "stop", "attach"]) {
        const r = await runctlJson([cmd, "no-such-run"], ws);
        expect(r.code, cmd).toBe(1);
        expect(r.doc).toMatchObject({ success: false, error: { code: "run_not_found" } });
      }
    });

    it("corrupted meta.json: a clear error, and the file is left as it was", async () => {
      const r = await runctlJson(["local", "train.py", "--", "--epochs", "1"], ws);
      const id = RunOut.parse(r.doc).run.id;
      const metaPath = join(runDirOf(id), "meta.json");
      const corrupted = `${(await readFile(metaPath, "utf8")).slice(0, 40)}\u0000garbage`;
      await writeFile(metaPath, corrupted);
      const logs = await runctlJson(["logs", id], ws);
      expect(logs.code).toBe(1);
      expect(logs.doc).toMatchObject({ success: false, error: { code: "run_meta_corrupt" } });
      expect(await readFile(metaPath, "utf8")).toBe(corrupted);
      // Other runs are still readable.
      const other = await runctlJson(["local", "train.py", "--", "--epochs", "1"], ws);
      expect(other.code).toBe(0);
    });
  });
});
