// What a queued job inherits from its worker: a real worker, a real server
// with a token, a real job that writes down its environment. runctl's
// secrets stay with the worker; the job's own variables pass through.
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startQueueServer } from "@runctl/queue-server";
import { QueueClient } from "@runctl/tracker";
import { afterAll, beforeAll, expect, it } from "vitest";
import { QueueWorker } from "../src/mod.ts";

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "runctl-worker-env-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

it("does not hand RUNCTL_SERVER_TOKEN or other runctl secrets to the jobs it runs", async () => {
  const token = "s3cret-worker-token-9c1d";
  const server = await startQueueServer({ dataDir: join(root, "server"), token, log: () => undefined });
  const client = new QueueClient({ url: server.url, token });
  const worker = new QueueWorker({
    client,
    dataDir: join(root, "worker"),
    pollMs: 50,
    uploadIntervalMs: 100,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      RUNCTL_SERVER_TOKEN: token,
      RUNCTL_NATS_PASSWORD: "nats-pass",
      RUNCTL_NATS_TOKEN: "nats-token",
      RUNCTL_SERVER_URL: server.url,
      HF_TOKEN: "the-job-needs-this",
    },
  });
  try {
    await worker.start();
    const workdir = join(root, "wd");
    await mkdir(workdir);
    const { job_id } = await client.submitJob({ workdir, command_argv: ["/bin/sh", "-c", "env > env.txt"] });
    expect((await client.waitForJob(job_id, { pollMs: 50 })).status).toBe("completed");
    const env = await readFile(join(workdir, "env.txt"), "utf8");
    expect(env).not.toContain(token);
    expect(env).not.toContain("RUNCTL_SERVER_TOKEN");
    expect(env).not.toContain("nats-pass");
    expect(env).not.toContain("nats-token");
    expect(env).toContain("HF_TOKEN=the-job-needs-this");
    expect(env).toContain(`RUNCTL_SERVER_URL=${server.url}`);
    expect(env).toContain(`RUNCTL_JOB_ID=${job_id}`);
  } finally {
    await worker.stop();
    await server.close();
  }
});
