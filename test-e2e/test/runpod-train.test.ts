// `runctl runpod train` end to end: the CLI (provider-runpod as a plugin) puts the code and the
// agent in the S3 emulator's store and creates a pod on the RunPod emulator whose start command
// is the bootstrap; that container really runs: its command runs on a bare host (no node, empty
// HOME), downloads Node from the mirror, supervises the agent in the foreground, which runs a
// 2-rank torch run and reports over nats-server (JWT mode, the run's own credential). From the
// workspace: `runctl logs -f` follows it, `runctl ctl … run.stop --wait` ends it, and the pod
// stops itself when idle (`--idle-stop 0`) through RunPod, as a container whose command ends is
// restarted: `runpodctl stop pod $RUNPOD_POD_ID` with the pod-scoped key RunPod sets (EXITED);
// `runctl show --from` reads it completed. A spot run of the same code (a bid, the
// community cloud, 2 GPUs and so 2 ranks) uploads nothing and stops too; --dry-run touches nothing.
// `runctl runpod create --store …` makes a pod whose agent waits for runs (HostState idle in the
// store, the host id in its env labels); `runctl runpod train <pod> train.py` sends it one over
// NATS, which is followed, steered (two acks) and stopped; `runctl runpod terminate` ends the pod.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { z } from "zod";
import { MINIMAL_HOST_TOOLS } from "../src/bare-host.ts";
import {
  followAndStopRemoteRun,
  type RemoteTrainSetup,
  startRemoteTrainSetup,
  storedHostState,
  storedRunFile,
  TRAIN_STORE_URL,
} from "../src/remote-train-setup.ts";
import { runctlJson, startRunctl, type Workspace, waitFor } from "../src/runctl-cli.ts";
import { type RunPodEmulator, startRunPodEmulator } from "../src/runpod-emulator.ts";
import { type RunPodMachines, runpodBareHostMachines } from "../src/runpod-machines.ts";

const KEY = { accessKeyId: "AKIDRUNPODTRAIN", secretAccessKey: "runpod-train-secret-key" };
const STORE_URL = TRAIN_STORE_URL;
const GPU = "NVIDIA RTX A6000";
const Trained = z.object({
  runId: z.string(),
  bootstrapBytes: z.number(),
  uploadedBytes: z.number(),
  follow: z.string(),
  placement: z.object({ resourceId: z.string(), market: z.string() }).loose().optional(),
});

let setup: RemoteTrainSetup;
let nats: RemoteTrainSetup["nats"];
let s3: RemoteTrainSetup["s3"];
let user: Workspace;
let rp: RunPodEmulator;
let machines: RunPodMachines;
const releaseBoot = () => setup.releaseBoot();

beforeAll(async () => {
  setup = await startRemoteTrainSetup(KEY);
  ({ nats, s3, user } = setup);
  machines = runpodBareHostMachines({ tools: [...MINIMAL_HOST_TOOLS, "setpriv"] });
  rp = await startRunPodEmulator({
    transitionMs: 2,
    machine: async (pod) => {
      await setup.bootReleased;
      return machines.hook(pod);
    },
  });
  Object.assign(user.env, {
    RUNPOD_API_KEY: rp.apiKey,
    RUNCTL_RUNPOD_API_URL: rp.url,
    RUNCTL_RUNPOD_STORE: STORE_URL,
    RUNCTL_RUNPOD_NODE_MIRROR: setup.mirror.url,
  });
}, 180_000);

afterAll(async () => {
  setup?.releaseBoot();
  await rp?.stop();
  await machines?.close();
  await setup?.close();
});

it("--dry-run quotes and sizes the bootstrap: nothing uploaded, no pod", async () => {
  const dry = await runctlJson(
    ["runpod", "train", "train.py", "--gpu", GPU, "--nproc-per-node", "2", "--dry-run"],
    user,
  );
  expect(dry.code, dry.stderr).toBe(0);
  const doc = Trained.parse(dry.doc);
  expect(dry.doc).toMatchObject({ dryRun: true, quote: { available: true, market: "on-demand" } });
  expect(doc.bootstrapBytes).toBeGreaterThan(1000);
  expect(doc.uploadedBytes).toBe(0);
  expect(rp.cloud.calls.some((c) => c.field === "podFindAndDeployOnDemand")).toBe(false);
  expect(rp.cloud.pods.size).toBe(0);
  const stored = s3.store.list("artifacts", { prefix: "", delimiter: "", after: "", maxKeys: 1000 });
  expect(stored.objects).toEqual([]);
});

it("trains on a pod whose container runs the bootstrap: followed live, stopped over NATS, the pod stops itself when idle", async () => {
  const trained = await runctlJson(
    ["runpod", "train", "train.py", "--gpu", GPU, "--nproc-per-node", "2", "--idle-stop", "0"],
    user,
  );
  expect(trained.code, `${trained.stdout}\n${trained.stderr}`).toBe(0);
  const { runId, placement, follow } = Trained.parse(trained.doc);
  const podId = placement?.resourceId as string;
  expect(follow).toBe(`runctl logs -f ${runId} --from ${STORE_URL}`);
  const pod = rp.cloud.pods.get(podId);
  if (!pod) throw new Error(`no pod ${podId}`);
  expect(pod.name).toBe(`runctl-${runId}`);
  expect(JSON.parse(pod.env.RUNCTL_TAGS ?? "{}")).toMatchObject({ "runctl:run-id": runId });

  const { followed, followErr, host } = await followAndStopRemoteRun({
    user,
    runId,
    storeUrl: STORE_URL,
    machineId: podId,
    hosts: machines.hosts,
    beforeBoot: releaseBoot,
  });
  // The container's command did not return: it supervises the agent in the foreground.
  expect((await host.logs()).bootstrap).toMatch(/supervising the agent in the foreground/);
  expect(host.env.RUNPOD_POD_ID).toBe(podId);
  // RunPod's pod-scoped key, not the account's.
  expect(host.env.RUNPOD_API_KEY).toBe(pod.podKey);
  expect(host.env.RUNPOD_API_KEY).not.toBe(rp.apiKey);

  expect(followed.code, `${followErr}\n${followed.stderr}`).toBe(0);
  expect(followed.stdout).toMatch(/rank 0 step 0 lr 0.1/);
  expect(followed.stdout).toMatch(/rank 1 stopped at step/);

  // Idle right after its run: the pod stops itself through RunPod, with its own key.
  await waitFor(() => pod.desiredStatus === "EXITED", "the pod to stop", 30_000).catch(
    async (error: unknown) => {
      const logs = await host.logs();
      throw new Error(`${String(error)}\nagent.log:\n${logs.agent}\n${logs.console}`);
    },
  );
  expect(rp.cloud.calls.filter((c) => c.field === "podStop")).toEqual([
    expect.objectContaining({ podKeyOf: podId, variables: { id: podId } }),
  ]);
  expect(rp.cloud.pods.has(podId)).toBe(true);
  await waitFor(() => !machines.hosts.has(podId), "the container to stop", 30_000);
  expect(await host.processes()).toEqual([]);
  // Its command did not end by itself (RunPod would have restarted it), and no `shutdown` ran.
  expect(machines.restarts.get(podId)).toBeUndefined();
  expect(host.shutdownRequest()).toBeUndefined();
  const status = await runctlJson(["runpod", "status", podId], user);
  expect(status.code, status.stderr).toBe(0);
  expect(JSON.stringify(status.doc)).toContain('"state":"stopped"');

  const show = await runctlJson(["show", runId, "--from", STORE_URL], user);
  expect(show.doc).toMatchObject({ success: true, run: { id: runId, status: "completed" } });
  // The start command and the pod's env hold no long-lived secret: not the store's key, not the
  // NATS account seed, not the RunPod API key.
  const command = machines.commands.get(podId) ?? "";
  expect(command).toMatch(/^bash -c '/);
  expect(pod.dockerArgs).toBe(command);
  const seed = nats.jwt?.accountSeed as string;
  for (const text of [command, JSON.stringify(pod.env)]) {
    expect(text).not.toContain(KEY.secretAccessKey);
    expect(text).not.toContain(seed);
    expect(text).not.toContain(rp.apiKey);
  }
}, 180_000);

it("--spot: the same code uploads nothing again, the pod is interruptible at the bid, and it stops itself when idle", async () => {
  const trained = await runctlJson(
    [
      "runpod",
      "train",
      "train.py",
      "--gpu",
      GPU,
      "--spot",
      "--bid",
      "0.5",
      "--cloud",
      "community",
      "--gpu-count",
      "2",
      "--idle-stop",
      "0",
    ],
    user,
  );
  expect(trained.code, `${trained.stdout}\n${trained.stderr}`).toBe(0);
  const { runId, placement, uploadedBytes } = Trained.parse(trained.doc);
  expect(uploadedBytes).toBe(0);
  expect(placement?.market).toBe("spot");
  const podId = placement?.resourceId as string;
  const pod = rp.cloud.pods.get(podId);
  expect(pod).toMatchObject({ podType: "INTERRUPTABLE", bidPerGpu: 0.5, cloud: "COMMUNITY", gpuCount: 2 });
  // `runpod monitor -f` finds the run by the pod's run-id label and follows it to its end.
  const monitoring = startRunctl(["runpod", "monitor", podId, "--follow"], user);
  let monitorErr = "";
  monitoring.child.stderr?.on("data", (d: Buffer) => {
    monitorErr += d.toString();
  });
  await waitFor(() => machines.hosts.has(podId), "the pod's container to start", 60_000);
  const host = machines.hosts.get(podId);
  if (!host) throw new Error("no host");
  await waitFor(
    () => existsSync(join(host.runctlHome, "runs", runId, "polling")),
    "the ranks to poll for commands",
    120_000,
  );
  await waitFor(
    () => monitorErr.includes(`following ${runId} over NATS`),
    `monitor -f to follow: ${monitorErr}`,
  );
  const stop = await runctlJson(["ctl", runId, "run.stop", "--wait", "--timeout", "60"], user);
  expect(stop.code, stop.stderr).toBe(0);
  const monitored = await monitoring.result;
  expect(monitored.code, `${monitorErr}\n${monitored.stderr}`).toBe(0);
  expect(monitorErr).toMatch(new RegExp(`^${podId}  (pending|running)  ${GPU}  spot  `, "m"));
  expect(monitorErr).toContain(`run ${runId} ended: completed (exit 0)`);
  expect(monitored.stdout).toMatch(/rank 1 stopped at step/);
  await waitFor(() => pod?.desiredStatus === "EXITED", "the pod to stop", 30_000);
  const show = await runctlJson(["show", runId, "--from", STORE_URL], user);
  expect(show.doc).toMatchObject({ success: true, run: { id: runId, status: "completed" } });
  // RunPod has no log API: `runpod logs` reads the run's output from the store, and says so.
  const logs = await runctlJson(["runpod", "logs", podId, "--tail", "5"], user);
  expect(logs.code, logs.stderr).toBe(0);
  expect(logs.stderr).toContain("RunPod has no log API");
  expect(logs.doc).toMatchObject({
    success: true,
    pod: podId,
    runId,
    basis: expect.stringMatching(/^(tag|host_state)$/),
    source: "store",
  });
  const tail = String((logs.doc as { output?: unknown }).output);
  expect(tail.split("\n").filter((l) => l !== "").length).toBeLessThanOrEqual(5);
  expect(tail).toMatch(/stopped at step/);
  // --nproc-per-node defaults to --gpu-count.
  const meta = JSON.parse(await readFile(join(host.runctlHome, "runs", runId, "meta.json"), "utf8"));
  expect(meta.world_size).toBe(2);
}, 180_000);

const Created = z.object({
  placement: z.object({ resourceId: z.string() }).loose(),
  host: z.object({ hostId: z.string() }).loose().optional(),
});
const Accepted = z.object({
  runId: z.string(),
  hostId: z.string(),
  accepted: z.literal(true),
  follow: z.string(),
});

it("create --store: the pod's agent waits for runs (idle in the store), takes `runpod train <pod>` over NATS, and the pod is terminated", async () => {
  const created = await runctlJson(["runpod", "create", "--gpu", GPU, "--idle-stop", "30"], user);
  expect(created.code, `${created.stdout}\n${created.stderr}`).toBe(0);
  const { placement, host: agent } = Created.parse(created.doc);
  if (!agent) throw new Error(`no agent: ${created.stderr}`);
  const podId = placement.resourceId;
  const pod = rp.cloud.pods.get(podId);
  if (!pod) throw new Error(`no pod ${podId}`);
  // The host id rides in the env labels the provider reads back as tags.
  expect(JSON.parse(pod.env.RUNCTL_TAGS ?? "{}")).toMatchObject({ "runctl:host": agent.hostId });
  const status = await runctlJson(["runpod", "status", podId], user);
  expect(JSON.stringify(status.doc)).toContain(`"runctl:host":"${agent.hostId}"`);
  const seed = nats.jwt?.accountSeed as string;
  for (const text of [pod.dockerArgs, JSON.stringify(pod.env)]) {
    expect(text).not.toContain(KEY.secretAccessKey);
    expect(text).not.toContain(seed);
    expect(text).not.toContain(rp.apiKey);
  }
  releaseBoot();
  await waitFor(
    async () => (await storedHostState(s3, agent.hostId))?.state === "idle",
    "the agent to record itself idle",
    120_000,
  ).catch(async (error: unknown) => {
    const logs = await machines.hosts.get(podId)?.logs();
    throw new Error(`${String(error)}\nbootstrap.log:\n${logs?.bootstrap}\nagent.log:\n${logs?.agent}`);
  });

  const trained = await runctlJson(
    ["runpod", "train", podId, "train.py", "--nproc-per-node", "2", "--background"],
    user,
  );
  expect(trained.code, `${trained.stdout}\n${trained.stderr}`).toBe(0);
  const { runId, hostId } = Accepted.parse(trained.doc);
  expect(hostId).toBe(agent.hostId);
  const { followed, followErr, acks } = await followAndStopRemoteRun({
    user,
    runId,
    storeUrl: STORE_URL,
    machineId: podId,
    hosts: machines.hosts,
    steer: ["optimizer.lr.multiplier", "0.5"],
  });
  expect(acks).toEqual([
    [0, "applied"],
    [1, "applied"],
  ]);
  expect(followed.code, `${followErr}\n${followed.stderr}`).toBe(0);
  expect(followed.stdout).toMatch(/rank 1 stopped at step/);
  const show = await runctlJson(["show", runId, "--from", STORE_URL], user);
  expect(show.doc).toMatchObject({ success: true, run: { id: runId, status: "completed" } });
  expect(storedRunFile(s3, runId, "meta.json")).toBe(true);
  await waitFor(
    async () => (await storedHostState(s3, agent.hostId))?.runs.includes(runId) === true,
    "the agent to record the run it took",
  );

  const terminated = await runctlJson(["runpod", "terminate", podId, "--yes"], user);
  expect(terminated.code, terminated.stderr).toBe(0);
  await waitFor(() => !machines.hosts.has(podId), "the pod's container to end");
  const gone = await runctlJson(["runpod", "train", podId, "train.py"], user);
  expect(gone.code).not.toBe(0);
}, 300_000);
