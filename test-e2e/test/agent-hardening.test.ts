// Replays of two findings against the single-machine product, with the real CLI,
// agent and Python processes: a script that leaves a helper in a session of its
// own (the run used to hang until the helper exited, and a queue job was then
// recorded "timed out"), and a terminal that stops reading 64 MiB of output (the
// output used to pile up in memory and the run ended "timed out", exit 1).
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { isProcessLiving } from "@runctl/agent/launcher";
import { readMeta } from "@runctl/tracker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { startJobServer, startWorker } from "../src/job-server.ts";
import { RUNCTL_BIN, runctlJson, type Workspace, waitFor, workspace } from "../src/runctl-cli.ts";

const PYTHON = "/usr/bin/python3";
const fixture = (name: string) =>
  fileURLToPath(new URL(`../../packages/agent/test/fixtures/${name}`, import.meta.url));
const RunOut = z.object({ run: z.object({ id: z.string(), dir: z.string(), status: z.string() }) });

let ws: Workspace;
beforeAll(async () => {
  ws = await workspace();
});

/** Peak resident memory of a process so far, in MiB (VmHWM). */
function peakMiB(pid: number): number {
  const line = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(line?.[1] ?? 0) / 1024;
}

describe("a helper left in a session of its own", () => {
  const server: { stop?: () => Promise<unknown> } = {};
  afterAll(async () => {
    await server.stop?.();
  });

  it("runctl local ends with the script, completed, and the helper is stopped", async () => {
    const r = await runctlJson(
      ["local", "--python", PYTHON, "--grace", "2", fixture("leaves_helper.py")],
      ws,
    );
    expect(r.code, r.stderr).toBe(0);
    const { run } = RunOut.parse(r.doc);
    expect(run.status).toBe("completed");
    const helper = Number(readFileSync(join(run.dir, "helper.pid"), "utf8"));
    expect(isProcessLiving(helper)).toBe(false);
  });

  it("a queue job of the same script is completed with exit code 0, not timed out", async () => {
    const jobServer = await startJobServer(ws, join(ws.home, "server"));
    server.stop = () => jobServer.stop("SIGTERM");
    // Queued before the worker starts: a worker told to exit when idle leaves at its first empty claim.
    const queued = await runctlJson(
      ["submit", "--server", jobServer.url, "--timeout", "120", "--", PYTHON, fixture("leaves_helper.py")],
      ws,
    );
    expect(queued.code, queued.stderr).toBe(0);
    const jobId = String((queued.doc as { job_id?: unknown }).job_id);
    const worker = startWorker(ws, jobServer.url, join(ws.home, "worker"), [
      "--exit-when-idle",
      "--grace",
      "2",
    ]);
    await worker.result;
    const done = await runctlJson(["job", jobId, "--server", jobServer.url], ws);
    expect(done.code, `${done.stderr}\n${worker.log()}`).toBe(0);
    expect(done.doc).toMatchObject({ job: { status: "completed", exit_code: 0 } });
  });
});

describe("a terminal that stops reading", () => {
  it("keeps the run's output in output.log, the agent's memory bounded, and the script's exit code", async () => {
    await writeFile(join(ws.project, "flood.py"), readFileSync(fixture("flood.py")));
    // As reported: `runctl local flood.py | (sleep …; cat)`, here with wc counting what got through.
    const pipeline = `node ${JSON.stringify(RUNCTL_BIN)} local --python ${PYTHON} flood.py -- 64 | (sleep 6; wc -c); echo "runctl exit \${PIPESTATUS[0]}" >&2`;
    const child = spawn("bash", ["-c", pipeline], {
      cwd: ws.project,
      env: ws.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise((r) => child.on("close", r));
    await waitFor(() => /runctl: run (\S+) \(/.test(stderr), `the run to start:\n${stderr}`);
    const id = /runctl: run (\S+) \(/.exec(stderr)?.[1] as string;
    const runDir = join(ws.project, "runs", id);
    const agent = (await readMeta(runDir)).pid as number;
    let peak = 0;
    await waitFor(async () => {
      if (isProcessLiving(agent)) peak = Math.max(peak, peakMiB(agent));
      return (await readMeta(runDir)).status !== "running";
    }, "the flood to finish while nobody reads");
    await exited;
    expect((await readMeta(runDir)).status).toBe("completed");
    expect((await stat(join(runDir, "output.log"))).size).toBe(64 * 1024 * 1024);
    expect(stderr).toContain("runctl exit 0");
    // The terminal got a bounded part, then a note; all 64 MiB are in output.log, not in the agent.
    expect(Number(stdout.trim())).toBeLessThan(16 * 1024 * 1024);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(130);
  });
});
