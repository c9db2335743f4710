/**
 * The host spec: what a bootstrap hands the agent on a machine runctl started
 * (`node agent.mjs host host.json`). It names the machine, the host's own
 * grants (a NATS credential for its inbox and status, a POST policy for its
 * record under `hosts/<host>/`), the first run if there is one (how its run
 * directory reaches the store, a POST policy scoped to the run's prefix, and
 * where its telemetry and control go, NATS with a per-run credential), and
 * what to do once the machine has nothing to run.
 *
 * Everything in it is short-lived (the policy and the credential expire), so
 * it may travel as EC2 user-data or a pod argument. The agent never copies it
 * into a run directory.
 */
import { z } from "zod";
import { PresignedPost } from "./artifacts.ts";
import { Sha256HexSchema } from "./bundle/manifest.ts";
import { RunSpec } from "./run-spec.ts";

export const HOST_SPEC_VERSION = 1;

/** NATS as a remote agent reaches it: the credential is the text of a `.creds` file, for this run only. */
export const HostNatsSchema = z.strictObject({
  url: z.string().min(1),
  prefix: z
    .string()
    .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/)
    .default("runctl"),
  creds: z.string().min(1).optional(),
  /** When `creds` expires (ISO 8601): the agent asks for fresh ones before. */
  credsExpiresAt: z.iso.datetime({ offset: true }).optional(),
  /** Replies to this connection's requests come under it (a per-run credential may only subscribe there). */
  inboxPrefix: z.string().min(1).optional(),
});
export type HostNats = z.infer<typeof HostNatsSchema>;

/** A POST policy for one prefix of the store: every key under `post.keyPrefix` is its holder's. */
export const HostStoreGrantSchema = z.strictObject({ post: PresignedPost });
export type HostStoreGrant = z.infer<typeof HostStoreGrantSchema>;

/** What a machine costs, as its provider quotes it: a run's `cost_usd` is this times its hours. */
export const HostPriceSchema = z.strictObject({
  perHour: z.number().nonnegative(),
  market: z.enum(["on-demand", "spot"]),
});

/**
 * A checkpoint of an earlier run (`runctl <cloud> train --resume <run>`), fetched by the agent
 * before the ranks start and given to them as RUNCTL_RESUME_FROM: the earlier run's machine (a
 * reclaimed spot instance) may be gone, its store copy is not.
 */
export const HostResumeSchema = z.strictObject({
  /** The run the checkpoint comes from. */
  run: z.string().min(1),
  /** The file's path under that run's checkpoint directory: relative, plain segments. */
  file: z.string().regex(/^[A-Za-z0-9_+=@-][A-Za-z0-9_.+=@-]*(\/[A-Za-z0-9_+=@-][A-Za-z0-9_.+=@-]*)*$/),
  /** A presigned GET for it. */
  url: z.url(),
  bytes: z.number().int().nonnegative(),
  /** Also pass `--resume <path>` to the script. */
  passArg: z.boolean().default(false),
});
export type HostResume = z.output<typeof HostResumeSchema>;

/** One run as the machine receives it: from the bootstrap, or later through the inbox. */
export const HostRunSchema = z.strictObject({
  /**
   * The run spec. `cwd` is resolved against the code directory (the bundle the
   * bootstrap extracted), `runsDir` and `checkpointDir` against the agent's home.
   */
  spec: RunSpec,
  /** The code bundle the run's `cwd` is in (its sha256 names the directory under `<home>/code`). */
  code: z.strictObject({ url: z.url().optional(), sha256: Sha256HexSchema }).optional(),
  /** Where the run directory is synced: every key under the policy's prefix is the run's. */
  store: HostStoreGrantSchema.optional(),
  nats: HostNatsSchema.optional(),
  /** The machine's price when the run was sent (a live machine's, from its provider); over the host spec's. */
  price: HostPriceSchema.optional(),
  resume: HostResumeSchema.optional(),
});
export type HostRun = z.output<typeof HostRunSchema>;

export const HostSpec = z.strictObject({
  v: z.literal(HOST_SPEC_VERSION),
  /** The machine as its provider names it (instance id, pod id). */
  hostId: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/),
  provider: z.string().min(1),
  /** The first run; without one the machine waits on its inbox from boot (`runctl <cloud> create`). */
  run: HostRunSchema.optional(),
  /**
   * The host's own NATS connection: a credential that may take requests on its inbox, answer
   * them and publish its status, and nothing of any run (`mintHostCredentials`). Without it the
   * inbox listens with the first run's settings.
   */
  nats: HostNatsSchema.optional(),
  /** The host's POST policy, scoped to `hosts/<hostId>/`: its HostState and a failed bootstrap's report. */
  store: HostStoreGrantSchema.optional(),
  /**
   * Listen for further runs on `<prefix>.host.<host>.inbox` instead of going
   * idle after the first.
   */
  inbox: z.boolean().default(true),
  idle: z
    .strictObject({
      /** Shut the machine down after this many minutes without a run; 0 = right after the last one. */
      minutes: z.number().nonnegative().default(30),
      /** What the machine's shutdown means to its provider: an EBS instance stops, a spot one terminates. */
      action: z.enum(["stop", "terminate"]).default("stop"),
    })
    .prefault({}),
  /**
   * How the machine hears it is being reclaimed (docs/protocol.md, "Preemption"): EC2's
   * IMDSv2 `spot/instance-action` notice, a SIGTERM (a RunPod interruptible pod is stopped as
   * `docker stop` does it), or not at all. On a notice the run is asked to checkpoint, synced
   * once more and ends `preempted`.
   */
  interruptions: z.enum(["ec2-imds", "sigterm", "none"]).default("none"),
  /**
   * What the machine costs, as quoted at launch: the agent writes each run's `cost_usd` (this
   * price times the run's elapsed hours) into its meta.json at every store sync and at the end.
   */
  price: HostPriceSchema.optional(),
  /** The machine's own shutdown. */
  shutdownCommand: z.array(z.string().min(1)).min(1).default(["shutdown", "-h", "now"]),
  /** Telemetry heartbeats; the store copy's meta.json beats every 10 s regardless. */
  heartbeatMs: z.number().int().min(100).default(5_000),
});
export type HostSpec = z.output<typeof HostSpec>;
export type HostSpecInput = z.input<typeof HostSpec>;

/**
 * A message on the host's inbox: one more run for a live machine, and, optionally, fresh host
 * grants (the launching side mints them with each run, so a machine that keeps taking runs keeps
 * a working inbox and store record past its first credential's expiry).
 */
export const HostInboxMessage = z.strictObject({
  v: z.literal(HOST_SPEC_VERSION),
  run: HostRunSchema,
  host: z
    .strictObject({ nats: HostNatsSchema.optional(), store: HostStoreGrantSchema.optional() })
    .optional(),
});
export type HostInboxMessage = z.output<typeof HostInboxMessage>;
export type HostInboxMessageInput = z.input<typeof HostInboxMessage>;

/** The agent's answer to an inbox request. */
export const HostInboxReply = z.union([
  z.strictObject({
    accepted: z.literal(true),
    run: z.string().min(1),
    /** Runs ahead of it on the machine (0: it starts now). */
    queued: z.number().int().nonnegative(),
  }),
  z.strictObject({
    accepted: z.literal(false),
    error: z.strictObject({ code: z.string().min(1), message: z.string() }),
  }),
]);
export type HostInboxReply = z.infer<typeof HostInboxReply>;

/**
 * What a machine's agent last said about itself, kept in the store at `hostStateKey(hostId)`:
 * how `runctl <cloud> monitor <machine>` finds the run a machine is on (or last ran) without
 * NATS and without tags it cannot change (a pod's labels are fixed at creation).
 */
export const HostState = z.strictObject({
  v: z.literal(HOST_SPEC_VERSION),
  hostId: z.string().min(1),
  state: z.enum(["idle", "running", "shutting_down"]),
  /** The run now running, or the last one. */
  run: z.string().min(1).optional(),
  /** Every run this machine took, oldest first. */
  runs: z.array(z.string().min(1)).default([]),
  at: z.iso.datetime({ offset: true }),
});
export type HostState = z.output<typeof HostState>;

/** The store prefix a machine's host grant covers (under the store's prefix), with a trailing slash. */
export function hostStorePrefix(hostId: string): string {
  return `hosts/${hostId}/`;
}

/** The store key of a machine's HostState (under the store's prefix). */
export function hostStateKey(hostId: string): string {
  return `${hostStorePrefix(hostId)}state.json`;
}
