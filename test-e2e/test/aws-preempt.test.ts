// A spot instance reclaimed mid-run, end to end: `runctl aws train --spot` launches a 2-rank torch
// run that checkpoints when asked (fixtures/ddp_checkpoint.py) on an EC2 emulator instance that
// really boots. The emulator injects a spot interruption notice (IMDSv2 `spot/instance-action`);
// the agent, polling IMDS with a session token, sends the run `checkpoint.save`, every rank acks
// it, the checkpoint reaches the S3 emulator under the run's prefix, and the run ends `preempted`
// with `preempted_at` in the store's meta.json. Then EC2 reclaims (terminates) the instance, and
// `runctl show --from` reads the run preempted, with its time. Then `runctl aws train --resume
// <run>` starts a new run on a new instance from that checkpoint, fetched from the store.
import { cp } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { readStoredRunFile } from "@runctl/core";
import { S3ArtifactStore } from "@runctl/s3";
import { afterAll, beforeAll, expect, it } from "vitest";
import { z } from "zod";
import { MINIMAL_HOST_TOOLS } from "../src/bare-host.ts";
import { type Ec2Emulator, startEc2Emulator } from "../src/ec2-emulator.ts";
import { type BareHostMachines, bareHostMachines } from "../src/ec2-machines.ts";
import { type RemoteTrainSetup, startRemoteTrainSetup, TRAIN_STORE_URL } from "../src/remote-train-setup.ts";
import { expectResumed, type Preempted } from "../src/resume-check.ts";
import { runctl, runctlJson, type Workspace, waitFor } from "../src/runctl-cli.ts";

const KEY = { accessKeyId: "AKIDAWSPREEMPT", secretAccessKey: "aws-preempt-secret-key" };
const FIXTURE = fileURLToPath(new URL("../fixtures/ddp_checkpoint.py", import.meta.url));
const Trained = z.object({
  runId: z.string(),
  placement: z.object({ resourceId: z.string(), market: z.string() }).loose(),
});
const Ack = z
  .object({ id: z.string(), path: z.string().nullable(), status: z.string(), rank: z.number() })
  .loose();

let setup: RemoteTrainSetup;
let user: Workspace;
let ec2: Ec2Emulator;
let machines: BareHostMachines;
let store: S3ArtifactStore;
/** The preempted run and its checkpoint, for the resume that follows. */
let preempted: Preempted | undefined;

beforeAll(async () => {
  setup = await startRemoteTrainSetup(KEY);
  user = setup.user;
  setup.releaseBoot();
  await cp(FIXTURE, `${user.project}/spot_train.py`);
  machines = bareHostMachines({ tools: [...MINIMAL_HOST_TOOLS, "setpriv"] });
  ec2 = await startEc2Emulator({ credentials: [KEY], transitionMs: 2, machine: machines.hook });
  Object.assign(user.env, {
    AWS_ENDPOINT_URL_EC2: ec2.endpoint,
    RUNCTL_AWS_STORE: TRAIN_STORE_URL,
    RUNCTL_AWS_NODE_MIRROR: setup.mirror.url,
    RUNCTL_AWS_RETRY_BASE_MS: "1",
  });
  store = S3ArtifactStore.fromUrl(TRAIN_STORE_URL, {
    endpoint: setup.s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    partSizeBytes: 5 * 1024 * 1024,
    concurrency: 4,
    credentials: KEY,
  });
}, 180_000);

afterAll(async () => {
  await ec2?.stop();
  await machines?.close();
  await setup?.close();
});

async function storedMeta(runId: string): Promise<Record<string, unknown> | undefined> {
  const bytes = await readStoredRunFile(store, `runs/${runId}`, "meta.json");
  return bytes ? (JSON.parse(bytes.toString("utf8")) as Record<string, unknown>) : undefined;
}

/** `aws train spot_train.py` with two ranks on an m5.large that stops right after its run. */
async function train(...flags: string[]) {
  const args = [
    "aws",
    "train",
    "spot_train.py",
    "--type",
    "m5.large",
    "--nproc-per-node",
    "2",
    "--idle-stop",
    "0",
  ];
  const trained = await runctlJson([...args, ...flags], user);
  expect(trained.code, `${trained.stdout}\n${trained.stderr}`).toBe(0);
  return trained;
}

it("a spot notice: checkpoint.save reaches every rank, the checkpoint is in the store, the run is preempted", async () => {
  const trained = await train("--spot");
  const { runId, placement } = Trained.parse(trained.doc);
  expect(placement.market).toBe("spot");
  const instanceId = placement.resourceId;
  await waitFor(() => machines.hosts.has(instanceId), "the instance's host to boot", 60_000);
  const host = machines.hosts.get(instanceId);
  if (!host) throw new Error("no host");
  const logs = async () => {
    const l = await host.logs();
    return `bootstrap.log:\n${l.bootstrap}\nagent.log:\n${l.agent}\n${l.console}`;
  };
  // Training, and its first metrics in the store: the run is live there.
  await waitFor(
    async () =>
      (await storedMeta(runId))?.status === "running" && (await store.head(`runs/${runId}/polling`)) !== null,
    "the run to be live in the store",
    120_000,
  ).catch(async (error: unknown) => {
    throw new Error(`${String(error)}\n${await logs()}`);
  });

  // The notice only: EC2 reclaims the instance later (below), as it does two minutes after.
  ec2.cloud.interruptSpot(instanceId, { reclaim: false });
  await waitFor(
    async () => (await storedMeta(runId))?.status === "preempted",
    "the run to end preempted",
    120_000,
  ).catch(async (error: unknown) => {
    throw new Error(`${String(error)}\n${await logs()}`);
  });
  const meta = (await storedMeta(runId)) as Record<string, unknown>;
  expect(meta).toMatchObject({
    status: "preempted",
    preemption: {
      reason: expect.stringMatching(/^spot interruption notice: terminate at \d{4}-\d\d-\d\dT/),
      checkpoint: { applied_ranks: [0, 1], answered_ranks: [0, 1], world_size: 2 },
    },
  });
  expect(Date.parse(String(meta.preempted_at))).toBeGreaterThan(Date.parse(String(meta.started_at)));
  expect(Date.parse(String(meta.finished_at))).toBeGreaterThanOrEqual(Date.parse(String(meta.preempted_at)));

  // Every rank applied checkpoint.save; the agent asked for it, not a user.
  const acksText =
    (await readStoredRunFile(store, `runs/${runId}`, "control/acks.jsonl"))?.toString("utf8") ?? "";
  const acks = acksText
    .split("\n")
    .filter(Boolean)
    .map((line) => Ack.parse(JSON.parse(line)))
    .filter((a) => a.path === "checkpoint.save");
  // Sent over the run's NATS channel with its own credential, as `runctl ctl` sends it.
  expect(await logs()).not.toMatch(/sent through the node-local queue/);
  expect(acks.map((a) => [a.rank, a.status]).sort()).toEqual([
    [0, "applied"],
    [1, "applied"],
  ]);
  // The checkpoint it wrote is in the store, under the run's prefix, whole.
  const checkpoints = (await store.list(`runs/${runId}/checkpoints/`)).map((o) => o.key);
  expect(checkpoints).toHaveLength(1);
  expect(checkpoints[0]).toMatch(new RegExp(`^runs/${runId}/checkpoints/step-\\d{6}\\.pt$`));
  const head = await store.head(checkpoints[0] as string);
  expect(head?.size).toBeGreaterThan(500);
  preempted = { runId, checkpoint: (checkpoints[0] as string).slice(`runs/${runId}/checkpoints/`.length) };
  const output = (await readStoredRunFile(store, `runs/${runId}`, "output.log"))?.toString("utf8") ?? "";
  expect(output).toMatch(/rank 0 saved step-\d{6}\.pt/);

  // The machine is being taken: the agent did not shut it down itself, nothing more runs.
  expect(host.shutdownRequest()).toBeUndefined();
  await waitFor(async () => /stopping after 1 run\(s\): signal/.test(await logs()), "the agent to stop");
  ec2.cloud.reclaimSpot(instanceId);
  const terminated = await ec2.cloud.waitForState(instanceId, "terminated");
  expect(terminated.stateReason?.code).toBe("Server.SpotInstanceTermination");

  const show = await runctlJson(["show", runId, "--from", TRAIN_STORE_URL], user);
  expect(show.doc).toMatchObject({ success: true, run: { id: runId, status: "preempted" } });
  const human = await runctl(["show", runId, "--from", TRAIN_STORE_URL], user);
  expect(human.stdout).toMatch(/^status\s+preempted$/m);
  expect(human.stdout).toContain(`preempted  ${String(meta.preempted_at)}`);
}, 300_000);

it("--resume <run>: a new instance starts every rank from the preempted run's checkpoint, fetched from the store", async () => {
  if (!preempted) throw new Error("the preemption test did not leave a checkpoint");
  // A run that does not exist, or has no checkpoint, is refused before anything is launched.
  const missing = await runctlJson(
    ["aws", "train", "spot_train.py", "--resume", "20200101-000000-abcdef"],
    user,
  );
  expect(missing.code).not.toBe(0);
  expect(missing.doc).toMatchObject({ success: false, error: { code: "run_not_found" } });

  const trained = await train("--resume", preempted.runId);
  expect(trained.stderr).toContain(`resuming from ${preempted.runId}/${preempted.checkpoint}`);
  const { runId, placement } = Trained.parse(trained.doc);
  expect(runId).not.toBe(preempted.runId);
  await expectResumed(store, user, runId, preempted, async () => {
    const logs = await machines.hosts.get(placement.resourceId)?.logs();
    return `${logs?.bootstrap}\n${logs?.agent}`;
  });
}, 300_000);
