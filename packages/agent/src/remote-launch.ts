/**
 * The launching side of a remote run: everything a provider needs before it
 * starts a machine, given the run and where its bytes go.
 *
 * - the agent artifact and the code bundle are uploaded to the store once,
 *   under their sha256 (`agents/<sha>.mjs`, `bundles/<sha>.tar.gz`): a second
 *   launch of unchanged code uploads nothing;
 * - the machine gets short-lived presigned GETs for them, a POST policy that
 *   may write only under the run's prefix (`runs/<run>/`), and, with NATS, a
 *   credential for this run's subjects only, minted from the account key the
 *   launching side holds;
 * - all of it goes into a host spec, and core builds the bootstrap around it.
 */

import type { NatsSettings } from "@runctl/control";
import {
  type ArtifactStore,
  bootstrapErrorKey,
  buildBootstrap,
  buildBundle,
  HOST_SPEC_VERSION,
  HostSpec,
  type HostSpecInput,
  type RunSpecInput,
  UserError,
} from "@runctl/core";
import { agentArtifact } from "./agent-artifact.ts";

export interface RemoteLaunchInput {
  hostId: string;
  provider: string;
  /** The run; `cwd` relative to the project root that is bundled. */
  run: RunSpecInput;
  /** The directory bundled as the run's code. */
  projectRoot: string;
  bundleCacheDir: string;
  store: ArtifactStore;
  nats?: {
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
  };
  node: { version: string; mirror: string };
  idle?: HostSpecInput["idle"];
  /** The quoted price of the machine: runs on it record their cost so far. */
  price?: HostSpecInput["price"];
  /** How long the URLs, the POST policy and the credential work; default 24 h. */
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
  runPrefix: string;
}

const DAY = 24 * 60 * 60;

export async function prepareRemoteLaunch(input: RemoteLaunchInput): Promise<RemoteLaunch> {
  const { store } = input;
  if (!store.presignGet || !store.presignPost) {
    throw new UserError(`The store ${store.url} cannot presign URLs, so a remote machine cannot reach it`, {
      code: "store_cannot_presign",
      hint: "Use an s3:// store (`[s3]` in .runctl.toml) for remote runs.",
    });
  }
  const ttl = input.ttlSeconds ?? DAY;
  let uploadedBytes = 0;
  const upload = async (key: string, file: string, bytes: number) => {
    if ((await store.head(key)) !== null) return;
    try {
      await store.putFile(key, file, { ifNoneMatch: "*" });
      uploadedBytes += bytes;
    } catch (error) {
      // Another launch uploaded the same content first: it is the same bytes.
      if ((error as { code?: unknown }).code !== "artifact_exists") throw error;
    }
  };

  const agent = agentArtifact();
  await upload(agent.key, agent.path, agent.bytes);

  const bundle = await buildBundle(input.projectRoot, { cacheDir: input.bundleCacheDir });
  const codeKey = `bundles/${bundle.archiveSha256}.tar.gz`;
  await upload(codeKey, bundle.archivePath, bundle.archiveBytes);

  const runId = input.run.runId;
  const runPrefix = `runs/${runId}`;
  const post = await store.presignPost(`${runPrefix}/`, { expiresInSeconds: ttl, maxBytes: 1024 ** 3 });
  let nats: HostSpecInput["run"]["nats"];
  if (input.nats?.launcher) {
    const { prepareControlStream } = await import("@runctl/control");
    await prepareControlStream({ ...input.nats.launcher, prefix: input.nats.prefix });
  }
  if (input.nats && input.nats.accountSeed === undefined) {
    nats = { url: input.nats.url, prefix: input.nats.prefix };
  } else if (input.nats?.accountSeed !== undefined) {
    const { mintRunCredentials } = await import("@runctl/control");
    const minted = await mintRunCredentials({
      account: input.nats.accountSeed,
      prefix: input.nats.prefix,
      runId,
      hostId: input.hostId,
      expiresInSeconds: ttl,
    });
    nats = {
      url: input.nats.url,
      prefix: input.nats.prefix,
      creds: minted.creds,
      credsExpiresAt: minted.expiresAt.toISOString(),
      inboxPrefix: minted.inboxPrefix,
    };
  }
  const hostSpec = HostSpec.parse({
    v: HOST_SPEC_VERSION,
    hostId: input.hostId,
    provider: input.provider,
    ...(input.idle ? { idle: input.idle } : {}),
    ...(input.price ? { price: input.price } : {}),
    run: {
      spec: input.run,
      code: { sha256: bundle.archiveSha256 },
      store: { post },
      ...(nats ? { nats } : {}),
    },
  } satisfies HostSpecInput);
  const bootstrap = buildBootstrap({
    node: input.node,
    agent: { url: await store.presignGet(agent.key, { expiresInSeconds: ttl }), sha256: agent.sha256 },
    code: { url: await store.presignGet(codeKey, { expiresInSeconds: ttl }), sha256: bundle.archiveSha256 },
    hostSpec,
    ...(input.home ? { home: input.home } : {}),
    report: { post, key: bootstrapErrorKey(post.keyPrefix) },
    ...(input.foreground ? { foreground: true } : {}),
  });
  return { bootstrap, hostSpec, uploadedBytes, runPrefix };
}
