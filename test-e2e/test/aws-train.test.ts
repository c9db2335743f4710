// `runctl aws train` end to end: the CLI (provider-aws as a plugin) puts the code and the agent in
// the S3 emulator's store, launches an instance on the EC2 emulator with the bootstrap as
// user-data, and that instance really boots: its user-data runs on a bare host (no node, empty
// HOME), downloads Node from the mirror, starts the agent, which runs a 2-rank torch run and
// reports over nats-server (JWT mode, the run's own credential). From the workspace: `runctl logs
// -f` follows it, `runctl ctl … run.stop --wait` ends it, the machine shuts itself down when idle
// (`--idle-stop 0`) and EC2 stops the instance; `runctl show --from` reads it completed. A spot
// run of the same code uploads nothing and its instance terminates; --dry-run touches nothing.
// `runctl aws create --store …` makes an instance whose agent waits for runs (HostState idle in
// the store); `runctl aws train <instance> train.py` sends it one over NATS, which is followed,
// steered (two acks) and stopped like the others; the agent refuses a bad request with a reason;
// an instance without an agent, or one that is not running, is refused by the CLI with a code.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { NODE_VERSION } from "@runctl/agent";
import { connectNats, hostSubjects } from "@runctl/control";
import { afterAll, beforeAll, expect, it } from "vitest";
import { z } from "zod";
import { MINIMAL_HOST_TOOLS } from "../src/bare-host.ts";
import { type Ec2Emulator, startEc2Emulator } from "../src/ec2-emulator.ts";
import { type BareHostMachines, bareHostMachines } from "../src/ec2-machines.ts";
import {
  followAndStopRemoteRun,
  type RemoteTrainSetup,
  startRemoteTrainSetup,
  storedHostState,
  storedRunFile,
  TRAIN_STORE_URL,
} from "../src/remote-train-setup.ts";
import { runctlJson, startRunctl, type Workspace, waitFor } from "../src/runctl-cli.ts";

const KEY = { accessKeyId: "AKIDAWSTRAIN", secretAccessKey: "aws-train-secret-key" };
const STORE_URL = TRAIN_STORE_URL;
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
let ec2: Ec2Emulator;
let machines: BareHostMachines;
const releaseBoot = () => setup.releaseBoot();

beforeAll(async () => {
  setup = await startRemoteTrainSetup(KEY);
  ({ nats, s3, user } = setup);
  machines = bareHostMachines({ tools: [...MINIMAL_HOST_TOOLS, "setpriv"] });
  ec2 = await startEc2Emulator({
    credentials: [KEY],
    transitionMs: 2,
    machine: async (vm) => {
      await setup.bootReleased;
      return machines.hook(vm);
    },
  });
  Object.assign(user.env, {
    AWS_ENDPOINT_URL_EC2: ec2.endpoint,
    RUNCTL_AWS_STORE: STORE_URL,
    RUNCTL_AWS_NODE_MIRROR: setup.mirror.url,
    RUNCTL_AWS_RETRY_BASE_MS: "1",
  });
}, 180_000);

afterAll(async () => {
  setup?.releaseBoot();
  await ec2?.stop();
  await machines?.close();
  await setup?.close();
});

it("--dry-run quotes and sizes the bootstrap: nothing uploaded, nothing launched", async () => {
  const dry = await runctlJson(["aws", "train", "train.py", "--nproc-per-node", "2", "--dry-run"], user);
  expect(dry.code, dry.stderr).toBe(0);
  const doc = Trained.parse(dry.doc);
  expect(dry.doc).toMatchObject({ dryRun: true, quote: { available: true, market: "on-demand" } });
  expect(doc.bootstrapBytes).toBeGreaterThan(1000);
  expect(doc.bootstrapBytes).toBeLessThanOrEqual(16 * 1024);
  expect(doc.uploadedBytes).toBe(0);
  expect(ec2.cloud.callCount("RunInstances")).toBe(0);
  const stored = s3.store.list("artifacts", { prefix: "", delimiter: "", after: "", maxKeys: 1000 });
  expect(stored.objects).toEqual([]);
});

it("trains on an instance that boots the bootstrap: followed live, stopped over NATS, the instance stops itself when idle", async () => {
  const trained = await runctlJson(
    ["aws", "train", "train.py", "--type", "m5.large", "--nproc-per-node", "2", "--idle-stop", "0"],
    user,
  );
  expect(trained.code, `${trained.stdout}\n${trained.stderr}`).toBe(0);
  const { runId, placement, follow } = Trained.parse(trained.doc);
  const instanceId = placement?.resourceId as string;
  expect(follow).toBe(`runctl logs -f ${runId} --from ${STORE_URL}`);
  const instance = ec2.cloud.instances.get(instanceId);
  expect(instance?.tags.get("runctl:run-id")).toBe(runId);
  expect(instance?.shutdownBehavior).toBe("stop");

  const { followed, followErr, host } = await followAndStopRemoteRun({
    user,
    runId,
    storeUrl: STORE_URL,
    machineId: instanceId,
    hosts: machines.hosts,
    beforeBoot: releaseBoot,
  });
  // The machine found itself through the instance's IMDS endpoint, not the emulator's process.
  expect(host.env.AWS_EC2_METADATA_SERVICE_ENDPOINT).toBe(instance?.imds?.endpoint);
  expect(followed.code, `${followErr}\n${followed.stderr}`).toBe(0);
  expect(followed.stdout).toMatch(/rank 0 step 0 lr 0.1/);
  expect(followed.stdout).toMatch(/rank 1 stopped at step/);

  // Idle right after its run: the machine shuts down, and EC2 stops the instance (on-demand).
  expect(await host.shutdownRequested).toMatch(/-h now/);
  const stopped = await ec2.cloud.waitForState(instanceId, "stopped");
  expect(stopped.stateReason?.code).toBe("Client.InstanceInitiatedShutdown");
  expect(machines.hosts.has(instanceId)).toBe(false);
  expect(await host.processes()).toEqual([]);

  const show = await runctlJson(["show", runId, "--from", STORE_URL], user);
  expect(show.doc).toMatchObject({ success: true, run: { id: runId, status: "completed" } });
  // The user-data holds no long-lived secret: not the store's key, not the NATS account seed.
  const userData = Buffer.from(instance?.userData ?? "", "base64").toString("utf8");
  expect(userData.length).toBeGreaterThan(0);
  expect(userData).not.toContain(KEY.secretAccessKey);
  expect(userData).not.toContain(nats.jwt?.accountSeed as string);
}, 180_000);

it("--spot: the same code uploads nothing again, and the idle machine's shutdown terminates the instance", async () => {
  const trained = await runctlJson(
    ["aws", "train", "train.py", "--type", "m5.large", "--spot", "--nproc-per-node", "2", "--idle-stop", "0"],
    user,
  );
  expect(trained.code, `${trained.stdout}\n${trained.stderr}`).toBe(0);
  const { runId, placement, uploadedBytes } = Trained.parse(trained.doc);
  expect(uploadedBytes).toBe(0);
  expect(placement?.market).toBe("spot");
  const instanceId = placement?.resourceId as string;
  expect(ec2.cloud.instances.get(instanceId)?.shutdownBehavior).toBe("terminate");
  // `aws monitor -f` finds the run by the instance's run-id tag and follows it to its end.
  const monitoring = startRunctl(["aws", "monitor", instanceId, "--follow"], user);
  let monitorErr = "";
  monitoring.child.stderr?.on("data", (d: Buffer) => {
    monitorErr += d.toString();
  });
  await waitFor(() => machines.hosts.has(instanceId), "the instance's host to boot", 60_000);
  const host = machines.hosts.get(instanceId);
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
  expect(monitorErr).toMatch(
    new RegExp(`^${instanceId}  (pending|running)  m5\\.large  spot  \\$[0-9.]+/h`, "m"),
  );
  // Found by its runctl:run-id tag, or by the host state once the agent has written it.
  expect(monitorErr).toMatch(
    new RegExp(`run ${runId} \\((from its runctl:run-id tag|from the machine's host state)\\)`),
  );
  expect(monitorErr).toMatch(new RegExp(`run ${runId} ended: completed \\(exit 0\\), cost so far \\$`));
  expect(monitored.stdout).toMatch(/rank 0 step 0 lr 0.1/);
  expect(monitored.stdout).toMatch(/rank 1 stopped at step/);

  const terminated = await ec2.cloud.waitForState(instanceId, "terminated");
  expect(terminated.stateReason?.code).toBe("Client.InstanceInitiatedShutdown");
  const show = await runctlJson(["show", runId, "--from", STORE_URL], user);
  expect(show.doc).toMatchObject({ success: true, run: { id: runId, status: "completed" } });
  // The instance had a price: the agent kept the run's cost so far in meta.json, up to its end.
  const record = s3.store.head("artifacts", `store/runs/${runId}/meta.json`);
  if (!record) throw new Error("no meta.json in the store");
  const meta = z
    .object({ cost_usd: z.number(), started_at: z.string(), finished_at: z.string() })
    .loose()
    .parse(JSON.parse(await readFile(s3.store.dataPath("artifacts", record), "utf8")));
  expect(meta.cost_usd).toBeGreaterThan(0);

  // Not following: the instance (gone now) and the run's summary.
  const summary = await runctlJson(["aws", "monitor", instanceId], user);
  expect(summary.code, summary.stderr).toBe(0);
  expect(summary.doc).toMatchObject({
    success: true,
    machine: { id: instanceId, state: "terminated", market: "spot", instanceType: "m5.large" },
    run: { id: runId, status: "completed", exitCode: 0, costUsd: meta.cost_usd, basis: "host_state" },
    exitCode: 0,
  });
  expect(String((summary.doc as { output?: unknown }).output)).toMatch(/rank 1 stopped at step/);

  // The console EC2 kept after the instance went: the bootstrap's lines.
  const consoleOut = await runctlJson(["aws", "logs", instanceId, "--tail", "200"], user);
  expect(consoleOut.code, consoleOut.stderr).toBe(0);
  const text = String((consoleOut.doc as { output?: unknown }).output);
  expect(text).toContain(`node v${NODE_VERSION} at`);
  expect(text).toContain("agent supervised by pid");
}, 240_000);

const Created = z.object({
  placement: z.object({ resourceId: z.string(), market: z.string() }).loose(),
  host: z.object({ hostId: z.string(), bootstrapBytes: z.number() }).loose().optional(),
});
const Accepted = z.object({
  runId: z.string(),
  machine: z.string(),
  hostId: z.string(),
  accepted: z.literal(true),
  follow: z.string(),
});
const Failed = z.object({
  success: z.literal(false),
  error: z.object({ code: z.string(), message: z.string(), hint: z.string().optional() }),
});

it("create --store: the agent waits for runs (idle in the store), takes `aws train <instance>` over NATS, refuses a bad request, and the instance is terminated", async () => {
  const created = await runctlJson(["aws", "create", "m5.large", "--spot", "--idle-stop", "30"], user);
  expect(created.code, `${created.stdout}\n${created.stderr}`).toBe(0);
  const { placement, host: agent } = Created.parse(created.doc);
  const instanceId = placement.resourceId;
  if (!agent) throw new Error(`no agent: ${created.stderr}`);
  const instance = ec2.cloud.instances.get(instanceId);
  expect(instance?.tags.get("runctl:host")).toBe(agent.hostId);
  expect(instance?.tags.get("runctl:run-id")).toBeUndefined();
  expect(instance?.shutdownBehavior).toBe("terminate");
  const userData = Buffer.from(instance?.userData ?? "", "base64").toString("utf8");
  expect(userData).not.toContain(KEY.secretAccessKey);
  expect(userData).not.toContain(nats.jwt?.accountSeed as string);
  releaseBoot();

  // The machine is up with nothing to run: its agent says so in the store.
  await waitFor(
    async () => (await storedHostState(s3, agent.hostId))?.state === "idle",
    "the agent to record itself idle",
    120_000,
  ).catch(async (error: unknown) => {
    const logs = await machines.hosts.get(instanceId)?.logs();
    throw new Error(`${String(error)}\nbootstrap.log:\n${logs?.bootstrap}\nagent.log:\n${logs?.agent}`);
  });
  expect(await storedHostState(s3, agent.hostId)).toMatchObject({ hostId: agent.hostId, runs: [] });

  // A request the agent cannot read is refused with its reason (the user's own NATS credential).
  const nc = await connectNats({ url: nats.url, credsFile: nats.jwt?.userCredsFile as string });
  const refused = JSON.parse(
    new TextDecoder().decode(
      (
        await nc.request(
          hostSubjects("runctl", agent.hostId).inbox,
          new TextEncoder().encode(JSON.stringify({ v: 1, run: { spec: { runId: "../x" } } })),
          { timeout: 30_000 },
        )
      ).data,
    ),
  );
  await nc.close();
  expect(refused).toMatchObject({ accepted: false, error: { code: "bad_inbox_message" } });

  const trained = await runctlJson(["aws", "train", instanceId, "train.py", "--nproc-per-node", "2"], user);
  expect(trained.code, `${trained.stdout}\n${trained.stderr}`).toBe(0);
  const { runId, follow } = Accepted.parse(trained.doc);
  expect(follow).toBe(`runctl logs -f ${runId} --from ${STORE_URL}`);

  const { followed, followErr, acks } = await followAndStopRemoteRun({
    user,
    runId,
    storeUrl: STORE_URL,
    machineId: instanceId,
    hosts: machines.hosts,
    steer: ["optimizer.lr.multiplier", "0.5"],
  });
  expect(acks).toEqual([
    [0, "applied"],
    [1, "applied"],
  ]);
  // Followed from after the run started (its id comes with the answer): live to its end.
  expect(followed.code, `${followErr}\n${followed.stderr}`).toBe(0);
  expect(followed.stdout).toMatch(/rank 1 step \d+ lr 0.05/);
  expect(followed.stdout).toMatch(/rank 1 stopped at step/);

  const show = await runctlJson(["show", runId, "--from", STORE_URL], user);
  expect(show.doc).toMatchObject({ success: true, run: { id: runId, status: "completed" } });
  expect(storedRunFile(s3, runId, "meta.json")).toBe(true);
  // Sent with the live instance's price: the run kept its cost so far.
  const { cost_usd } = z.object({ run: z.object({ cost_usd: z.number() }).loose() }).parse(show.doc).run;
  expect(cost_usd).toBeGreaterThan(0);
  const logs = await runctlJson(["logs", runId, "--from", STORE_URL], user);
  expect(JSON.stringify(logs.doc)).toMatch(/rank 0 step 0 lr 0.1/);
  // Idle again, with the run it took on record; the machine stays up for the next one.
  await waitFor(
    async () => (await storedHostState(s3, agent.hostId))?.state === "idle",
    "the agent to record itself idle again",
  );
  expect(await storedHostState(s3, agent.hostId)).toMatchObject({ run: runId, runs: [runId] });
  expect(ec2.cloud.instances.get(instanceId)?.state).toBe("running");

  const terminated = await runctlJson(["aws", "terminate", instanceId, "--yes"], user);
  expect(terminated.code, terminated.stderr).toBe(0);
  await ec2.cloud.waitForState(instanceId, "terminated");
  const gone = await runctlJson(["aws", "train", instanceId, "train.py"], user);
  expect(gone.code).not.toBe(0);
  expect(Failed.parse(gone.doc).error.code).toBe("machine_not_running");
}, 300_000);

it("an instance created without a store has no agent: `aws train <instance>` says so; a name that is neither a file nor followed by one names both forms", async () => {
  const bare = { ...user, env: { ...user.env } };
  delete bare.env.RUNCTL_AWS_STORE;
  const created = await runctlJson(["aws", "create", "m5.large"], bare);
  expect(created.code, created.stderr).toBe(0);
  expect(created.stderr).toMatch(/aws train <instance> <script>` will need a store/);
  const { placement, host } = Created.parse(created.doc);
  expect(host).toBeUndefined();
  await ec2.cloud.waitForState(placement.resourceId, "running");
  const trained = await runctlJson(["aws", "train", placement.resourceId, "train.py"], user);
  expect(trained.code).not.toBe(0);
  expect(Failed.parse(trained.doc).error).toMatchObject({ code: "no_agent" });
  const neither = await runctlJson(["aws", "train", "nope.py"], user);
  expect(neither.code).not.toBe(0);
  const error = Failed.parse(neither.doc).error;
  expect(error.code).toBe("script_not_found");
  expect(error.hint).toMatch(/runctl aws train <script>.*runctl aws train <instance-id> <script>/);
  const terminated = await runctlJson(["aws", "terminate", placement.resourceId, "--yes"], user);
  expect(terminated.code, terminated.stderr).toBe(0);
});
