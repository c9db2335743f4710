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
import { afterAll, beforeAll, expect, it } from "vitest";
import { MINIMAL_HOST_TOOLS } from "../src/bare-host.ts";
import { type Ec2Emulator, startEc2Emulator } from "../src/ec2-emulator.ts";
import { type BareHostMachines, bareHostMachines } from "../src/ec2-machines.ts";
import {
  expectCheckpointed,
  expectResumed,
  hostLogs,
  type Preempted,
  storedMeta,
  Trained,
  trainStore,
  waitUntilLive,
} from "../src/preempt-checks.ts";
import { type RemoteTrainSetup, startRemoteTrainSetup, TRAIN_STORE_URL } from "../src/remote-train-setup.ts";
import { runctl, runctlJson, type Workspace, waitFor } from "../src/runctl-cli.ts";

const KEY = { accessKeyId: "AKIDAWSPREEMPT", secretAccessKey: "aws-preempt-secret-key" };
const FIXTURE = fileURLToPath(new URL("../fixtures/ddp_checkpoint.py", import.meta.url));

let setup: RemoteTrainSetup;
let user: Workspace;
let ec2: Ec2Emulator;
let machines: BareHostMachines;
let store: ReturnType<typeof trainStore>;
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
  store = trainStore(setup, KEY);
}, 180_000);

afterAll(async () => {
  await ec2?.stop();
  await machines?.close();
  await setup?.close();
});

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
  const logs = hostLogs(host);
  // Training, and its first metrics in the store: the run is live there.
  await waitUntilLive(store, runId, logs);

  // The notice only: EC2 reclaims the instance later (below), as it does two minutes after.
  ec2.cloud.interruptSpot(instanceId, { reclaim: false });
  await waitFor(
    async () => (await storedMeta(store, runId))?.status === "preempted",
    "the run to end preempted",
    120_000,
  ).catch(async (error: unknown) => {
    throw new Error(`${String(error)}\n${await logs()}`);
  });
  const meta = (await storedMeta(store, runId)) as Record<string, unknown>;
  expect(meta).toMatchObject({
    status: "preempted",
    preemption: {
      reason: expect.stringMatching(/^spot interruption notice: terminate at \d{4}-\d\d-\d\dT/),
      checkpoint: { applied_ranks: [0, 1], answered_ranks: [0, 1], world_size: 2 },
    },
  });
  expect(Date.parse(String(meta.preempted_at))).toBeGreaterThan(Date.parse(String(meta.started_at)));
  expect(Date.parse(String(meta.finished_at))).toBeGreaterThanOrEqual(Date.parse(String(meta.preempted_at)));

  // Every rank applied checkpoint.save (the agent asked, not a user); the checkpoint is in the store.
  preempted = await expectCheckpointed(store, runId, logs);
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
  await expectResumed(store, user, runId, preempted, hostLogs(machines.hosts.get(placement.resourceId)));
}, 300_000);
