// The job queue's SQLite store on its own: lease expiry, fencing, retries with
// backoff, cancellation, workers and migrations, on a real database file with
// an injected clock (no sleeping), plus processes racing claims on one file.
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MAX_LOST_LEASES, QUEUE_DB_FILE, QUEUE_SCHEMA_VERSION, QueueStore } from "../src/mod.ts";
import { assertDistFresh, tempDir } from "./helpers.ts";
import { startClaimer } from "./queue-helpers.ts";

const T0 = Date.parse("2030-01-01T00:00:00.000Z");

/** A store whose clock only moves when the test says so. */
function clockedStore(dataDir: string, options: { offlineAfterMs?: number } = {}) {
  let now = T0;
  const store = new QueueStore(dataDir, { ...options, now: () => new Date(now) });
  return {
    store,
    advance(seconds: number) {
      now += seconds * 1000;
    },
    at(seconds: number) {
      return new Date(T0 + seconds * 1000).toISOString();
    },
  };
}

let root: { path: string; cleanup: () => Promise<void> };
let dirCount = 0;
const open: QueueStore[] = [];
function freshDir(): string {
  dirCount += 1;
  return join(root.path, `q${dirCount}`);
}
function track<T extends { store: QueueStore }>(value: T): T {
  open.push(value.store);
  return value;
}

beforeAll(async () => {
  root = await tempDir("queue-store");
});
afterEach(() => {
  for (const store of open.splice(0)) store.close();
});
afterAll(async () => {
  await root.cleanup();
});

const job = (extra: Record<string, unknown> = {}) => ({
  command_argv: ["python", "train.py"],
  workdir: "/w",
  ...extra,
});

describe("leases", () => {
  it("an expired lease requeues the job with attempt + 1, marks the run lost and fences the old worker", () => {
    const { store, advance } = track(clockedStore(freshDir()));
    const { job: created } = store.createJob(job());
    const first = store.claimJob({ worker_id: "w1", lease_seconds: 30 });
    expect(first).toMatchObject({
      id: created.id,
      attempt: 1,
      status: "running",
      run_id: `job-${created.id}`,
    });

    advance(29);
    expect(store.requeueExpired()).toEqual([]);
    expect(store.heartbeat(created.id, { worker_id: "w1", attempt: 1, lease_seconds: 30 })).toMatchObject({
      ok: true,
    });
    advance(31);
    expect(store.requeueExpired()).toEqual([
      { job_id: created.id, attempt: 1, run_id: `job-${created.id}`, status: "queued" },
    ]);
    expect(store.getRun(`job-${created.id}`)?.status).toBe("lost");
    expect(store.getJob(created.id)).toMatchObject({ status: "queued", attempt: 2, worker_id: null });

    // The job comes back to the same worker: its old attempt is still fenced off.
    const second = store.claimJob({ worker_id: "w1", lease_seconds: 30 });
    expect(second).toMatchObject({ attempt: 2, run_id: `job-${created.id}-2` });
    for (const outcome of [
      store.heartbeat(created.id, { worker_id: "w1", attempt: 1 }),
      store.complete(created.id, { worker_id: "w1", attempt: 1, exit_code: 0 }),
      store.fail(created.id, { worker_id: "w1", attempt: 1, error_message: "late" }),
      store.heartbeat(created.id, { worker_id: "w2", attempt: 2 }),
    ]) {
      expect(outcome).toMatchObject({ ok: false, code: "lease_lost" });
    }
    expect(store.runOwner(`job-${created.id}`, "w1", 1)).toMatchObject({ ok: false, code: "lease_lost" });
    expect(store.runOwner(`job-${created.id}-2`, "w1", 2)).toMatchObject({ ok: true });
    expect(store.getJob(created.id)?.status).toBe("running");

    const done = store.complete(created.id, { worker_id: "w1", attempt: 2, exit_code: 0 });
    expect(done).toMatchObject({ ok: true, run_status: "completed", repeated: false });
    // The answer was lost and the worker resends: same outcome, not an error.
    const again = store.complete(created.id, { worker_id: "w1", attempt: 2, exit_code: 0 });
    expect(again).toMatchObject({ ok: true, run_status: "completed", repeated: true });
    expect(store.getJob(created.id)).toMatchObject({
      status: "completed",
      exit_code: 0,
      runs: [`job-${created.id}`, `job-${created.id}-2`],
    });
    // A late report of the lost attempt still changes nothing.
    expect(store.complete(created.id, { worker_id: "w1", attempt: 1, exit_code: 3 })).toMatchObject({
      ok: false,
      code: "lease_lost",
    });
    expect(store.getJob(created.id)?.exit_code).toBe(0);
  });

  it(`fails a job whose lease was lost ${MAX_LOST_LEASES} times, without using up its retries`, () => {
    const { store, advance } = track(clockedStore(freshDir()));
    const { job: created } = store.createJob(job({ max_retries: 3 }));
    for (let attempt = 1; attempt <= MAX_LOST_LEASES; attempt++) {
      expect(store.claimJob({ worker_id: `w${attempt}`, lease_seconds: 10 })).toMatchObject({ attempt });
      advance(11);
      const [lost] = store.requeueExpired();
      expect(lost?.status).toBe(attempt < MAX_LOST_LEASES ? "queued" : "failed");
    }
    const failed = store.getJob(created.id);
    expect(failed?.status).toBe("failed");
    expect(failed?.error_message).toContain(`lost ${MAX_LOST_LEASES} times`);
    expect(store.listRuns({ job_id: created.id }).map((r) => r.status)).toEqual(
      Array(MAX_LOST_LEASES).fill("lost"),
    );
    expect(store.claimJob({ worker_id: "w9" })).toBeNull();
  });

  it("a claim takes back expired leases first, so the expired job is claimable at once", () => {
    const { store, advance } = track(clockedStore(freshDir()));
    const { job: created } = store.createJob(job());
    store.claimJob({ worker_id: "w1", lease_seconds: 5 });
    expect(store.claimJob({ worker_id: "w2", lease_seconds: 5 })).toBeNull();
    advance(6);
    expect(store.claimJob({ worker_id: "w2", lease_seconds: 5 })).toMatchObject({
      id: created.id,
      attempt: 2,
    });
  });

  it("extends running leases by a lease period (theirs, or a longer one given) at startup", () => {
    const { store, advance, at } = track(clockedStore(freshDir()));
    const a = store.createJob(job()).job.id;
    const b = store.createJob(job()).job.id;
    store.claimJob({ worker_id: "w1", lease_seconds: 20 });
    store.claimJob({ worker_id: "w1", lease_seconds: 600 });
    advance(100); // the server was down: job a's lease ended during the outage
    expect(store.extendLeasesAtStartup()).toBe(2);
    expect(store.getJob(a)?.lease_expires_at).toBe(at(120));
    expect(store.getJob(b)?.lease_expires_at).toBe(at(700));
    expect(store.extendLeasesAtStartup(undefined, 1000)).toBe(2);
    expect(store.getJob(a)?.lease_expires_at).toBe(at(1100));
    expect(store.requeueExpired()).toEqual([]);
    expect(store.heartbeat(a, { worker_id: "w1", attempt: 1, lease_seconds: 20 })).toMatchObject({
      ok: true,
    });
  });
});

describe("retries", () => {
  it("requeues a failed attempt after retry_backoff × 2^(n-1), then fails for good", () => {
    const { store, advance, at } = track(clockedStore(freshDir()));
    const { job: created } = store.createJob(job({ max_retries: 2, retry_backoff_seconds: 10 }));
    const w = { worker_id: "w1", lease_seconds: 600 };

    store.claimJob(w);
    const first = store.complete(created.id, { worker_id: "w1", attempt: 1, exit_code: 1 });
    expect(first).toMatchObject({ ok: true, run_status: "failed" });
    expect(store.getJob(created.id)).toMatchObject({ status: "queued", attempt: 2, available_at: at(10) });
    advance(9);
    expect(store.claimJob(w)).toBeNull();
    advance(1);
    expect(store.claimJob(w)).toMatchObject({ attempt: 2, run_id: `job-${created.id}-2` });

    expect(
      store.fail(created.id, { worker_id: "w1", attempt: 2, error_message: "timed out", reason: "timeout" }),
    ).toMatchObject({
      ok: true,
      run_status: "failed",
    });
    expect(store.getJob(created.id)).toMatchObject({
      status: "queued",
      attempt: 3,
      available_at: at(10 + 20),
    });
    advance(19);
    expect(store.claimJob(w)).toBeNull();
    advance(1);
    expect(store.claimJob(w)).toMatchObject({ attempt: 3 });

    store.complete(created.id, { worker_id: "w1", attempt: 3, exit_code: 2 });
    expect(store.getJob(created.id)).toMatchObject({ status: "failed", attempt: 3, exit_code: 2 });
    expect(store.listRuns({ job_id: created.id }).map((r) => [r.attempt, r.status])).toEqual([
      [3, "failed"],
      [2, "failed"],
      [1, "failed"],
    ]);
    // The worker resends its last report: the recorded outcome.
    expect(store.complete(created.id, { worker_id: "w1", attempt: 3, exit_code: 2 })).toMatchObject({
      ok: true,
      repeated: true,
      run_status: "failed",
    });
    // So does a resend of an earlier attempt that moved the job on by itself.
    expect(store.complete(created.id, { worker_id: "w1", attempt: 1, exit_code: 1 })).toMatchObject({
      ok: true,
      repeated: true,
    });
  });

  it("caps the backoff at one hour", () => {
    const { store, at } = track(clockedStore(freshDir()));
    const { job: created } = store.createJob(job({ max_retries: 5, retry_backoff_seconds: 3000 }));
    store.claimJob({ worker_id: "w1" });
    store.complete(created.id, { worker_id: "w1", attempt: 1, exit_code: 1 });
    expect(store.getJob(created.id)?.available_at).toBe(at(3000));
    // Second failure would wait 6000 s: capped at 3600.
    const s2 = clockedStore(freshDir());
    track(s2);
    const j2 = s2.store.createJob(job({ max_retries: 5, retry_backoff_seconds: 3000 })).job.id;
    s2.store.claimJob({ worker_id: "w1" });
    s2.store.complete(j2, { worker_id: "w1", attempt: 1, exit_code: 1 });
    s2.advance(3000);
    s2.store.claimJob({ worker_id: "w1" });
    s2.store.complete(j2, { worker_id: "w1", attempt: 2, exit_code: 1 });
    expect(s2.store.getJob(j2)?.available_at).toBe(s2.at(3000 + 3600));
  });

  it("retryJob copies a finished job's spec into a new job linked by retry_of", () => {
    const { store } = track(clockedStore(freshDir()));
    const spec = job({ name: "lr", config: { lr: 0.1 }, tags: ["a"], priority: 3, gpus: 1, max_retries: 2 });
    const { job: original } = store.createJob({ ...spec, idempotency_key: "k1" });
    expect(store.retryJob(original.id)).toMatchObject({ ok: false, code: "job_not_finished" });
    store.cancelJob(original.id);
    const retried = store.retryJob(original.id);
    if (!retried.ok) throw new Error(retried.detail);
    expect(retried.job).toMatchObject({ ...spec, status: "queued", attempt: 1, retry_of: original.id });
    expect(retried.job.id).not.toBe(original.id);
    expect(store.retryJob(999)).toMatchObject({ ok: false, code: "job_not_found" });
  });
});

describe("cancel", () => {
  it("a running job is cancelled through its worker; a lost one ends cancelled, not requeued", () => {
    const { store, advance } = track(clockedStore(freshDir()));
    const a = store.createJob(job()).job.id;
    const b = store.createJob(job({ max_retries: 3 })).job.id;
    store.claimJob({ worker_id: "w1", lease_seconds: 30 });
    store.claimJob({ worker_id: "w2", lease_seconds: 30 });

    expect(store.cancelJob(a)).toMatchObject({ ok: true, previous_status: "running", status: "running" });
    expect(store.heartbeat(a, { worker_id: "w1", attempt: 1, lease_seconds: 30 })).toMatchObject({
      ok: true,
      cancel_requested: true,
    });
    // The worker stopped the process (non-zero exit): cancelled, not retried.
    expect(store.complete(a, { worker_id: "w1", attempt: 1, exit_code: -15 })).toMatchObject({
      ok: true,
      run_status: "cancelled",
    });
    expect(store.getJob(a)?.status).toBe("cancelled");
    expect(store.cancelJob(a)).toMatchObject({ ok: false, code: "job_finished" });

    store.cancelJob(b);
    advance(31);
    expect(store.requeueExpired()).toEqual([
      { job_id: b, attempt: 1, run_id: `job-${b}`, status: "cancelled" },
    ]);
    expect(store.getJob(b)?.status).toBe("cancelled");
  });

  it("cancelQueued cancels exactly the queued jobs", () => {
    const { store } = track(clockedStore(freshDir()));
    const ids = [1, 2, 3, 4].map(() => store.createJob(job()).job.id);
    store.claimJob({ worker_id: "w1" });
    expect(store.cancelQueued()).toEqual(ids.slice(1));
    expect(store.getJob(ids[0] as number)?.status).toBe("running");
    expect(store.cancelQueued()).toEqual([]);
  });
});

describe("workers", () => {
  it("lists workers idle, busy and offline, and takes back an unregistered worker's jobs", () => {
    const { store, advance } = track(clockedStore(freshDir(), {}));
    store.registerWorker({ worker_id: "busy", hostname: "h1", gpu_ids: [0, 1], max_jobs: 2 });
    store.registerWorker({ worker_id: "idle", hostname: "h2" });
    store.registerWorker({ worker_id: "gone", hostname: "h3" });
    const j = store.createJob(job()).job.id;
    store.claimJob({ worker_id: "busy", free_gpus: [0, 1], lease_seconds: 60 });
    expect(store.getRun(`job-${j}`)?.hostname).toBe("h1");
    for (const _ of [1, 2]) {
      advance(50);
      expect(store.heartbeat(j, { worker_id: "busy", attempt: 1, lease_seconds: 60 })).toMatchObject({
        ok: true,
      });
    }
    store.claimJob({ worker_id: "idle", lease_seconds: 60 });
    advance(30); // "gone" last heard 130 s ago, more than 2 × its 60 s lease
    const byId = Object.fromEntries(store.listWorkers().map((w) => [w.id, w]));
    expect(byId.busy).toMatchObject({
      status: "busy",
      current_job_id: j,
      current_job_ids: [j],
      gpu_id: 0,
      gpu_ids: [0, 1],
    });
    expect(byId.idle).toMatchObject({ status: "idle", current_job_id: null });
    expect(byId.gone?.status).toBe("offline");
    expect(store.status()).toMatchObject({ running: 1, workers_online: 2, workers_total: 3 });

    expect(store.unregisterWorker("busy")).toEqual([
      { job_id: j, attempt: 1, run_id: `job-${j}`, status: "queued" },
    ]);
    expect(store.getJob(j)).toMatchObject({ status: "queued", attempt: 2 });
    expect(store.listWorkers().map((w) => w.id)).toEqual(["gone", "idle"]);
  });
});

describe("migrations", () => {
  it("opens an existing database again and refuses one newer than the code", () => {
    const dir = freshDir();
    const first = new QueueStore(dir);
    const id = first.createJob(job()).job.id;
    first.close();
    const second = new QueueStore(dir);
    expect(second.getJob(id)?.status).toBe("queued");
    second.close();

    const raw = new Database(join(dir, QUEUE_DB_FILE));
    expect(raw.pragma("user_version", { simple: true })).toBe(QUEUE_SCHEMA_VERSION);
    expect(raw.pragma("journal_mode", { simple: true })).toBe("wal");
    raw.pragma(`user_version = ${QUEUE_SCHEMA_VERSION + 1}`);
    raw.close();
    let refused: unknown;
    try {
      new QueueStore(dir).close();
    } catch (error) {
      refused = error;
    }
    expect(refused).toMatchObject({ code: "queue_db_too_new" });
    expect((refused as Error).message).toContain(`schema version ${QUEUE_SCHEMA_VERSION + 1}`);
  });
});

describe("several processes on one database file", () => {
  beforeAll(async () => {
    await assertDistFresh();
  });

  it("never hands one job to two stores racing claims", async () => {
    const dir = freshDir();
    const store = new QueueStore(dir);
    open.push(store);
    const ids = Array.from({ length: 400 }, () => store.createJob(job()).job.id);
    const children = ["p1", "p2", "p3"].map((w) => startClaimer(["store", dir, w]));
    await Promise.all(children.map((c) => c.ready));
    for (const c of children) c.go();
    const mine: number[] = [];
    for (;;) {
      const claimed = store.claimJob({ worker_id: "parent" });
      if (!claimed) break;
      mine.push(claimed.id);
      store.complete(claimed.id, { worker_id: "parent", attempt: 1, exit_code: 0 });
    }
    const theirs = await Promise.all(children.map((c) => c.claimed));
    const all = [...mine, ...theirs.flat()];
    expect(all.sort((a, b) => a - b)).toEqual(ids);
    expect(store.listRuns({ limit: 1000 })).toHaveLength(ids.length);
    expect(store.status()).toMatchObject({ completed: ids.length, queued: 0, running: 0 });
  });
});
