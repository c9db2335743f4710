/**
 * Faults around the job queue with real processes: a worker frozen past its
 * lease (SIGSTOP), and the server killed with SIGKILL while jobs are being
 * submitted, claimed and completed.
 */
import { existsSync, readFileSync } from "node:fs";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { QueueClient, QueueServerError, QueueUnreachableError } from "@runctl/tracker";
import { afterEach, describe, expect, it } from "vitest";
import { startJobServer, startWorker } from "../src/job-server.ts";
import { type Workspace, waitFor, workspace } from "../src/runctl-cli.ts";

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => undefined);
  cleanup = [];
});

/** A job that records its start (and pid), sleeps, and records that it is done. */
async function markingJob(ws: Workspace, sleepSeconds: number) {
  const script = join(ws.project, "job.sh");
  const marks = join(ws.home, "marks.log");
  await writeFile(
    script,
    [
      "#!/bin/sh",
      'echo "start $RUNCTL_JOB_ID $RUNCTL_JOB_ATTEMPT" >> "$1"',
      'echo $$ > "$1.pid.$RUNCTL_JOB_ID.$RUNCTL_JOB_ATTEMPT"',
      `sleep ${sleepSeconds}`,
      'echo "done $RUNCTL_JOB_ID $RUNCTL_JOB_ATTEMPT" >> "$1"',
      "",
    ].join("\n"),
  );
  await chmod(script, 0o755);
  const lines = async (kind: "start" | "done", job?: number) =>
    (await readFile(marks, "utf8").catch(() => ""))
      .split("\n")
      .map((l) => l.split(" "))
      .filter(([k, j]) => k === kind && (job === undefined || Number(j) === job))
      .map(([, j, a]) => `${j}.${a}`);
  return { argv: [script, marks], marks, lines };
}

/** Alive and not a zombie. */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

describe("job queue faults", () => {
  it("a worker frozen past its lease loses the job, its late completion is refused, and on SIGCONT it kills its copy", {
    timeout: 180_000,
  }, async () => {
    const ws = await workspace();
    const server = await startJobServer(ws, join(ws.home, "server"));
    cleanup.push(async () => void (await server.stop("SIGKILL")));
    const client = new QueueClient({ url: server.url });
    const job = await markingJob(ws, 15);

    const frozen = startWorker(ws, server.url, join(ws.home, "worker-a"), ["--poll", "0.2", "--lease", "2"]);
    cleanup.push(async () => {
      frozen.child.kill("SIGCONT");
      frozen.child.kill("SIGKILL");
      await frozen.result;
    });
    const { job_id: id } = await client.submitJob({ command_argv: job.argv, workdir: ws.project });
    await waitFor(async () => (await job.lines("start", id)).length === 1, "the first attempt to start");
    const pidFile = `${job.marks}.pid.${id}.1`;
    await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== "", "the job's pid");
    const copy = Number(readFileSync(pidFile, "utf8"));
    const first = await client.getJob(id);
    const frozenId = first.worker_id as string;

    frozen.child.kill("SIGSTOP");
    await waitFor(
      async () => (await client.getJob(id)).attempt === 2,
      "the lease to expire and the job to requeue",
    );
    expect((await client.getRun(`job-${id}`)).status).toBe("lost");

    const other = startWorker(ws, server.url, join(ws.home, "worker-b"), ["--poll", "0.2", "--lease", "30"]);
    cleanup.push(async () => {
      other.child.kill("SIGKILL");
      await other.result;
    });
    await waitFor(
      async () => (await job.lines("start", id)).includes(`${id}.2`),
      "attempt 2 to start elsewhere",
    );
    const second = await client.getJob(id);
    expect(second.status).toBe("running");
    expect(second.worker_id).not.toBe(frozenId);

    // What the frozen worker would say when it wakes: refused, the job is not touched.
    const late = await client.completeJob(id, { worker_id: frozenId, attempt: 1, exit_code: 0 }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(late).toBeInstanceOf(QueueServerError);
    expect((late as QueueServerError).status).toBe(409);
    expect((late as QueueServerError).code).toBe("lease_lost");
    expect((await client.getJob(id)).status).toBe("running");

    // The frozen copy is still running; waking the worker ends it long before its 15 s sleep.
    expect(running(copy)).toBe(true);
    frozen.child.kill("SIGCONT");
    await waitFor(() => !running(copy), "the frozen worker to kill its copy", 30_000);
    expect(await job.lines("done", id)).toEqual([]);

    await waitFor(
      async () => (await client.getJob(id)).status === "completed",
      "attempt 2 to complete",
      60_000,
    );
    const final = await client.getJob(id);
    expect(final.attempt).toBe(2);
    expect(final.runs).toEqual([`job-${id}`, `job-${id}-2`]);
    expect(await job.lines("done", id)).toEqual([`${id}.2`]);
    expect((await client.getRun(`job-${id}`)).status).toBe("lost");
    expect((await client.getRun(`job-${id}-2`)).status).toBe("completed");
  });

  it("kill -9 of the server under load, then a restart: no job lost or duplicated", {
    timeout: 300_000,
  }, async () => {
    const ws = await workspace();
    const server = await startJobServer(ws, join(ws.home, "server"));
    cleanup.push(async () => void (await server.stop("SIGKILL")));
    const client = new QueueClient({ url: server.url, retries: 0 });
    const job = await markingJob(ws, 0.2);
    const workers: ReturnType<typeof startWorker>[] = [];
    for (let i = 0; i < 4; i++) {
      const w = startWorker(ws, server.url, join(ws.home, `worker-${i}`), ["--poll", "0.2", "--lease", "5"]);
      workers.push(w);
      cleanup.push(async () => {
        w.child.kill("SIGKILL");
        await w.result;
      });
    }

    await waitFor(async () => (await client.getWorkers()).length === 4, "the workers to register");

    // Submitters resend with the same idempotency key until the server answers.
    const TOTAL = 200;
    let submitted = 0;
    let unreachable = 0;
    const submitOne = async (i: number) => {
      for (;;) {
        try {
          await client.submitJob({
            command_argv: job.argv,
            workdir: ws.project,
            name: `k-${i}`,
            idempotency_key: `k-${i}`,
          });
          submitted++;
          return;
        } catch (error) {
          if (!(error instanceof QueueUnreachableError)) throw error;
          unreachable++;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    // Paced (~80 jobs/s in all) so that the kill lands while jobs are still arriving.
    const submitters = Array.from({ length: 4 }, async (_, s) => {
      for (let i = s; i < TOTAL; i += 4) {
        await submitOne(i);
        await new Promise((r) => setTimeout(r, 50));
      }
    });
    await waitFor(() => submitted >= 80, "80 submissions");
    const killed = await server.stop("SIGKILL");
    expect(killed.signal).toBe("SIGKILL");
    await new Promise((r) => setTimeout(r, 1000));
    await server.start();
    await Promise.all(submitters);
    expect(unreachable, "the submitters saw the server down").toBeGreaterThan(0);

    await waitFor(
      async () => {
        const s = await client.getStatus();
        return s.completed + s.failed + s.cancelled >= TOTAL;
      },
      "every job to finish",
      120_000,
    ).catch(async (error) => {
      const open = (await client.listJobs({ status: "active", limit: 1000 })).map((j) => JSON.stringify(j));
      throw new Error(
        `${error}\n${JSON.stringify(await client.getStatus())}\n${open.join("\n")}\n${workers.map((w) => w.log()).join("\n---\n")}\nserver:\n${server.log()}`,
      );
    });
    const jobs = await client.listJobs({ status: "all", limit: 1000 });
    expect(jobs).toHaveLength(TOTAL);
    expect(new Set(jobs.map((j) => j.name)).size).toBe(TOTAL);
    expect(jobs.filter((j) => j.status !== "completed")).toEqual([]);
    const done = await job.lines("done");
    expect(done).toHaveLength(TOTAL);
    expect(new Set(done.map((d) => d.split(".")[0])).size).toBe(TOTAL);
  });
});
