// A run directory mirrored to a real job server: growth by offset, whole
// files on change, big files in chunks, writers' internals left out.
import { appendFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RunDirSync } from "@runctl/agent";
import { type QueueServer, startQueueServer } from "@runctl/queue-server";
import { type JobResponse, QueueClient } from "@runctl/tracker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QueueSyncTarget, type QueueSyncTargetOptions, UPLOAD_CHUNK_BYTES } from "../src/mod.ts";

/** The job server as the sync target of one claimed attempt. */
const toServer = (dir: string, o: QueueSyncTargetOptions, onFileError?: (path: string, e: Error) => void) =>
  new RunDirSync(dir, new QueueSyncTarget(o), onFileError ? { onFileError } : {});

let root: string;
let server: QueueServer;
let client: QueueClient;
let seq = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "runctl-upload-"));
  server = await startQueueServer({ dataDir: join(root, "server"), port: 0, log: () => undefined });
  client = new QueueClient({ url: server.url });
});
afterAll(async () => {
  await server?.close();
  await rm(root, { recursive: true, force: true });
});

/** A job claimed by hand, so uploads for its run pass the server's fence. */
async function claimed(): Promise<{ job: JobResponse; workerId: string }> {
  const workerId = `upload-worker-${seq++}`;
  const created = await client.submitJob({ command_argv: ["true"], workdir: root, priority: 1000 });
  const job = await client.claimJob({ worker_id: workerId, lease_seconds: 60 });
  expect(job?.id).toBe(created.job_id);
  return { job: job as JobResponse, workerId };
}

async function serverBytes(runId: string, path: string): Promise<Buffer> {
  return Buffer.from(await (await client.getArtifact(runId, path)).arrayBuffer());
}

describe("run sync to the job server (RunDirSync + QueueSyncTarget)", () => {
  it("sends new bytes of growing files, changed whole files, and skips writers' internals", async () => {
    const { job, workerId } = await claimed();
    const runId = job.run_id as string;
    const dir = join(root, runId);
    await mkdir(join(dir, "artifacts", "nested"), { recursive: true });
    await mkdir(join(dir, "control"), { recursive: true });
    await writeFile(join(dir, "output.log"), "line 1\n");
    await writeFile(join(dir, "meta.json"), '{"v": 1}\n');
    await writeFile(join(dir, "artifacts", "nested", "model 1.bin"), "weights");
    await writeFile(join(dir, "empty.txt"), "");
    await writeFile(join(dir, "control", "acks.jsonl"), '{"id": "a"}\n');
    // Internals: mutexes, atomic-rewrite temp files, artifact copies in progress, rank cursors.
    await writeFile(join(dir, "meta.json.lock"), "123");
    await writeFile(join(dir, ".meta.json.123.abcd.tmp"), "{");
    await writeFile(join(dir, "artifacts", ".runctl-tmp-1234-model.bin"), "half");
    await writeFile(join(dir, "control", "cursor.rank0.json"), "{}");
    const errors: string[] = [];
    const upload = toServer(dir, { client, runId, workerId, attempt: job.attempt }, (path) =>
      errors.push(path),
    );
    await upload.sync();
    const listed = (await client.listArtifacts(runId)).map((a) => a.path).sort();
    expect(listed).toEqual(
      ["artifacts/nested/model 1.bin", "control/acks.jsonl", "empty.txt", "meta.json", "output.log"].sort(),
    );

    await appendFile(join(dir, "output.log"), "line 2\n");
    await writeFile(join(dir, "meta.json"), '{"v": 2, "longer": true}\n');
    await upload.sync();
    expect((await serverBytes(runId, "output.log")).toString()).toBe("line 1\nline 2\n");
    expect(JSON.parse((await serverBytes(runId, "meta.json")).toString())).toEqual({ v: 2, longer: true });

    // A growing file that was replaced by a shorter one is sent again from the start.
    await writeFile(join(dir, "output.log"), "new\n");
    await upload.sync();
    expect((await serverBytes(runId, "output.log")).toString()).toBe("new\n");
    expect(errors).toEqual([]);
  });

  it("sends files bigger than one request in chunks, whole and growing", async () => {
    const { job, workerId } = await claimed();
    const runId = job.run_id as string;
    const dir = join(root, runId);
    await mkdir(join(dir, "artifacts"), { recursive: true });
    const big = Buffer.alloc(UPLOAD_CHUNK_BYTES + 1234);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
    await writeFile(join(dir, "artifacts", "big.bin"), big);
    await writeFile(join(dir, "system.jsonl"), big);
    const upload = toServer(dir, { client, runId, workerId, attempt: job.attempt });
    await upload.sync();
    expect((await serverBytes(runId, "artifacts/big.bin")).equals(big)).toBe(true);
    expect((await serverBytes(runId, "system.jsonl")).equals(big)).toBe(true);
  });

  it("throws lease_lost when the attempt is no longer the uploader's", async () => {
    const { job, workerId } = await claimed();
    const runId = job.run_id as string;
    const dir = join(root, runId);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "output.log"), "x\n");
    server.store.requeueExpired(new Date(Date.now() + 120_000));
    const upload = toServer(dir, { client, runId, workerId, attempt: job.attempt });
    await expect(upload.sync()).rejects.toMatchObject({ code: "lease_lost" });
  });
});
