// Runner records and tasks in the queue's SQLite store (docs/runner.md): tasks
// are jobs of kind runner_task that only runner-aware workers claim, wait for
// the tasks they depend on, fail when one of those did not complete, go to the
// one worker holding a stateful service's instance, and are cancelled when
// their runner's owner closes it. A real database file, an injected clock.
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { QueueStore } from "../src/mod.ts";
import { tempDir } from "./helpers.ts";

const T0 = Date.parse("2030-01-01T00:00:00.000Z");
const KEY = "a".repeat(64);
const OWNER = "owner-0001";

let root: { path: string; cleanup: () => Promise<void> };
let n = 0;
const open: QueueStore[] = [];

beforeAll(async () => {
  root = await tempDir("runner");
});
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});
afterAll(async () => {
  await root.cleanup();
});

function fresh() {
  let now = T0;
  const store = new QueueStore(join(root.path, `r${++n}`), { now: () => new Date(now) });
  open.push(store);
  store.registerWorker({ worker_id: "w1", hostname: "h" });
  store.registerWorker({ worker_id: "w2", hostname: "h" });
  return {
    store,
    advance(seconds: number) {
      now += seconds * 1000;
    },
  };
}

function withRunner(store: QueueStore, stateful = false) {
  const created = store.createRunner({
    name: "exp",
    bundle_key: KEY,
    store_url: "file:///tmp/store",
    owner: OWNER,
  });
  if (!created.ok) throw new Error(created.detail);
  const service = store.createService("exp", {
    id: "svc",
    stateful,
    target: "services/svc.pkl",
    label: "m.f",
  });
  if (!service.ok) throw new Error(service.detail);
}

function tasks(store: QueueStore, specs: Array<{ depends_on?: number[] }>): number[] {
  const out = store.createTasks("exp", {
    tasks: specs.map((s, i) => ({
      service: "svc",
      method: "__call__",
      payload: { result: `objects/${i}.pkl` },
      ...s,
    })),
  });
  if (!out.ok) throw new Error(out.detail);
  return out.tasks.map((t) => t.job_id);
}

const claim = (store: QueueStore, worker: string) =>
  store.claimJob({ worker_id: worker, kinds: ["job", "runner_task"], lease_seconds: 10 });

describe("runner records", () => {
  it("reuses a runner of the same name unless asked to fail, and keeps its first owner", () => {
    const { store } = fresh();
    withRunner(store);
    const again = store.createRunner({
      name: "exp",
      bundle_key: "b".repeat(64),
      store_url: "file:///elsewhere",
      owner: "owner-0002",
    });
    expect(again).toMatchObject({ ok: true, created: false, runner: { owner: OWNER, bundle_key: KEY } });
    expect(again.ok && again.runner.services.map((s) => s.id)).toEqual(["svc"]);
    expect(
      store.createRunner({
        name: "exp",
        bundle_key: KEY,
        store_url: "file:///x",
        owner: "owner-0002",
        fail_if_exists: true,
      }),
    ).toMatchObject({ ok: false, code: "runner_exists" });
  });

  it("refuses tasks for an unknown runner or service", () => {
    const { store } = fresh();
    expect(
      store.createTasks("nope", { tasks: [{ service: "svc", method: "f", payload: {} }] }),
    ).toMatchObject({ ok: false, code: "runner_not_found" });
    withRunner(store);
    expect(
      store.createTasks("exp", { tasks: [{ service: "other", method: "f", payload: {} }] }),
    ).toMatchObject({ ok: false, code: "service_not_found" });
  });
});

describe("runner tasks as jobs", () => {
  it("are listed as jobs of kind runner_task and claimed only by workers that ask for them", () => {
    const { store } = fresh();
    withRunner(store);
    const [id] = tasks(store, [{}]);
    const listed = store.listJobs({ status: "all" }).jobs;
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({
      id,
      kind: "runner_task",
      runner: "exp",
      service: "svc",
      status: "queued",
    });
    expect(store.claimJob({ worker_id: "w1", lease_seconds: 10 })).toBeNull();
    expect(claim(store, "w1")).toMatchObject({
      id,
      kind: "runner_task",
      config: { result: "objects/0.pkl" },
    });
  });

  it("wait for the tasks they depend on, and fail when one of those did not complete", () => {
    const { store } = fresh();
    withRunner(store);
    const [a, b, c] = tasks(store, [{}, {}, {}]);
    const [afterA] = tasks(store, [{ depends_on: [a as number] }]);
    const [afterB] = tasks(store, [{ depends_on: [b as number] }]);
    const order: number[] = [];
    for (let i = 0; i < 3; i++) order.push((claim(store, "w1") as { id: number }).id);
    expect(order).toEqual([a, b, c]);
    expect(claim(store, "w1")).toBeNull();
    store.complete(a as number, { worker_id: "w1", exit_code: 0 });
    store.complete(b as number, { worker_id: "w1", exit_code: 1, error_message: "boom" });
    expect(claim(store, "w2")).toMatchObject({ id: afterA });
    expect(claim(store, "w2")).toBeNull();
    const [orphan] = store.listTasks("exp", [afterB as number]);
    expect(orphan).toMatchObject({ status: "failed" });
    expect(orphan?.error_message).toContain(`${b} failed`);
  });

  it("of a stateful service go only to the worker holding its instance, and fail if it is lost", () => {
    const { store, advance } = fresh();
    withRunner(store, true);
    const [a, b, c] = tasks(store, [{}, {}, {}]);
    expect(claim(store, "w1")).toMatchObject({ id: a });
    expect(claim(store, "w2")).toBeNull();
    expect(claim(store, "w1")).toMatchObject({ id: b });
    store.complete(a as number, { worker_id: "w1", exit_code: 0 });
    advance(11); // w1's lease on b expires: its instance is gone with it
    expect(claim(store, "w2")).toBeNull();
    const [lost] = store.listTasks("exp", [b as number]);
    expect(lost).toMatchObject({ status: "failed" });
    expect(lost?.error_message).toContain("stateful instance");
    store.unregisterWorker("w1");
    expect(store.listTasks("exp", [c as number])[0]).toMatchObject({ status: "failed" });
  });

  it("of a service with max_instances run no more than that many at once", () => {
    const { store } = fresh();
    withRunner(store);
    const limited = store.createService("exp", {
      id: "one-at-a-time",
      target: "services/svc.pkl",
      max_instances: 1,
    });
    expect(limited).toMatchObject({ ok: true, service: { max_instances: 1 } });
    const out = store.createTasks("exp", {
      tasks: [0, 1].map(() => ({ service: "one-at-a-time", method: "__call__", payload: {} })),
    });
    if (!out.ok) throw new Error(out.detail);
    const [a, b] = out.tasks.map((t) => t.job_id);
    expect(claim(store, "w1")).toMatchObject({ id: a });
    expect(claim(store, "w2")).toBeNull();
    store.complete(a as number, { worker_id: "w1", exit_code: 0 });
    expect(claim(store, "w2")).toMatchObject({ id: b });
  });

  it("are requeued like jobs when a stateless task's lease expires", () => {
    const { store, advance } = fresh();
    withRunner(store);
    const [a] = tasks(store, [{}]);
    claim(store, "w1");
    advance(11);
    expect(claim(store, "w2")).toMatchObject({ id: a, attempt: 2 });
  });
});

describe("closing a runner", () => {
  it("is for its owner only; it cancels queued tasks, asks running ones to stop, and forgets the runner", () => {
    const { store } = fresh();
    withRunner(store);
    const [running, queued] = tasks(store, [{}, {}]);
    claim(store, "w1");
    expect(store.closeRunner("exp", "owner-0002")).toMatchObject({ ok: false, code: "runner_not_owned" });
    expect(store.closeRunner("exp", OWNER)).toMatchObject({
      ok: true,
      cancelled: [queued],
      cancel_requested: [running],
    });
    expect(store.getRunner("exp")).toBeUndefined();
    expect(store.heartbeat(running as number, { worker_id: "w1" })).toMatchObject({ cancel_requested: true });
  });

  it("cancels only the listed tasks of that runner for a session that reused it", () => {
    const { store } = fresh();
    withRunner(store);
    const [running, mine, theirs] = tasks(store, [{}, {}, {}]);
    claim(store, "w1");
    expect(store.cancelTasks("exp", { ids: [running as number, mine as number] })).toEqual({
      cancelled: [mine],
      cancel_requested: [running],
    });
    expect(store.listTasks("exp", [theirs as number])[0]).toMatchObject({ status: "queued" });
    expect(store.cancelTasks("other", { ids: [theirs as number] })).toEqual({
      cancelled: [],
      cancel_requested: [],
    });
    expect(store.getRunner("exp")).toBeDefined();
  });

  it("keeps a database from before runners readable (migration 2 adds kind with default job)", () => {
    const { store } = fresh();
    const { job } = store.createJob({ command_argv: ["true"], workdir: "/" });
    expect(job.kind).toBe("job");
    const raw = new Database(store.file, { readonly: true });
    try {
      expect(raw.pragma("user_version", { simple: true })).toBe(2);
    } finally {
      raw.close();
    }
  });
});
