// An interruptible pod reclaimed mid-run, end to end: `runctl runpod train --spot` launches a
// 2-rank torch run that checkpoints when asked (fixtures/ddp_checkpoint.py) on a RunPod emulator
// pod whose container really runs. The emulator interrupts the pod as RunPod does (EXITED; the
// container stopped as `docker stop` stops one: SIGTERM, SIGKILL after a grace period); the agent
// takes the SIGTERM as the notice, sends the run `checkpoint.save`, every rank acks it, the
// checkpoint reaches the store under the run's prefix and the run ends `preempted` with its
// time; `runctl runpod train --resume <run>` then starts a new run on a new pod from that
// checkpoint. Also: the pod-scoped key RunPod puts in a pod reaches that pod only.
import { cp } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { MINIMAL_HOST_TOOLS } from "../src/bare-host.ts";
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
import { type RunPodEmulator, startRunPodEmulator } from "../src/runpod-emulator.ts";
import { type RunPodMachines, runpodBareHostMachines } from "../src/runpod-machines.ts";

const KEY = { accessKeyId: "AKIDRUNPODPREEMPT", secretAccessKey: "runpod-preempt-secret-key" };
const FIXTURE = fileURLToPath(new URL("../fixtures/ddp_checkpoint.py", import.meta.url));
const GPU = "NVIDIA RTX A6000";

let setup: RemoteTrainSetup;
let user: Workspace;
let rp: RunPodEmulator;
let machines: RunPodMachines;
let store: ReturnType<typeof trainStore>;
/** The preempted run and its checkpoint, for the resume that follows. */
let preempted: Preempted | undefined;

beforeAll(async () => {
  setup = await startRemoteTrainSetup(KEY);
  user = setup.user;
  setup.releaseBoot();
  await cp(FIXTURE, `${user.project}/spot_train.py`);
  // RunPod's grace before SIGKILL is seconds; this shared test machine may be slower than a
  // pod, so the test gives more and asserts the agent's doing, not its speed.
  machines = runpodBareHostMachines({ tools: [...MINIMAL_HOST_TOOLS, "setpriv"], stopGraceMs: 120_000 });
  rp = await startRunPodEmulator({ transitionMs: 2, machine: machines.hook });
  Object.assign(user.env, {
    RUNPOD_API_KEY: rp.apiKey,
    RUNCTL_RUNPOD_API_URL: rp.url,
    RUNCTL_RUNPOD_STORE: TRAIN_STORE_URL,
    RUNCTL_RUNPOD_NODE_MIRROR: setup.mirror.url,
  });
  store = trainStore(setup, KEY);
}, 180_000);

afterAll(async () => {
  await rp?.stop();
  await machines?.close();
  await setup?.close();
});

async function graphql(key: string, query: string, variables: Record<string, unknown>) {
  const res = await fetch(rp.url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  return {
    status: res.status,
    body: (await res.json()) as { errors?: { message: string }[]; data?: unknown },
  };
}

it("an interrupted spot pod: the run checkpoints, its checkpoint is in the store, it is preempted with the time", async () => {
  const trained = await runctlJson(
    [
      "runpod",
      "train",
      "spot_train.py",
      "--gpu",
      GPU,
      "--spot",
      "--bid",
      "0.5",
      "--gpu-count",
      "2",
      "--idle-stop",
      "0",
    ],
    user,
  );
  expect(trained.code, `${trained.stdout}\n${trained.stderr}`).toBe(0);
  const { runId, placement } = Trained.parse(trained.doc);
  expect(placement.market).toBe("spot");
  const podId = placement.resourceId;
  await waitFor(() => machines.hosts.has(podId), "the pod's container to start", 60_000);
  const host = machines.hosts.get(podId);
  if (!host) throw new Error("no host");
  const logs = hostLogs(host);
  await waitUntilLive(store, runId, logs);

  const interrupted = Date.now();
  rp.cloud.interrupt(podId);
  expect(rp.cloud.pods.get(podId)?.desiredStatus).toBe("EXITED");
  await waitFor(() => !machines.hosts.has(podId), "the container to stop", 150_000);
  expect(await host.processes()).toEqual([]);

  const meta = (await storedMeta(store, runId)) as Record<string, unknown>;
  expect(meta, await logs()).toMatchObject({
    status: "preempted",
    preemption: {
      reason: "the machine is being reclaimed (SIGTERM)",
      checkpoint: { applied_ranks: [0, 1], answered_ranks: [0, 1], world_size: 2 },
    },
  });
  expect(Date.parse(String(meta.preempted_at))).toBeGreaterThanOrEqual(Math.floor(interrupted / 1000) * 1000);

  // Every rank applied checkpoint.save (the agent asked, not a user); the checkpoint is in the store.
  preempted = await expectCheckpointed(store, runId, logs);
  // The pod was reclaimed, not stopped by its agent.
  expect(rp.cloud.calls.filter((c) => c.field === "podStop")).toEqual([]);

  const show = await runctl(["show", runId, "--from", TRAIN_STORE_URL], user);
  expect(show.code, show.stderr).toBe(0);
  expect(show.stdout).toMatch(/^status\s+preempted$/m);
  expect(show.stdout).toContain(
    `preempted  ${String(meta.preempted_at)} (the machine is being reclaimed (SIGTERM))`,
  );
  const json = await runctlJson(["show", runId, "--from", TRAIN_STORE_URL], user);
  expect(json.doc).toMatchObject({ success: true, run: { id: runId, status: "preempted" } });
}, 300_000);

it("--resume <run>: a new pod starts every rank from the preempted run's checkpoint, fetched from the store", async () => {
  if (!preempted) throw new Error("the preemption test did not leave a checkpoint");
  const trained = await runctlJson(
    [
      ...["runpod", "train", "spot_train.py", "--gpu", GPU, "--gpu-count", "2", "--idle-stop", "0"],
      ...["--resume", preempted.runId],
    ],
    user,
  );
  expect(trained.code, `${trained.stdout}\n${trained.stderr}`).toBe(0);
  const { runId, placement } = Trained.parse(trained.doc);
  await expectResumed(store, user, runId, preempted, hostLogs(machines.hosts.get(placement.resourceId)));
}, 300_000);

it("a pod's own key reaches that pod only", async () => {
  const a = rp.cloud.launch({
    gpuTypeId: GPU,
    gpuCount: 1,
    cloudType: "ALL",
    name: "a",
    imageName: "img",
    dockerArgs: "",
    containerDiskInGb: 10,
    volumeInGb: 0,
    env: {},
  });
  const b = rp.cloud.launch({ ...a, gpuTypeId: GPU, cloudType: "ALL", name: "b", env: {} });
  const stop = "mutation($id: String!) { podStop(input: {podId: $id}) { id desiredStatus } }";
  const other = await graphql(a.podKey, stop, { id: b.id });
  expect(other.body.errors?.[0]?.message).toBe("Unauthorized request, please check your API key.");
  expect(b.desiredStatus).toBe("RUNNING");
  const list = await graphql(a.podKey, "{ myself { pods { id } } }", {});
  expect(list.status).toBe(401);
  const own = await graphql(a.podKey, stop, { id: a.id });
  expect(own.body).toEqual({ data: { podStop: { id: a.id, desiredStatus: "EXITED" } } });
  rp.cloud.terminate(a.id);
  rp.cloud.terminate(b.id);
});
