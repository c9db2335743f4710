// A remote run end to end on the bare host: the launching side uploads the agent and the code to
// the store once (content-addressed), presigns them, makes the run's POST policy and builds the
// bootstrap (prepareRemoteLaunch); the "machine" runs that bootstrap as a fresh process tree with
// an empty HOME and no node on PATH, downloads Node 24 from the mirror, starts the agent, which
// runs a 2-rank torch (gloo) run, syncs it to the store and reports over NATS. From a workspace
// without the run: `runctl logs -f` shows it live, `runctl ctl … --wait` gets both ranks' acks
// and both change at the same step; once the machine has shut itself down, `runctl show` reads
// the whole run from the store. A second launch of the same code uploads nothing.
import { spawn } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { prepareRemoteLaunch, type RemoteLaunchInput } from "@runctl/agent";
import { AGENT_MAIN } from "@runctl/agent/launcher";
import { listStoredRunFiles } from "@runctl/core";
import { S3ArtifactStore } from "@runctl/s3";
import { StoreRunSource } from "@runctl/tracker";
import { afterAll, beforeAll, expect, it } from "vitest";
import { z } from "zod";
import { type BareHost, MINIMAL_HOST_TOOLS, startBareHost } from "../src/bare-host.ts";
import { lrChangeSteps } from "../src/lr-trace.ts";
import { startNatsServer } from "../src/nats-server.ts";
import { type NodeMirror, publishNodeMirror } from "../src/node-mirror.ts";
import { runctlJson, startRunctl, type Workspace, waitFor, workspace } from "../src/runctl-cli.ts";
import { type S3Emulator, startS3Emulator } from "../src/s3-emulator.ts";

const TRAIN = fileURLToPath(new URL("../fixtures/ddp_control.py", import.meta.url));
const KEY = { accessKeyId: "AKIDREMOTE", secretAccessKey: "remote-run-secret-key" };
const STORE_URL = "s3://artifacts/store";
const Acks = z.object({ acks: z.array(z.object({ rank: z.number(), status: z.string() }).loose()) });

let base: string;
let nats: Awaited<ReturnType<typeof startNatsServer>>;
let s3: S3Emulator;
let store: S3ArtifactStore;
let mirror: NodeMirror;
let user: Workspace;
let project: string;
const hosts: BareHost[] = [];

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), "runctl-remote-run-"));
  // JWT mode: the machine gets a credential for its run only, minted from the account key.
  nats = await startNatsServer({ jwt: true });
  s3 = await startS3Emulator({
    dataDir: join(base, "s3"),
    credentials: [KEY],
    buckets: ["artifacts"],
    publicReadBuckets: ["node-mirror"],
  });
  mirror = await publishNodeMirror(s3, { bucket: "node-mirror" });
  store = S3ArtifactStore.fromUrl(STORE_URL, {
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    partSizeBytes: 5 * 1024 * 1024,
    concurrency: 4,
    credentials: KEY,
  });
  project = join(base, "project");
  await mkdir(project);
  await cp(TRAIN, join(project, "train.py"));
  user = await workspace({
    RUNCTL_NATS_URL: nats.url,
    RUNCTL_NATS_CREDS: jwt().userCredsFile,
    AWS_ACCESS_KEY_ID: KEY.accessKeyId,
    AWS_SECRET_ACCESS_KEY: KEY.secretAccessKey,
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_REGION: "us-east-1",
    AWS_EC2_METADATA_DISABLED: "true",
  });
}, 180_000);

afterAll(async () => {
  for (const host of hosts.splice(0)) await host.close();
  await nats?.close();
  await s3?.stop();
  await rm(base, { recursive: true, force: true });
  await rm(user.home, { recursive: true, force: true });
});

function jwt() {
  if (!nats.jwt) throw new Error("nats-server runs in JWT mode");
  return nats.jwt;
}

function launchInput(runId: string, hostId: string): RemoteLaunchInput {
  return {
    hostId,
    provider: "test",
    run: {
      v: 1,
      runId,
      command: ["python3", "train.py"],
      commandKind: "python",
      cwd: ".",
      runsDir: "runs",
      checkpointDir: "checkpoints",
      nprocPerNode: 2,
    },
    projectRoot: project,
    bundleCacheDir: join(base, "bundles"),
    store,
    nats: {
      url: nats.url,
      prefix: "runctl",
      accountSeed: jwt().accountSeed,
      launcher: { url: nats.url, credsFile: jwt().userCredsFile },
    },
    node: { version: mirror.version, mirror: mirror.url },
    idle: { minutes: 0, action: "terminate" },
    ttlSeconds: 3600,
  };
}

it("a 2-rank run launched by a bootstrap: followed live, steered with every rank's ack, read from the store once the machine is gone", async () => {
  const runId = "bare-ddp-1";
  const first = await prepareRemoteLaunch(launchInput(runId, "bare-1"));
  expect(first.uploadedBytes).toBeGreaterThan(0);
  expect(Buffer.byteLength(first.bootstrap)).toBeLessThanOrEqual(16 * 1024);

  const follow = startRunctl(["logs", "-f", runId, "--from", STORE_URL], user);
  let followErr = "";
  follow.child.stderr?.on("data", (d: Buffer) => {
    followErr += d.toString();
  });
  await waitFor(() => /following bare-ddp-1 over NATS/.test(followErr), `logs -f to subscribe: ${followErr}`);

  const host = await startBareHost({ userData: first.bootstrap, tools: [...MINIMAL_HOST_TOOLS, "setpriv"] });
  hosts.push(host);
  const runDir = join(host.runctlHome, "runs", runId);
  await waitFor(
    async () => (await readFile(join(runDir, "polling"), "utf8").then(() => true)) === true,
    "the ranks to poll for commands",
    120_000,
  ).catch(async (error: unknown) => {
    const logs = await host.logs();
    throw new Error(
      `${String(error)}\nbootstrap.log:\n${logs.bootstrap}\nagent.log:\n${logs.agent}\n${logs.console}`,
    );
  });

  // The environment of every process on the machine (bootstrap loop, agent, ranks) holds no secret.
  const environs = await Promise.all(
    (await host.processes()).map((pid) => readFile(`/proc/${pid}/environ`, "utf8").catch(() => "")),
  );
  expect(environs.length).toBeGreaterThan(2);
  for (const environ of environs) {
    expect(environ).not.toContain(KEY.secretAccessKey);
    expect(environ).not.toContain(jwt().accountSeed);
    expect(environ).not.toMatch(/SU[A-Z0-9]{56}/);
  }

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
  const stop = await runctlJson(["ctl", runId, "run.stop", "--wait", "--timeout", "60"], user);
  expect(stop.code, stop.stderr).toBe(0);
  const followed = await follow.result;
  expect(followed.code, `${followErr}\n${followed.stderr}`).toBe(0);
  expect(followed.stdout).toMatch(/rank 0 step 0 lr 0.1/);
  expect(followed.stdout).toMatch(/rank 1 stopped at step/);

  // Idle right after its run: the machine shuts itself down (and is gone).
  expect(await host.shutdownRequested).toMatch(/-h now/);
  const logs = await host.logs();
  expect(logs.agent).toMatch(/node v24\./);

  // Everything is in the store: show, logs, and both ranks changed the lr at the same step.
  const show = await runctlJson(["show", runId, "--from", STORE_URL], user);
  expect(show.doc).toMatchObject({ success: true, run: { id: runId, status: "completed" } });
  const storedLogs = await runctlJson(["logs", runId, "--from", STORE_URL], user);
  expect(storedLogs.doc).toMatchObject({ success: true, output: followed.stdout });
  const source = new StoreRunSource(store, "runs");
  const changes = async (rank: number) =>
    lrChangeSteps((await source.readFile(runId, `lr.rank${rank}.jsonl`))?.toString("utf8") ?? "");
  const [rank0, rank1] = [await changes(0), await changes(1)];
  expect(rank0).toHaveLength(1);
  expect(rank1).toEqual(rank0);

  // No long-lived secret anywhere the machine could leak it: not the store's key, not the NATS
  // account key (only the run's own short-lived credential travels, and never into logs or the
  // run directory).
  const runCreds = first.hostSpec.run?.nats?.creds ?? "";
  const runSeed = /SU[A-Z0-9]{56}/.exec(runCreds)?.[0];
  expect(runSeed).toBeDefined();
  const leaks = [KEY.secretAccessKey, jwt().accountSeed, runSeed as string];
  const stored = await Promise.all(
    (await listStoredRunFiles(store, `runs/${runId}`)).map(
      async (f) => (await source.readFile(runId, f)) ?? "",
    ),
  );
  for (const text of [logs.bootstrap, logs.agent, logs.console, ...stored.map(String)]) {
    for (const secret of leaks) expect(text).not.toContain(secret);
  }
  for (const secret of leaks.slice(0, 2)) expect(first.bootstrap).not.toContain(secret);

  // Launching the same code again uploads nothing.
  const second = await prepareRemoteLaunch(launchInput("bare-ddp-2", "bare-2"));
  expect(second.uploadedBytes).toBe(0);
});

it("a run outlives its first credential and POST policy: the agent renews both over NATS, control and the store copy keep working", async () => {
  const runId = "renewed-1";
  const ttl = 6;
  const { mintRunCredentials, prepareControlStream, serveCredentialRenewals, connectNats } = await import(
    "@runctl/control"
  );
  // The launching side makes the control stream (a run's credential may not).
  await prepareControlStream({ url: nats.url, credsFile: jwt().userCredsFile, prefix: "runctl" });
  const presign = store.presignPost?.bind(store);
  if (!presign) throw new Error("the S3 store presigns POST policies");
  const post = () => presign(`runs/${runId}/`, { expiresInSeconds: ttl, maxBytes: 64 * 1024 * 1024 });
  const minted = await mintRunCredentials({
    account: jwt().accountSeed,
    prefix: "runctl",
    runId,
    hostId: "renew-1",
    expiresInSeconds: ttl,
  });
  // The launching side answers renewals while the run is live.
  const launcher = await connectNats({ url: nats.url, credsFile: jwt().userCredsFile });
  let renewals = 0;
  const service = serveCredentialRenewals({
    connection: launcher,
    account: jwt().accountSeed,
    prefix: "runctl",
    runId,
    hostId: "renew-1",
    expiresInSeconds: ttl,
    presignPost: post,
    onRenewal: () => {
      renewals += 1;
    },
  });
  await service.ready;
  const home = await mkdtemp(join(base, "renew-host-"));
  await writeFile(
    join(home, "host.json"),
    JSON.stringify({
      v: 1,
      hostId: "renew-1",
      provider: "test",
      idle: { minutes: 0, action: "stop" },
      shutdownCommand: ["true"],
      run: {
        spec: {
          v: 1,
          runId,
          command: ["/usr/bin/python3", TRAIN],
          commandKind: "python",
          cwd: project,
          runsDir: "runs",
          checkpointDir: "checkpoints",
        },
        store: { post: await post() },
        nats: {
          url: nats.url,
          prefix: "runctl",
          creds: minted.creds,
          credsExpiresAt: minted.expiresAt.toISOString(),
          inboxPrefix: minted.inboxPrefix,
        },
      },
    }),
  );
  const agent = spawn(process.execPath, [AGENT_MAIN, "host", join(home, "host.json")], {
    env: { PATH: "/usr/bin:/bin", RUNCTL_HOME: home, HOME: home },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  agent.stdout?.on("data", (d: Buffer) => {
    log += d.toString();
  });
  agent.stderr?.on("data", (d: Buffer) => {
    log += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => agent.on("exit", (code) => resolve(code)));
  try {
    // Three lifetimes of the first credential: it has been replaced at least twice.
    await waitFor(() => renewals >= 3, "three renewals", 60_000).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${log}`);
    });
    const ctl = await runctlJson(["ctl", runId, "run.stop", "--wait", "--timeout", "60"], user);
    expect(ctl.code, `${ctl.stderr}\n${log}`).toBe(0);
    expect(await exited).toBe(0);
  } finally {
    agent.kill("SIGKILL");
    await service.stop();
    await launcher.close();
  }
  const runDir = join(home, "runs", runId);
  const source = new StoreRunSource(store, "runs");
  for (const file of ["metrics.jsonl", "output.log", "lr.rank0.jsonl"]) {
    expect((await source.readFile(runId, file))?.toString("utf8"), file).toBe(
      await readFile(join(runDir, file), "utf8"),
    );
  }
  expect(log).toMatch(/credentials renewed until/);
});

it("with only `runctl nats renew` serving, a run outlives its first credential and POST policy: control and the store copy keep working", async () => {
  const runId = "renewed-2";
  const hostId = "renew-2";
  const ttl = 6;
  const { mintRunCredentials, prepareControlStream } = await import("@runctl/control");
  await prepareControlStream({ url: nats.url, credsFile: jwt().userCredsFile, prefix: "runctl" });
  const presign = store.presignPost?.bind(store);
  if (!presign) throw new Error("the S3 store presigns POST policies");
  const minted = await mintRunCredentials({
    account: jwt().accountSeed,
    prefix: "runctl",
    runId,
    hostId,
    expiresInSeconds: ttl,
  });
  // The machine's host state, as its agent keeps it: the renewer reads the run's machine there.
  const state = join(base, "renew-2-state.json");
  await writeFile(
    state,
    JSON.stringify({
      v: 1,
      hostId,
      state: "running",
      run: runId,
      runs: [runId],
      at: new Date().toISOString(),
    }),
  );
  await store.putFile(`hosts/${hostId}/state.json`, state);
  // Nobody follows the run: only the renewer answers.
  const renewer = startRunctl(["nats", "renew", "--store", STORE_URL, "--ttl", String(ttl)], {
    ...user,
    env: { ...user.env, RUNCTL_NATS_ACCOUNT_SEED: jwt().accountSeed },
  });
  let renewerErr = "";
  renewer.child.stderr?.on("data", (d: Buffer) => {
    renewerErr += d.toString();
  });
  const renewed = () => renewerErr.split("\n").filter((l) => l.startsWith(`renewed ${runId} until`)).length;
  await waitFor(() => renewerErr.includes("serving renewals"), `the renewer to serve: ${renewerErr}`);
  const home = await mkdtemp(join(base, "renew2-host-"));
  await writeFile(
    join(home, "host.json"),
    JSON.stringify({
      v: 1,
      hostId,
      provider: "test",
      idle: { minutes: 0, action: "stop" },
      shutdownCommand: ["true"],
      run: {
        spec: {
          v: 1,
          runId,
          command: ["/usr/bin/python3", TRAIN],
          commandKind: "python",
          cwd: project,
          runsDir: "runs",
          checkpointDir: "checkpoints",
        },
        store: {
          post: await presign(`runs/${runId}/`, { expiresInSeconds: ttl, maxBytes: 64 * 1024 * 1024 }),
        },
        nats: {
          url: nats.url,
          prefix: "runctl",
          creds: minted.creds,
          credsExpiresAt: minted.expiresAt.toISOString(),
          inboxPrefix: minted.inboxPrefix,
        },
      },
    }),
  );
  const agent = spawn(process.execPath, [AGENT_MAIN, "host", join(home, "host.json")], {
    env: { PATH: "/usr/bin:/bin", RUNCTL_HOME: home, HOME: home },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  agent.stdout?.on("data", (d: Buffer) => {
    log += d.toString();
  });
  agent.stderr?.on("data", (d: Buffer) => {
    log += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => agent.on("exit", (code) => resolve(code)));
  try {
    await waitFor(() => renewed() >= 3, "three renewals", 60_000).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${log}\n${renewerErr}`);
    });
    // The renewer read the run's machine from its host state: the renewed credential kept the
    // machine's subjects, so its inbox still answers after the reconnects.
    const { connectNats, hostSubjects, requestWhenListening } = await import("@runctl/control");
    const launcher = await connectNats({ url: nats.url, credsFile: jwt().userCredsFile });
    try {
      // Asked as `aws train` asks: the agent may be reconnecting with its renewed credential.
      const reply = await requestWhenListening(launcher, hostSubjects("runctl", hostId).inbox, "{}", {
        timeoutMs: 10_000,
      });
      expect(JSON.parse(new TextDecoder().decode(reply.data))).toMatchObject({
        accepted: false,
        error: { code: "bad_inbox_message" },
      });
    } finally {
      await launcher.close();
    }
    const ctl = await runctlJson(["ctl", runId, "run.stop", "--wait", "--timeout", "60"], user);
    expect(ctl.code, `${ctl.stderr}\n${log}`).toBe(0);
    expect(await exited).toBe(0);
  } finally {
    agent.kill("SIGKILL");
    renewer.child.kill("SIGTERM");
  }
  const ended = await renewer.result;
  expect(ended.code, renewerErr).toBe(0);
  const runDir = join(home, "runs", runId);
  const source = new StoreRunSource(store, "runs");
  // Written after the first policy expired: the renewed ones carried the store copy to the end.
  for (const file of ["metrics.jsonl", "output.log", "meta.json"]) {
    expect((await source.readFile(runId, file))?.toString("utf8"), file).toBe(
      await readFile(join(runDir, file), "utf8"),
    );
  }
  expect(log).toMatch(/credentials renewed until/);
  expect(log).not.toMatch(/renewal failed/);
}, 120_000);

it("a code bundle tampered with in the store: the machine refuses it, reports why and shuts down; the run reads as failed with the reason", async () => {
  const runId = "bare-tampered-1";
  const launch = await prepareRemoteLaunch(launchInput(runId, "bare-3"));
  const sha = launch.hostSpec.run?.code?.sha256 as string;
  // Someone with write access to the store replaces the bundle's bytes under its key.
  const evil = join(base, "evil.tar.gz");
  await writeFile(evil, "not the code that was launched");
  await store.putFile(`bundles/${sha}.tar.gz`, evil);
  const host = await startBareHost({ userData: launch.bootstrap });
  hosts.push(host);
  expect(await host.shutdownRequested).toMatch(/-h now/);
  expect((await host.logs()).agent).toBe("");

  const show = await runctlJson(["show", runId, "--from", STORE_URL], user);
  expect(show.doc).toMatchObject({ success: true, run: { id: runId, status: "failed" } });
  expect(JSON.stringify(show.doc)).toMatch(/bootstrap failed \(checksum_mismatch\)/);
});
