// The agent in host mode (`node agent.bundle.mjs host host.json`), as a bootstrap starts it on a
// machine runctl launched: a 2-rank torch (gloo) run followed live with `runctl logs -f` from a
// workspace that does not have the run, steered with `runctl ctl … --wait` (both ranks ack and
// change at the same step), then the machine goes idle and shuts itself down. A second machine
// takes a further run through its inbox without being started again. A machine started with no
// run waits from boot, keeps its HostState in the store with its own POST policy, fetches an inbox
// run's code by its URL (a bundle whose sha256 does not match fails that run, not the machine).
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AGENT_MAIN } from "@runctl/agent/launcher";
import { connectNats, hostSubjects } from "@runctl/control";
import { buildBundle, type HostSpecInput, HostState, hostStateKey, hostStorePrefix } from "@runctl/core";
import { S3ArtifactStore } from "@runctl/s3";
import { StoreRunSource } from "@runctl/tracker";
import { afterAll, beforeAll, expect, it } from "vitest";
import { z } from "zod";
import { lrChanges } from "../src/lr-trace.ts";
import { startNatsServer } from "../src/nats-server.ts";
import { runctlJson, startRunctl, type Workspace, waitFor, workspace } from "../src/runctl-cli.ts";
import { type S3Emulator, startS3Emulator } from "../src/s3-emulator.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const Acks = z.object({ acks: z.array(z.object({ rank: z.number(), status: z.string() }).loose()) });

const KEY = { accessKeyId: "AKIDHOST", secretAccessKey: "host-secret" };
const STORE_URL = "s3://artifacts/store";
let nats: Awaited<ReturnType<typeof startNatsServer>>;
let s3: S3Emulator;
let store: S3ArtifactStore;
let user: Workspace;
const homes: string[] = [];
const agents: ChildProcess[] = [];
beforeAll(async () => {
  nats = await startNatsServer();
  const data = await mkdtemp(join(tmpdir(), "runctl-host-s3-"));
  homes.push(data);
  s3 = await startS3Emulator({ dataDir: data, credentials: [KEY], buckets: ["artifacts"] });
  store = S3ArtifactStore.fromUrl(STORE_URL, {
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    partSizeBytes: 5 * 1024 * 1024,
    concurrency: 4,
    credentials: KEY,
  });
  // The user's machine: NATS and the store configured, no run directory of the remote run.
  user = await workspace({
    RUNCTL_NATS_URL: nats.url,
    AWS_ACCESS_KEY_ID: KEY.accessKeyId,
    AWS_SECRET_ACCESS_KEY: KEY.secretAccessKey,
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_REGION: "us-east-1",
    AWS_EC2_METADATA_DISABLED: "true",
  });
});
afterAll(async () => {
  for (const agent of agents) agent.kill("SIGKILL");
  await nats?.close();
  await s3?.stop();
  for (const home of [...homes, user.home]) await rm(home, { recursive: true, force: true });
});

interface Machine {
  home: string;
  agent: ChildProcess;
  exited: Promise<number | null>;
  log: () => string;
  /** Where the fake `shutdown` records that it was asked. */
  shutdownMark: string;
}

/** A "machine": the agent in host mode with its own home, and a shutdown command that records the request. */
async function startMachine(spec: HostSpecInput): Promise<Machine> {
  const home = await mkdtemp(join(tmpdir(), "runctl-host-"));
  homes.push(home);
  const shutdownMark = join(home, "shutdown-requested");
  const shutdown = join(home, "fake-shutdown.sh");
  await writeFile(shutdown, `#!/bin/sh\necho "$@" > '${shutdownMark}'\n`, { mode: 0o755 });
  await writeFile(
    join(home, "host.json"),
    JSON.stringify({ ...spec, shutdownCommand: [shutdown, "-h", "now"] }),
  );
  const agent = spawn(process.execPath, [AGENT_MAIN, "host", join(home, "host.json")], {
    env: { PATH: `${dirname("/usr/bin/python3")}:/bin`, RUNCTL_HOME: home, HOME: home },
    stdio: ["ignore", "pipe", "pipe"],
  });
  agents.push(agent);
  let log = "";
  agent.stdout?.on("data", (d: Buffer) => {
    log += d.toString();
  });
  agent.stderr?.on("data", (d: Buffer) => {
    log += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => agent.on("exit", (code) => resolve(code)));
  return { home, agent, exited, log: () => log, shutdownMark };
}

/** A run's POST policy: the machine may write under runs/<run>/ of the store and nowhere else. */
async function storeFor(runId: string) {
  const presign = store.presignPost?.bind(store);
  if (!presign) throw new Error("the S3 store presigns POST policies");
  return { post: await presign(`runs/${runId}/`, { expiresInSeconds: 3600, maxBytes: 64 * 1024 * 1024 }) };
}

function runOf(runId: string, script: string, nproc = 1) {
  return {
    spec: {
      v: 1 as const,
      runId,
      command: ["/usr/bin/python3", join(FIXTURES, script)],
      commandKind: "python" as const,
      cwd: FIXTURES,
      runsDir: "runs",
      checkpointDir: "checkpoints",
      nprocPerNode: nproc,
    },
    nats: { url: nats.url, prefix: "runctl" },
  };
}

it("follows and steers a 2-rank run on another machine over NATS, then the idle machine shuts itself down", async () => {
  const runId = "remote-ddp-1";
  // Followed live from a workspace that has no copy of the run (and no store: all of it over NATS).
  const follow = startRunctl(["logs", "-f", runId], user);
  let followErr = "";
  follow.child.stderr?.on("data", (d: Buffer) => {
    followErr += d.toString();
  });
  await waitFor(
    () => /following remote-ddp-1 over NATS/.test(followErr),
    `logs -f to subscribe: ${followErr}`,
  );
  const machine = await startMachine({
    v: 1,
    hostId: "vm-1",
    provider: "test",
    run: { ...runOf(runId, "ddp_control.py", 2), store: await storeFor(runId) },
    idle: { minutes: 0, action: "terminate" },
  });
  const runDir = join(machine.home, "runs", runId);

  await waitFor(() => existsSync(join(runDir, "polling")), `the run to poll:\n${machine.log()}`);

  const ctl = await runctlJson(
    ["ctl", runId, "optimizer.lr.multiplier", "0.5", "--wait", "--timeout", "60"],
    user,
  );
  expect(ctl.code, ctl.stderr).toBe(0);
  expect(
    Acks.parse(ctl.doc)
      .acks.map((a) => [a.rank, a.status])
      .sort(),
  ).toEqual([
    [0, "applied"],
    [1, "applied"],
  ]);
  // A rank acks when it applies the command and traces the new lr after its next step (an
  // all-reduce with the other rank): under load the ack can come first.
  await waitFor(
    async () => (await lrChanges(runDir, 0)).length > 0 && (await lrChanges(runDir, 1)).length > 0,
    "both ranks to trace the changed lr",
  );
  const [changed0, changed1] = [await lrChanges(runDir, 0), await lrChanges(runDir, 1)];
  expect(changed0).toHaveLength(1);
  expect(changed1).toEqual(changed0);

  const stop = await runctlJson(["ctl", runId, "run.stop", "--wait", "--timeout", "60"], user);
  expect(stop.code, stop.stderr).toBe(0);
  const followed = await follow.result;
  expect(followed.code, followed.stderr).toBe(0);
  // Every line the ranks printed, once, in the order of output.log.
  const output = await readFile(join(runDir, "output.log"), "utf8");
  expect(output).toMatch(/rank 1 stopped at step/);
  expect(followed.stdout, followErr).toBe(output);

  // Nothing more to run: the machine asks for its own shutdown and the agent exits 0.
  expect(await machine.exited).toBe(0);
  expect((await readFile(machine.shutdownMark, "utf8")).trim()).toBe("-h now");
  const shutdown = JSON.parse(await readFile(join(machine.home, "shutdown.json"), "utf8"));
  expect(shutdown).toMatchObject({ reason: "idle", action: "terminate" });

  // The machine is gone; the store copy is the whole run.
  const lr = [
    await readFile(join(runDir, "lr.rank0.jsonl"), "utf8"),
    await readFile(join(runDir, "lr.rank1.jsonl"), "utf8"),
  ];
  const metrics = await readFile(join(runDir, "metrics.jsonl"), "utf8");
  await rm(machine.home, { recursive: true, force: true });
  const show = await runctlJson(["show", runId, "--from", STORE_URL], user);
  expect(show.code, show.stderr).toBe(0);
  expect(show.doc).toMatchObject({ success: true, run: { id: runId, status: "completed" } });
  const logs = await runctlJson(["logs", runId, "--from", STORE_URL], user);
  expect(logs.doc).toMatchObject({ success: true, output });
  const source = new StoreRunSource(store, "runs");
  expect((await source.readFile(runId, "metrics.jsonl"))?.toString("utf8")).toBe(metrics);
  expect((await source.readFile(runId, "lr.rank0.jsonl"))?.toString("utf8")).toBe(lr[0]);
  expect((await source.readFile(runId, "lr.rank1.jsonl"))?.toString("utf8")).toBe(lr[1]);
});

it("takes a further run through its inbox, answers bad requests with a reason, and a restart does not run an ended run again", async () => {
  const machine = await startMachine({
    v: 1,
    hostId: "vm-2",
    provider: "test",
    run: runOf("inbox-first", "hello_run.py"),
    idle: { minutes: 10, action: "stop" },
  });
  await waitFor(
    () => /run inbox-first ended: completed/.test(machine.log()),
    `the first run:\n${machine.log()}`,
  );

  const nc = await connectNats({ url: nats.url });
  const inbox = hostSubjects("runctl", "vm-2").inbox;
  const ask = async (body: unknown) =>
    JSON.parse(
      new TextDecoder().decode(
        (await nc.request(inbox, new TextEncoder().encode(JSON.stringify(body)), { timeout: 10_000 })).data,
      ),
    );
  expect(await ask({ v: 1, run: { spec: { runId: "../x" } } })).toMatchObject({
    accepted: false,
    error: { code: "bad_inbox_message" },
  });
  // A run that cannot start (its checkpoint directory cannot exist) fails on its own; the machine goes on.
  const unstartable = runOf("inbox-unstartable", "hello_run.py");
  expect(
    await ask({ v: 1, run: { ...unstartable, spec: { ...unstartable.spec, checkpointDir: "/dev/null/x" } } }),
  ).toMatchObject({
    accepted: true,
  });
  await waitFor(
    () => /run inbox-unstartable did not start/.test(machine.log()),
    `the unstartable run:\n${machine.log()}`,
  );
  expect(
    JSON.parse(await readFile(join(machine.home, "runs", "inbox-unstartable", "meta.json"), "utf8")),
  ).toMatchObject({
    status: "failed",
  });
  expect(await ask({ v: 1, run: runOf("inbox-second", "hello_run.py") })).toMatchObject({
    accepted: true,
    run: "inbox-second",
  });
  await waitFor(
    () => /run inbox-second ended: completed/.test(machine.log()),
    `the second run:\n${machine.log()}`,
  );
  expect(await readFile(join(machine.home, "runs", "inbox-second", "output.log"), "utf8")).toMatch(
    /hello from inbox-second/,
  );
  await nc.close();

  // Stopped by a signal: no shutdown. Started again (a restart policy), the ended first run is not rerun.
  machine.agent.kill("SIGTERM");
  expect(await machine.exited).toBe(0);
  expect(existsSync(machine.shutdownMark)).toBe(false);
  const again = spawn(process.execPath, [AGENT_MAIN, "host", join(machine.home, "host.json")], {
    env: { PATH: "/usr/bin:/bin", RUNCTL_HOME: machine.home, HOME: machine.home },
    stdio: ["ignore", "pipe", "pipe"],
  });
  agents.push(again);
  let log = "";
  again.stdout?.on("data", (d: Buffer) => {
    log += d.toString();
  });
  await waitFor(() => /already ended; not running it again/.test(log), `the restarted agent:\n${log}`);
  again.kill("SIGTERM");
  const meta = JSON.parse(await readFile(join(machine.home, "runs", "inbox-first", "meta.json"), "utf8"));
  expect(meta.attempt ?? 1).toBe(1);
});

it("an agent killed mid-run and started again by its restart policy runs the run again as its next attempt", async () => {
  const machine = await startMachine({
    v: 1,
    hostId: "vm-3",
    provider: "test",
    run: runOf("restarted-1", "until_released.py"),
    idle: { minutes: 0, action: "stop" },
  });
  const runDir = join(machine.home, "runs", "restarted-1");
  const output = () => readFile(join(runDir, "output.log"), "utf8").catch(() => "");
  await waitFor(async () => /started/.test(await output()), `the first attempt:\n${machine.log()}`);
  machine.agent.kill("SIGKILL");
  await machine.exited;

  // What a restart policy does: the same command again.
  const again = spawn(process.execPath, [AGENT_MAIN, "host", join(machine.home, "host.json")], {
    env: { PATH: "/usr/bin:/bin", RUNCTL_HOME: machine.home, HOME: machine.home },
    stdio: ["ignore", "pipe", "pipe"],
  });
  agents.push(again);
  const exited = new Promise<number | null>((resolve) => again.on("exit", (code) => resolve(code)));
  await waitFor(async () => ((await output()).match(/started/g) ?? []).length === 2, "the second attempt");
  await writeFile(join(runDir, "release"), "");
  expect(await exited).toBe(0);
  const meta = z
    .object({
      status: z.string(),
      attempts: z.array(z.object({ number: z.number(), status: z.string() }).loose()),
    })
    .loose()
    .parse(JSON.parse(await readFile(join(runDir, "meta.json"), "utf8")));
  expect(meta.status).toBe("completed");
  // The first attempt is closed truthfully (its agent is gone), the second completed.
  expect(meta.attempts.map((a) => [a.number, a.status])).toEqual([
    [1, "failed"],
    [2, "completed"],
  ]);
});

it("nats-server killed and restarted mid-run: telemetry resumes, logs -f misses nothing, the store copy has every metric once", async () => {
  const runId = "remote-nats-restart";
  const follow = startRunctl(["logs", "-f", runId, "--from", STORE_URL], user);
  let followErr = "";
  follow.child.stderr?.on("data", (d: Buffer) => {
    followErr += d.toString();
  });
  // The store copy does not exist yet: logs -f waits on NATS for it.
  const machine = await startMachine({
    v: 1,
    hostId: "vm-4",
    provider: "test",
    run: { ...runOf(runId, "ddp_control.py"), store: await storeFor(runId) },
    idle: { minutes: 0, action: "stop" },
  });
  const runDir = join(machine.home, "runs", runId);
  const lines = async () =>
    (await readFile(join(runDir, "output.log"), "utf8").catch(() => "")).split("\n").length;
  await waitFor(async () => (await lines()) > 3, `output:\n${machine.log()}`);

  await nats.stop();
  const before = await lines();
  await waitFor(async () => (await lines()) > before + 5, "output while NATS is down");
  await nats.start();

  const stop = await runctlJson(["ctl", runId, "run.stop", "--wait", "--timeout", "60"], user);
  expect(stop.code, stop.stderr).toBe(0);
  const followed = await follow.result;
  expect(followed.code, `${followErr}\n${followed.stderr}`).toBe(0);
  expect(await machine.exited).toBe(0);
  const output = await readFile(join(runDir, "output.log"), "utf8");
  expect(followed.stdout, `${followErr}\n${machine.log()}`).toBe(output);

  const metrics = await readFile(join(runDir, "metrics.jsonl"), "utf8");
  const stored = (await new StoreRunSource(store, "runs").readFile(runId, "metrics.jsonl"))?.toString("utf8");
  expect(stored).toBe(metrics);
  const idx = metrics
    .trim()
    .split("\n")
    .map((line) => z.object({ _idx: z.number() }).loose().parse(JSON.parse(line))._idx);
  expect(new Set(idx).size).toBe(idx.length);
});

it("a machine with no run waits from boot, records itself in the store, and fetches an inbox run's code by its URL", async () => {
  const hostId = "vm-5";
  const post = await store.presignPost?.(hostStorePrefix(hostId), {
    expiresInSeconds: 3600,
    maxBytes: 1024 * 1024,
  });
  if (!post) throw new Error("the S3 store presigns POST policies");
  const machine = await startMachine({
    v: 1,
    hostId,
    provider: "test",
    nats: { url: nats.url, prefix: "runctl" },
    store: { post },
    idle: { minutes: 10, action: "stop" },
  });
  const state = async () => {
    const local = join(machine.home, "state-copy.json");
    await store.getFile(hostStateKey(hostId), local).catch(() => undefined);
    return existsSync(local) ? HostState.parse(JSON.parse(await readFile(local, "utf8"))) : undefined;
  };
  await waitFor(
    async () => (await state())?.state === "idle",
    `the machine to record itself idle:\n${machine.log()}`,
  );
  expect(await state()).toMatchObject({ hostId, runs: [] });

  // The code: the fixtures bundled, in the store, by a presigned URL.
  const cache = await mkdtemp(join(tmpdir(), "runctl-host-bundles-"));
  homes.push(cache);
  const bundle = await buildBundle(FIXTURES, { cacheDir: cache });
  const key = `bundles/${bundle.archiveSha256}.tar.gz`;
  await store.putFile(key, bundle.archivePath);
  const url = await store.presignGet?.(key, { expiresInSeconds: 3600 });
  if (!url) throw new Error("the S3 store presigns GETs");
  const bundled = (runId: string, sha256: string) => ({
    spec: {
      v: 1 as const,
      runId,
      command: ["/usr/bin/python3", "hello_run.py"],
      commandKind: "python" as const,
      cwd: ".",
      runsDir: "runs",
      checkpointDir: "checkpoints",
    },
    code: { url, sha256 },
    nats: { url: nats.url, prefix: "runctl" },
  });
  const nc = await connectNats({ url: nats.url });
  const ask = async (body: unknown) =>
    JSON.parse(
      new TextDecoder().decode(
        (
          await nc.request(
            hostSubjects("runctl", hostId).inbox,
            new TextEncoder().encode(JSON.stringify(body)),
            {
              timeout: 10_000,
            },
          )
        ).data,
      ),
    );
  // A bundle that is not what its sha256 says: that run fails with the reason, the machine goes on.
  const wrong = "0".repeat(64);
  expect(await ask({ v: 1, run: bundled("code-tampered", wrong) })).toMatchObject({ accepted: true });
  await waitFor(
    () => /run code-tampered did not start/.test(machine.log()),
    `the tampered run:\n${machine.log()}`,
  );
  expect(machine.log()).toMatch(/sha256 is [0-9a-f]{64}, expected 0{64}/);
  expect(existsSync(join(machine.home, "code", wrong))).toBe(false);

  expect(await ask({ v: 1, run: bundled("code-fetched", bundle.archiveSha256) })).toMatchObject({
    accepted: true,
    run: "code-fetched",
  });
  await waitFor(() => /run code-fetched ended: completed/.test(machine.log()), `the run:\n${machine.log()}`);
  await nc.close();
  expect(await readFile(join(machine.home, "runs", "code-fetched", "output.log"), "utf8")).toMatch(
    /hello from code-fetched/,
  );
  expect(existsSync(join(machine.home, "code", bundle.archiveSha256, "hello_run.py"))).toBe(true);
  await waitFor(async () => (await state())?.runs.includes("code-fetched") === true, "the record of the run");
  expect(await state()).toMatchObject({ state: "idle", run: "code-fetched" });

  machine.agent.kill("SIGTERM");
  expect(await machine.exited).toBe(0);
  expect(existsSync(machine.shutdownMark)).toBe(false);
});
