// A remote agent's run sync through a presigned POST policy (what it holds instead of a store
// key), against the S3 emulator, which enforces POST policies as S3 does. The policy is made by
// the real presignPostPolicy (the AWS SDK's createPresignedPost); the run directory is walked by
// the agent's RunDirSync and read back by the CLI's StoreRunSource, unchanged.
import { appendFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RunDirSync } from "@runctl/agent";
import {
  isRunctlError,
  PostPolicyRunSync,
  PostPolicySyncError,
  type PresignedPost,
  parseS3ErrorBody,
  postSyncStateFile,
  readStoredRunFile,
} from "@runctl/core";
import { S3ArtifactStore } from "@runctl/s3";
import { StoreRunSource } from "@runctl/tracker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type S3Emulator, startS3Emulator } from "../src/s3-emulator.ts";

const KEY = { accessKeyId: "AKIDPOST", secretAccessKey: "post-secret" };
let s3: S3Emulator;
let tmp: string;
let store: S3ArtifactStore;
let source: StoreRunSource;
let n = 0;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "runctl-post-sync-"));
  s3 = await startS3Emulator({ dataDir: join(tmp, "s3"), credentials: [KEY], buckets: ["artifacts"] });
  store = S3ArtifactStore.fromUrl("s3://artifacts/store", {
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    partSizeBytes: 5 * 1024 * 1024,
    concurrency: 4,
    credentials: KEY,
  });
  source = new StoreRunSource(store, "runs");
});
afterAll(async () => {
  await s3?.stop();
  await rm(tmp, { recursive: true, force: true });
});

/** A fresh run: its id, its run directory, and a POST policy for its prefix. */
async function newRun(
  options: { maxBytes?: number; expiresInSeconds?: number } = {},
): Promise<{ id: string; runDir: string; policy: PresignedPost }> {
  const id = `run-${n++}`;
  const runDir = join(tmp, "dirs", id);
  await mkdir(runDir, { recursive: true });
  const policy = await (store.presignPost as NonNullable<S3ArtifactStore["presignPost"]>)(`runs/${id}/`, {
    expiresInSeconds: options.expiresInSeconds ?? 3600,
    maxBytes: options.maxBytes ?? 1024 * 1024,
  });
  return { id, runDir, policy };
}

function target(runDir: string, policy: PresignedPost, stateFile = postSyncStateFile(runDir)) {
  return new PostPolicyRunSync({ policy, stateFile });
}

async function syncWith(runDir: string, t: PostPolicyRunSync): Promise<RunDirSync> {
  const sync = new RunDirSync(runDir, t, {
    onFileError: (path, error) => {
      throw new Error(`${path}: ${error.message}`);
    },
  });
  await sync.resume();
  await sync.sync();
  return sync;
}

let line = 0;
/** Metric lines numbered across the whole test file, so a duplicate or a hole shows. */
function metrics(count: number): string {
  let out = "";
  for (let i = 0; i < count; i++, line++) {
    out += `${JSON.stringify({ _idx: line, _timestamp: 1_700_000_000 + line, loss: 1 / (line + 1) })}\n`;
  }
  return out;
}

async function stored(id: string, path: string): Promise<string> {
  const data = await source.readFile(id, path);
  expect(data, `${path} is in the store`).not.toBeNull();
  return (data as Buffer).toString("utf8");
}

/** The `_idx` of every stored metric line, in order: no line twice, none missing. */
function indices(text: string): number[] {
  return text
    .trimEnd()
    .split("\n")
    .map((l) => (JSON.parse(l) as { _idx: number })._idx);
}

function consecutive(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => from + i);
}

async function error(promise: Promise<unknown>): Promise<PostPolicySyncError> {
  const e = await promise.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(PostPolicySyncError);
  return e as PostPolicySyncError;
}

describe("PostPolicyRunSync", () => {
  it("a run directory synced through the policy reads back complete through StoreRunSource", async () => {
    const { id, runDir, policy } = await newRun();
    const first = line;
    await writeFile(join(runDir, "metrics.jsonl"), metrics(50));
    await writeFile(join(runDir, "output.log"), "epoch 1\n");
    await writeFile(join(runDir, "meta.json"), `${JSON.stringify({ id, status: "running" })}\n`);
    await mkdir(join(runDir, "artifacts", "plots"), { recursive: true });
    await writeFile(join(runDir, "artifacts", "plots", "loss.svg"), "<svg/>");
    const t = target(runDir, policy);
    const sync = await syncWith(runDir, t);
    // The run goes on; the next passes send only what grew, and the final state of meta.json.
    await appendFile(join(runDir, "metrics.jsonl"), metrics(30));
    await appendFile(join(runDir, "output.log"), "epoch 2\n");
    await sync.sync();
    await appendFile(join(runDir, "metrics.jsonl"), metrics(20));
    await writeFile(join(runDir, "meta.json"), `${JSON.stringify({ id, status: "completed" })}\n`);
    await sync.sync();

    expect(await source.resolve(id)).toBe(id);
    expect(await source.files(id)).toEqual([
      "artifacts/plots/loss.svg",
      "meta.json",
      "metrics.jsonl",
      "output.log",
    ]);
    expect(indices(await stored(id, "metrics.jsonl"))).toEqual(consecutive(first, 100));
    expect(await stored(id, "output.log")).toBe("epoch 1\nepoch 2\n");
    expect(JSON.parse(await stored(id, "meta.json"))).toEqual({ id, status: "completed" });
    expect(await stored(id, "artifacts/plots/loss.svg")).toBe("<svg/>");
    // Appends are segments under the policy's prefix, in StoreRunSync's layout.
    const keys = (await store.list(`runs/${id}/`)).map((o) => o.key);
    expect(keys.filter((k) => k.startsWith(`runs/${id}/metrics.jsonl.segments/`))).toHaveLength(3);
    expect(t.location).toBe(`${s3.endpoint}/artifacts/store/runs/${id}`);
  });

  it("its POST policy is refused outside its prefix: 403, not transient, the error names the prefix", async () => {
    const { runDir, policy } = await newRun();
    const other = await newRun();
    // A policy for this run, pointed at another run's prefix (the signed conditions stay this run's).
    const t = target(runDir, { ...policy, keyPrefix: `store/runs/${other.id}/` });
    const e = await error(t.replace("x", 5, async () => Buffer.from("stolen")));
    expect(e.status).toBe(403);
    expect(e.s3Code).toBe("AccessDenied");
    expect(e.code).toBe("post_policy_refused");
    expect(t.isTransient(e)).toBe(false);
    // S3's message quotes the condition that failed: the prefix this policy may write.
    expect(e.message).toContain(`["starts-with", "$key", "${policy.keyPrefix}"]`);
    expect(e.hint).toContain(`store/runs/${other.id}/`);
    expect(await store.head(`runs/${other.id}/x`)).toBeNull();
    expect(await store.list(`runs/${other.id}/`)).toEqual([]);

    // The same, as a plain form POST: a key outside the prefix is refused by the store itself.
    const form = new FormData();
    for (const [k, v] of Object.entries(policy.fields)) form.append(k, v);
    form.set("key", `store/runs/${other.id}/x`);
    form.append("file", new Blob(["x"]), "x");
    const res = await fetch(policy.url, { method: "POST", body: form });
    expect(res.status).toBe(403);
    expect((await parseS3ErrorBody(await res.text()))?.code).toBe("AccessDenied");
  });

  it("over its size a file is refused, not transient, naming the limit; appends go as several segments", async () => {
    const { id, runDir, policy } = await newRun({ maxBytes: 64 });
    const t = target(runDir, policy);
    const big = Buffer.alloc(100, 0x61);
    const local = await error(t.replace("artifacts/big.bin", big.length, async () => big));
    expect(local.code).toBe("sync_too_large");
    expect(local.message).toContain("at most 64 bytes");
    expect(t.isTransient(local)).toBe(false);
    // The store enforces the signed limit even when the holder claims a larger one.
    const liar = target(runDir, { ...policy, maxBytes: 1000 });
    const remote = await error(liar.replace("artifacts/big.bin", big.length, async () => big));
    expect(remote.status).toBe(400);
    expect(remote.s3Code).toBe("EntityTooLarge");
    expect(remote.code).toBe("sync_too_large");
    expect(liar.isTransient(remote)).toBe(false);
    expect(await store.head(`runs/${id}/artifacts/big.bin`)).toBeNull();

    // RunDirSync reports the refused file and goes on with the rest.
    await writeFile(join(runDir, "artifacts-big.bin"), big);
    const first = line;
    await writeFile(join(runDir, "metrics.jsonl"), metrics(10));
    const refused: string[] = [];
    const sync = new RunDirSync(runDir, target(runDir, policy), {
      onFileError: (path, e) => refused.push(`${path}: ${(e as PostPolicySyncError).code}`),
    });
    await sync.resume();
    await sync.sync();
    expect(refused).toEqual(["artifacts-big.bin: sync_too_large"]);
    // Each segment within the limit; the file reads back whole.
    const segments = (await store.list(`runs/${id}/metrics.jsonl.segments/`)).map((o) => o.size);
    expect(segments.length).toBeGreaterThan(1);
    expect(Math.max(...segments)).toBeLessThanOrEqual(64);
    expect(indices(await stored(id, "metrics.jsonl"))).toEqual(consecutive(first, 10));
  });

  it("after expiry a send is refused as transient, and after renew() goes through with nothing lost", async () => {
    const { id, runDir, policy } = await newRun({ expiresInSeconds: 1 });
    const expiring: number[] = [];
    const t = new PostPolicyRunSync({
      policy,
      stateFile: postSyncStateFile(runDir),
      onExpiring: (msLeft) => expiring.push(msLeft),
    });
    const first = line;
    await writeFile(join(runDir, "metrics.jsonl"), metrics(40));
    await writeFile(join(runDir, "meta.json"), '{"status":"running"}\n');
    // Wait for the policy's own clock, not a guess: its expiry is in the policy.
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(policy.expiresAt) - Date.now()) + 50));
    const sync = new RunDirSync(runDir, t);
    await sync.resume();
    const e = await error(sync.sync());
    expect(e.code).toBe("post_policy_expired");
    expect(e.status).toBe(403);
    expect(e.s3Code).toBe("AccessDenied");
    expect(t.isTransient(e)).toBe(true);
    expect(expiring).toHaveLength(1);
    expect(expiring[0]).toBeLessThanOrEqual(0);
    expect(await store.list(`runs/${id}/`)).toEqual([]);

    // A renewal for another run is refused; one for this run is taken.
    const otherRun = await newRun();
    expect(() => t.renew(otherRun.policy)).toThrow(/not this run's/);
    const fresh = await (store.presignPost as NonNullable<S3ArtifactStore["presignPost"]>)(`runs/${id}/`, {
      expiresInSeconds: 3600,
      maxBytes: 1024 * 1024,
    });
    t.renew(fresh);
    expect(t.expiresAt).toBe(fresh.expiresAt);
    await appendFile(join(runDir, "metrics.jsonl"), metrics(10));
    await sync.sync();
    expect(indices(await stored(id, "metrics.jsonl"))).toEqual(consecutive(first, 50));
    expect(await stored(id, "meta.json")).toBe('{"status":"running"}\n');
  });

  describe("an agent restarted mid-run stores no metric twice", () => {
    it("with its state file: continues where the store is, and an overlapping resend changes nothing", async () => {
      const { id, runDir, policy } = await newRun({ maxBytes: 700 });
      const first = line;
      await writeFile(join(runDir, "metrics.jsonl"), metrics(30));
      await syncWith(runDir, target(runDir, policy));
      // A POST acknowledged but the agent killed before its state was rewritten: the state
      // lags the store. Simulated by keeping the state of an earlier pass.
      const lagging = join(tmp, `${id}-state.json`);
      await cp(postSyncStateFile(runDir), lagging);
      await appendFile(join(runDir, "metrics.jsonl"), metrics(30));
      await syncWith(runDir, target(runDir, policy));
      await cp(lagging, postSyncStateFile(runDir));

      // The restarted agent: a new target on the same state file.
      await appendFile(join(runDir, "metrics.jsonl"), metrics(30));
      const restarted = target(runDir, policy);
      const held = await restarted.heldBytes();
      expect(held["metrics.jsonl"]).toBeGreaterThan(0);
      await syncWith(runDir, restarted);
      // And a resend from an arbitrary earlier offset, chunked differently.
      const local = await readFile(join(runDir, "metrics.jsonl"));
      await restarted.append("metrics.jsonl", 37, local.subarray(37, 1337));

      const text = await stored(id, "metrics.jsonl");
      expect(Buffer.from(text).equals(local)).toBe(true);
      expect(indices(text)).toEqual(consecutive(first, 90));
    });

    it("without a state file: everything is resent from 0, with other chunk boundaries, and read once", async () => {
      const { id, runDir, policy } = await newRun({ maxBytes: 500 });
      const first = line;
      const t = target(runDir, policy);
      const sync = new RunDirSync(runDir, t);
      await sync.resume();
      // Several passes while the file grows: segment boundaries where each pass ended.
      for (let i = 0; i < 4; i++) {
        await appendFile(join(runDir, "metrics.jsonl"), metrics(7));
        await sync.sync();
      }
      const before = (await store.list(`runs/${id}/metrics.jsonl.segments/`)).length;
      await rm(join(runDir, ".sync"), { recursive: true });
      await appendFile(join(runDir, "metrics.jsonl"), metrics(12));
      const restarted = target(runDir, policy);
      expect(await restarted.heldBytes()).toEqual({});
      await syncWith(runDir, restarted);
      // The old segments are still there (a POST cannot delete), overlapping the new ones.
      const after = (await store.list(`runs/${id}/metrics.jsonl.segments/`)).length;
      expect(after).toBeGreaterThan(before);
      const text = await stored(id, "metrics.jsonl");
      expect(Buffer.from(text).equals(await readFile(join(runDir, "metrics.jsonl")))).toBe(true);
      expect(indices(text)).toEqual(consecutive(first, 40));
    });
  });

  it("two targets racing on the same offsets with the same bytes leave a correct file", async () => {
    const { id, runDir, policy } = await newRun({ maxBytes: 400 });
    const first = line;
    const a = new RunDirSync(runDir, target(runDir, policy, join(tmp, `${id}-a.json`)));
    // The second cuts its appends at other boundaries (within the signed limit): overlaps, not just overwrites.
    const b = new RunDirSync(runDir, target(runDir, { ...policy, maxBytes: 300 }, join(tmp, `${id}-b.json`)));
    await a.resume();
    await b.resume();
    for (let i = 0; i < 5; i++) {
      await appendFile(join(runDir, "metrics.jsonl"), metrics(9));
      await writeFile(join(runDir, "meta.json"), `${JSON.stringify({ pass: i })}\n`);
      await Promise.all([a.sync(), b.sync()]);
    }
    const text = await stored(id, "metrics.jsonl");
    expect(indices(text)).toEqual(consecutive(first, 45));
    expect(JSON.parse(await stored(id, "meta.json"))).toEqual({ pass: 4 });
    // The reader that the CLI's show/logs use agrees with the core function.
    expect((await readStoredRunFile(store, `runs/${id}`, "metrics.jsonl"))?.toString("utf8")).toBe(text);
  });

  it("an unreachable store is transient", async () => {
    const { runDir, policy } = await newRun();
    // A port that was just free: nothing listens there.
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const t = target(runDir, { ...policy, url: `http://127.0.0.1:${port}/artifacts` });
    const e = await error(t.replace("meta.json", 2, async () => Buffer.from("{}")));
    expect(e.code).toBe("store_unreachable");
    expect(t.isTransient(e)).toBe(true);
    expect(isRunctlError(e)).toBe(true);
  });

  it("5xx and SlowDown are transient; a body that is not S3's still gives an error", async () => {
    const { runDir, policy } = await newRun();
    // S3's own answers when it is overloaded or failing (the emulator has no fault injection for POST).
    const answers = [
      [
        503,
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>R</RequestId><HostId>H</HostId></Error>',
      ],
      [
        500,
        "<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>",
      ],
      [502, "<html><body>Bad Gateway</body></html>"],
    ] as const;
    let i = 0;
    const server = createHttpServer((req, res) => {
      req.resume();
      req.on("end", () => {
        const [status, body] = answers[i++] as (typeof answers)[number];
        res.writeHead(status, { "content-type": "application/xml" }).end(body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const t = target(runDir, { ...policy, url: `http://127.0.0.1:${port}/artifacts` });
      const put = () => t.append("output.log", 0, Buffer.from("line\n"));
      const slow = await error(put());
      expect([slow.status, slow.s3Code, slow.code, t.isTransient(slow)]).toEqual([
        503,
        "SlowDown",
        "throttled",
        true,
      ]);
      const internal = await error(put());
      expect([internal.status, internal.s3Code, internal.code, t.isTransient(internal)]).toEqual([
        500,
        "InternalError",
        "store_unavailable",
        true,
      ]);
      const proxy = await error(put());
      expect([proxy.status, proxy.s3Code, t.isTransient(proxy)]).toEqual([502, undefined, true]);
      expect(proxy.message).toContain("Bad Gateway");
      // Nothing was acknowledged, so nothing is recorded as held.
      expect(await target(runDir, policy).heldBytes()).toEqual({});
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it("onExpiring is told once per policy when a send finds it close to expiry", async () => {
    const { id, runDir, policy } = await newRun();
    const told: number[] = [];
    const t = new PostPolicyRunSync({
      policy,
      stateFile: postSyncStateFile(runDir),
      onExpiring: (msLeft) => told.push(msLeft),
      renewBeforeMs: 2 * 3600_000,
    });
    await t.append("output.log", 0, Buffer.from("a\n"));
    await t.append("output.log", 2, Buffer.from("b\n"));
    expect(told).toHaveLength(1);
    expect(told[0]).toBeGreaterThan(0);
    expect(told[0]).toBeLessThanOrEqual(3600_000);
    t.renew(
      await (store.presignPost as NonNullable<S3ArtifactStore["presignPost"]>)(`runs/${id}/`, {
        expiresInSeconds: 3600,
        maxBytes: 1024,
      }),
    );
    await t.append("output.log", 4, Buffer.from("c\n"));
    expect(told).toHaveLength(2);
    expect(await stored(id, "output.log")).toBe("a\nb\nc\n");
  });
});
