/**
 * The launching side of a remote run or a machine that waits for runs: everything a provider
 * needs before it starts a machine, and everything a live machine's inbox needs for one more
 * run, given where the bytes go.
 *
 * - the agent artifact and the code bundle are uploaded to the store once,
 *   under their sha256 (`agents/<sha>.mjs`, `bundles/<sha>.tar.gz`): a second
 *   launch of unchanged code uploads nothing;
 * - the machine gets short-lived presigned GETs for them, a POST policy that
 *   may write only under the run's prefix (`runs/<run>/`), and, with NATS, a
 *   credential for this run's subjects only, minted from the account key the
 *   launching side holds;
 * - the machine itself gets a host grant: a POST policy for `hosts/<host>/` (its HostState, a
 *   failed bootstrap's report) and, with an account key, a credential for its inbox and status;
 * - all of it goes into a host spec, and core builds the bootstrap around it (its body, the
 *   same on every launch, also goes to the store when the host spec leaves no room for it in
 *   user-data).
 */

import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NatsSettings } from "@runctl/control";
import {
  type ArtifactStore,
  type BootstrapInput,
  bootstrapBody,
  bootstrapErrorKey,
  buildBootstrap,
  buildBundle,
  HOST_SPEC_VERSION,
  HostInboxMessage,
  type HostInboxMessageInput,
  type HostNats,
  type HostResume,
  HostSpec,
  type HostSpecInput,
  type HostStoreGrant,
  hostStorePrefix,
  type RunSpecInput,
  UserError,
} from "@runctl/core";
import { agentArtifact } from "./agent-artifact.ts";

export interface RemoteLaunchNats {
  url: string;
  prefix: string;
  /**
   * The account signing seed (`SA…`) per-run credentials are minted from. Without it the
   * machine connects with no credential: only for a server on a network you control.
   */
  accountSeed?: string;
  /**
   * The launching side's own connection (its user's credentials): it makes sure the control
   * stream exists, which a run's credential may not create.
   */
  launcher?: NatsSettings;
}

export interface RemoteLaunchInput {
  hostId: string;
  provider: string;
  /** The first run; `cwd` relative to the project root that is bundled. None: the machine waits for runs. */
  run?: RunSpecInput;
  /** The directory bundled as the run's code (with `run`). */
  projectRoot?: string;
  bundleCacheDir?: string;
  store: ArtifactStore;
  nats?: RemoteLaunchNats;
  node: { version: string; mirror: string };
  idle?: HostSpecInput["idle"];
  /** How the machine hears it is being reclaimed (spot): the provider knows. Default none. */
  interruptions?: HostSpecInput["interruptions"];
  /** The machine's own shutdown, when `shutdown -h now` is not it (a RunPod pod stops through RunPod). */
  shutdownCommand?: string[];
  /** The quoted price of the machine: runs on it record their cost so far. */
  price?: HostSpecInput["price"];
  /** An earlier run's checkpoint the first run starts from (resumeCheckpoint in remote-train.ts). */
  resume?: HostResume;
  /** How long the URLs, the POST policies and the credentials work; default 24 h. */
  ttlSeconds?: number;
  /** Home on the machine (the bootstrap's default is /var/lib/runctl). */
  home?: string;
  /** The bootstrap supervises the agent instead of returning: a container's command (RunPod). */
  foreground?: boolean;
}

export interface RemoteLaunch {
  bootstrap: string;
  hostSpec: HostSpec;
  /** Bytes uploaded for this launch: 0 when the agent and the code were in the store already. */
  uploadedBytes: number;
  /** The run's prefix in the store, when there is a run. */
  runPrefix?: string;
}

const DAY = 24 * 60 * 60;
/** The most one synced object may be through a POST policy. */
const POST_MAX_BYTES = 1024 ** 3;

type PresigningStore = ArtifactStore & Required<Pick<ArtifactStore, "presignGet" | "presignPost">>;

function presigning(store: ArtifactStore): PresigningStore {
  if (!store.presignGet || !store.presignPost) {
    throw new UserError(`The store ${store.url} cannot presign URLs, so a remote machine cannot reach it`, {
      code: "store_cannot_presign",
      hint: "Use an s3:// store (`[s3]` in .runctl.toml) for remote runs.",
    });
  }
  return store as PresigningStore;
}

/** Uploads content-addressed files once; counts the bytes it really sent. */
function uploader(store: ArtifactStore) {
  let bytes = 0;
  return {
    get bytes() {
      return bytes;
    },
    async upload(key: string, file: string, size: number) {
      if ((await store.head(key)) !== null) return;
      try {
        await store.putFile(key, file, { ifNoneMatch: "*" });
        bytes += size;
      } catch (error) {
        // Another launch uploaded the same content first: it is the same bytes.
        if ((error as { code?: unknown }).code !== "artifact_exists") throw error;
      }
    },
  };
}

async function uploadCode(
  up: ReturnType<typeof uploader>,
  projectRoot: string | undefined,
  bundleCacheDir: string | undefined,
) {
  if (projectRoot === undefined || bundleCacheDir === undefined) {
    throw new UserError("A run needs its project directory and a bundle cache", { code: "invalid_launch" });
  }
  const bundle = await buildBundle(projectRoot, { cacheDir: bundleCacheDir });
  const key = `bundles/${bundle.archiveSha256}.tar.gz`;
  await up.upload(key, bundle.archivePath, bundle.archiveBytes);
  return { key, sha256: bundle.archiveSha256 };
}

/** The machine's own grants: a POST policy for `hosts/<host>/` and, with an account seed, its credential. */
export async function mintHostGrants(input: {
  hostId: string;
  store: ArtifactStore;
  nats?: RemoteLaunchNats;
  ttlSeconds?: number;
}): Promise<{ store: HostStoreGrant; nats?: HostNats }> {
  const store = presigning(input.store);
  const ttl = input.ttlSeconds ?? DAY;
  const post = await store.presignPost(hostStorePrefix(input.hostId), {
    expiresInSeconds: ttl,
    maxBytes: 1024 * 1024,
  });
  if (!input.nats) return { store: { post } };
  if (input.nats.accountSeed === undefined) {
    return { store: { post }, nats: { url: input.nats.url, prefix: input.nats.prefix } };
  }
  const { mintHostCredentials } = await import("@runctl/control");
  const minted = await mintHostCredentials({
    account: input.nats.accountSeed,
    prefix: input.nats.prefix,
    hostId: input.hostId,
    expiresInSeconds: ttl,
  });
  return {
    store: { post },
    nats: {
      url: input.nats.url,
      prefix: input.nats.prefix,
      creds: minted.creds,
      credsExpiresAt: minted.expiresAt.toISOString(),
    },
  };
}

/** A run's own grants: a POST policy for `runs/<run>/` and, with an account seed, its credential. */
async function mintRunGrants(input: {
  runId: string;
  hostId: string;
  store: PresigningStore;
  nats?: RemoteLaunchNats;
  ttl: number;
}): Promise<{ store: HostStoreGrant; nats?: HostNats; runPrefix: string }> {
  const runPrefix = `runs/${input.runId}`;
  const post = await input.store.presignPost(`${runPrefix}/`, {
    expiresInSeconds: input.ttl,
    maxBytes: POST_MAX_BYTES,
  });
  if (!input.nats) return { store: { post }, runPrefix };
  if (input.nats.accountSeed === undefined) {
    return { store: { post }, nats: { url: input.nats.url, prefix: input.nats.prefix }, runPrefix };
  }
  const { mintRunCredentials } = await import("@runctl/control");
  const minted = await mintRunCredentials({
    account: input.nats.accountSeed,
    prefix: input.nats.prefix,
    runId: input.runId,
    hostId: input.hostId,
    expiresInSeconds: input.ttl,
  });
  return {
    store: { post },
    nats: {
      url: input.nats.url,
      prefix: input.nats.prefix,
      creds: minted.creds,
      credsExpiresAt: minted.expiresAt.toISOString(),
      inboxPrefix: minted.inboxPrefix,
    },
    runPrefix,
  };
}

async function prepareStream(nats: RemoteLaunchNats | undefined): Promise<void> {
  if (!nats?.launcher) return;
  const { prepareControlStream } = await import("@runctl/control");
  await prepareControlStream({ ...nats.launcher, prefix: nats.prefix });
}

export async function prepareRemoteLaunch(input: RemoteLaunchInput): Promise<RemoteLaunch> {
  const store = presigning(input.store);
  const ttl = input.ttlSeconds ?? DAY;
  const up = uploader(store);
  const agent = agentArtifact();
  await up.upload(agent.key, agent.path, agent.bytes);
  const code = input.run ? await uploadCode(up, input.projectRoot, input.bundleCacheDir) : undefined;
  await prepareStream(input.nats);
  // Nothing renews the machine's own grants while it waits: they outlive its idle time.
  const idleSeconds = (input.idle?.minutes ?? 30) * 60;
  const host = await mintHostGrants({
    hostId: input.hostId,
    store,
    ...(input.nats ? { nats: input.nats } : {}),
    ttlSeconds: Math.max(ttl, idleSeconds + 60 * 60),
  });
  const run = input.run
    ? await mintRunGrants({
        runId: input.run.runId,
        hostId: input.hostId,
        store,
        ...(input.nats ? { nats: input.nats } : {}),
        ttl,
      })
    : undefined;
  const hostSpec = HostSpec.parse({
    v: HOST_SPEC_VERSION,
    hostId: input.hostId,
    provider: input.provider,
    ...(input.idle ? { idle: input.idle } : {}),
    ...(input.price ? { price: input.price } : {}),
    ...(input.interruptions ? { interruptions: input.interruptions } : {}),
    ...(input.shutdownCommand ? { shutdownCommand: input.shutdownCommand } : {}),
    store: host.store,
    ...(host.nats ? { nats: host.nats } : {}),
    ...(input.run && run && code
      ? {
          run: {
            spec: input.run,
            code: { sha256: code.sha256 },
            store: run.store,
            ...(run.nats ? { nats: run.nats } : {}),
            ...(input.resume ? { resume: input.resume } : {}),
          },
        }
      : {}),
  } satisfies HostSpecInput);
  // A failed bootstrap reports where its readers look: the run's directory, or the machine's record.
  const report = run?.store.post ?? host.store.post;
  const bootstrapInput: BootstrapInput = {
    node: input.node,
    agent: { url: await store.presignGet(agent.key, { expiresInSeconds: ttl }), sha256: agent.sha256 },
    ...(code
      ? { code: { url: await store.presignGet(code.key, { expiresInSeconds: ttl }), sha256: code.sha256 } }
      : {}),
    hostSpec,
    ...(input.home ? { home: input.home } : {}),
    report: { post: report, key: bootstrapErrorKey(report.keyPrefix) },
    ...(input.foreground ? { foreground: true } : {}),
  };
  let bootstrap: string;
  try {
    bootstrap = buildBootstrap(bootstrapInput);
  } catch (error) {
    if ((error as { code?: unknown }).code !== "bootstrap_too_large") throw error;
    // The host spec (long store URLs, a checkpoint to resume from) leaves no room for the body
    // in 16 KiB of user-data: the body goes to the store too, fetched and checked by its sha256.
    const body = await uploadBootstrapBody(up, input.bundleCacheDir);
    bootstrap = buildBootstrap({
      ...bootstrapInput,
      body: { url: await store.presignGet(body.key, { expiresInSeconds: ttl }), sha256: body.sha256 },
    });
  }
  return { bootstrap, hostSpec, uploadedBytes: up.bytes, ...(run ? { runPrefix: run.runPrefix } : {}) };
}

/** The bootstrap's body in the store once, under its sha256 (`bootstrap/<sha>.sh`). */
async function uploadBootstrapBody(
  up: ReturnType<typeof uploader>,
  cacheDir: string | undefined,
): Promise<{ key: string; sha256: string }> {
  const text = bootstrapBody();
  const sha256 = createHash("sha256").update(text).digest("hex");
  const dir = cacheDir ?? tmpdir();
  await mkdir(dir, { recursive: true });
  const file = join(dir, `bootstrap-${sha256}.sh`);
  if (!existsSync(file)) await writeFile(file, text);
  const key = `bootstrap/${sha256}.sh`;
  await up.upload(key, file, Buffer.byteLength(text));
  return { key, sha256 };
}

export interface InboxRunInput {
  hostId: string;
  /** The run; `cwd` relative to the project root that is bundled. */
  run: RunSpecInput;
  projectRoot: string;
  bundleCacheDir: string;
  store: ArtifactStore;
  nats: RemoteLaunchNats;
  /** The machine's price now, so the run records its cost so far. */
  price?: HostSpecInput["price"];
  resume?: HostResume;
  ttlSeconds?: number;
}

export interface InboxRun {
  message: HostInboxMessage;
  uploadedBytes: number;
  runPrefix: string;
}

/**
 * One more run for a live machine's inbox: the code in the store (once), a presigned GET for it
 * (the machine fetches and verifies it unless it has it), the run's own grants, and fresh host
 * grants so a machine that keeps taking runs keeps its inbox and its record.
 */
export async function prepareInboxRun(input: InboxRunInput): Promise<InboxRun> {
  const store = presigning(input.store);
  const ttl = input.ttlSeconds ?? DAY;
  const up = uploader(store);
  const code = await uploadCode(up, input.projectRoot, input.bundleCacheDir);
  await prepareStream(input.nats);
  const run = await mintRunGrants({
    runId: input.run.runId,
    hostId: input.hostId,
    store,
    nats: input.nats,
    ttl,
  });
  const host = await mintHostGrants({ hostId: input.hostId, store, nats: input.nats, ttlSeconds: ttl });
  const message = HostInboxMessage.parse({
    v: HOST_SPEC_VERSION,
    run: {
      spec: input.run,
      code: { url: await store.presignGet(code.key, { expiresInSeconds: ttl }), sha256: code.sha256 },
      store: run.store,
      ...(run.nats ? { nats: run.nats } : {}),
      ...(input.price ? { price: input.price } : {}),
      ...(input.resume ? { resume: input.resume } : {}),
    },
    host: { store: host.store, ...(host.nats ? { nats: host.nats } : {}) },
  } satisfies HostInboxMessageInput);
  return { message, uploadedBytes: up.bytes, runPrefix: run.runPrefix };
}
