/**
 * Following a run on another machine (`runctl logs -f`, `runctl <cloud> monitor -f`): what the
 * store copy holds (when there is one), then the agent's telemetry over NATS from that offset
 * on, until the agent says the run ended. Bytes travel by offset, so nothing is printed twice; a
 * stretch that went by while this side was disconnected is fetched from the store when it can
 * be, else named. Without NATS, the store copy is polled. While it follows, this side may also
 * answer the run's credential renewals (it holds the account seed the run's grants came from):
 * a run followed for longer than its grants then keeps NATS and the store.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { NatsSettings } from "@runctl/control";
import {
  type ArtifactStore,
  type NatsConfig,
  type PresignedPost,
  type RunStatus,
  TERMINAL_STATUSES,
} from "@runctl/core";
import type { RunSource } from "@runctl/tracker";

/** How long a gap in live output waits for the store copy mid-run, and at the run's end. */
const GAP_WAIT_MS = 10_000;
const FINAL_GAP_WAIT_MS = 60_000;
const GAP_POLL_MS = 500;
/** While telemetry is quiet, how often the store copy is asked whether the run ended. */
const STORE_LOOK_MS = 5_000;

/** How a follow ended: the run's terminal status, or `lost` when the watch said its machine is gone. */
export type FollowEnd = RunStatus | "lost";

/** Answering the run's renewal requests while following (docs/protocol.md, "Renewal"). */
export interface FollowRenewal {
  /** The account seed (`SA…`) the run's credentials were minted from. */
  accountSeed: string;
  /** The machine the run is on, from a record this side trusts: the renewed credential keeps its subjects. */
  hostId?: string;
  /** Lifetime of each renewed credential; default 24 h. */
  expiresInSeconds?: number;
  /** A fresh POST policy for the run's store prefix. */
  presignPost?: () => Promise<PresignedPost>;
  onRenewal?: (expiresAt: Date) => void;
}

export interface RemoteFollowOptions {
  runId: string;
  settings: NatsSettings;
  /** The store copy of the run, read first and used to fill gaps. */
  source?: RunSource | undefined;
  write: (bytes: Uint8Array) => void;
  note: (message: string) => void;
  /** How long without any telemetry before saying so (the run may be lost). */
  quietMs?: number;
  /** Aborted (its machine is gone): the follow ends with `lost`. */
  signal?: AbortSignal;
  renew?: FollowRenewal;
}

export async function followRemote(options: RemoteFollowOptions): Promise<FollowEnd> {
  const { connectNats, followTelemetry, openServerWarning } = await import("@runctl/control");
  const { runId, source, write, note } = options;
  const nc = await connectNats(options.settings, { waitForServerMs: 10_000 });
  const warning = openServerWarning(nc);
  if (warning) note(`Warning: ${warning}`);
  const prefix = options.settings.prefix ?? "runctl";
  let printed = 0;
  let ended: ((status: FollowEnd) => void) | undefined;
  const done = new Promise<FollowEnd>((resolve) => {
    ended = resolve;
  });
  const abort = () => ended?.("lost");
  options.signal?.addEventListener("abort", abort, { once: true });
  if (options.signal?.aborted) abort();
  const renewal = options.renew ? await serveRenewals(nc, prefix, runId, options.renew, note) : undefined;
  let lastHeard = Date.now();
  let fill = Promise.resolve();

  // Subscribe before reading the store, so no byte falls between the two.
  const follower = followTelemetry(nc, prefix, runId, {
    onBytes: (file, offset, data) => {
      lastHeard = Date.now();
      if (file !== "output.log") return;
      fill = fill.then(async () => {
        if (offset > printed) await fillGap(offset, GAP_WAIT_MS);
        const skip = Math.max(0, printed - offset);
        if (skip < data.byteLength) {
          write(data.subarray(skip));
          printed = offset + data.byteLength;
        }
      });
    },
    onStatus: (status) => {
      lastHeard = Date.now();
      if (!TERMINAL_STATUSES.has(status.status)) return;
      const final = status.sizes?.["output.log"];
      void fill.then(async () => {
        if (final !== undefined && final > printed) await fillGap(final, FINAL_GAP_WAIT_MS);
        ended?.(status.status);
      });
    },
    onHeartbeat: () => {
      lastHeard = Date.now();
    },
  });

  // The server has the subscriptions once a flush returns: nothing published from now on is missed.
  await nc.flush();
  note(`runctl: following ${runId} over NATS${source ? ` (and its store copy ${source.location})` : ""}`);

  /**
   * Prints [printed, to) from the store copy. The store copy lags telemetry by up to a sync
   * interval (a couple of seconds), so a gap is waited for: a while mid-run (live output pauses
   * meanwhile; nothing is dropped), longer at the run's end, when its last sync may still be
   * under way. What the store still lacks then is named, not printed.
   */
  async function fillGap(to: number, waitMs: number): Promise<void> {
    const read = () =>
      source ? source.readFile(runId, "output.log").catch(() => null) : Promise.resolve(null);
    const deadline = Date.now() + waitMs;
    let stored = await read();
    while (source && (stored?.byteLength ?? 0) < to && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, GAP_POLL_MS));
      stored = await read();
    }
    if (stored && stored.byteLength > printed) {
      const part = stored.subarray(printed, Math.min(to, stored.byteLength));
      write(part);
      printed += part.byteLength;
    }
    if (printed < to) {
      note(
        `runctl: ${to - printed} bytes of output went by unseen; they should be in the run's store copy later`,
      );
      printed = to;
    }
  }

  if (source) {
    // meta.json first: output synced before it said the run ended is then complete.
    const meta = await source.readFile(runId, "meta.json").catch(() => null);
    const stored = await source.readFile(runId, "output.log").catch(() => null);
    fill = fill.then(() => {
      if (stored && stored.byteLength > printed) {
        write(stored.subarray(printed));
        printed = stored.byteLength;
      }
    });
    const status = meta ? statusOf(meta) : undefined;
    if (status && TERMINAL_STATUSES.has(status)) ended?.(status);
  }

  const quietMs = options.quietMs ?? 60_000;
  let warned = false;
  let lastLook = 0;
  const watch = setInterval(() => {
    if (Date.now() - lastHeard <= quietMs) return;
    if (!warned) {
      warned = true;
      note(`runctl: no telemetry from ${runId} for ${Math.round(quietMs / 1000)} s; its machine may be gone`);
    }
    // An end the agent could not announce (NATS was down when the run ended) is in the store copy.
    if (!source || Date.now() - lastLook < STORE_LOOK_MS) return;
    lastLook = Date.now();
    void source
      .readFile(runId, "meta.json")
      .then(async (meta) => {
        const status = meta ? statusOf(meta) : undefined;
        if (!status || !TERMINAL_STATUSES.has(status)) return;
        const size = (await source.readFile(runId, "output.log"))?.byteLength ?? 0;
        void fill.then(async () => {
          if (size > printed) await fillGap(size, 0);
          ended?.(status);
        });
      })
      .catch(() => undefined);
  }, 1_000);
  try {
    const status = await done;
    await fill;
    return status;
  } finally {
    clearInterval(watch);
    options.signal?.removeEventListener("abort", abort);
    follower.stop();
    await renewal?.stop();
    await nc.close().catch(() => undefined);
  }
}

async function serveRenewals(
  nc: NatsConnection,
  prefix: string,
  runId: string,
  renew: FollowRenewal,
  note: (message: string) => void,
) {
  const { serveCredentialRenewals } = await import("@runctl/control");
  const service = serveCredentialRenewals({
    connection: nc,
    account: renew.accountSeed,
    prefix,
    runId,
    ...(renew.hostId !== undefined ? { hostId: renew.hostId } : {}),
    expiresInSeconds: renew.expiresInSeconds ?? 24 * 60 * 60,
    ...(renew.presignPost ? { presignPost: renew.presignPost } : {}),
    onRenewal: (minted) => renew.onRenewal?.(minted.expiresAt),
    onError: (error) => note(`runctl: a renewal for ${runId} failed: ${(error as Error).message}`),
  });
  await service.ready;
  return service;
}

function statusOf(bytes: Uint8Array): RunStatus | undefined {
  try {
    const meta = JSON.parse(Buffer.from(bytes).toString("utf8")) as { status?: RunStatus };
    return meta.status;
  } catch {
    return undefined;
  }
}

/**
 * Without NATS: the store copy, read again every `pollMs` (it is synced every
 * couple of seconds), until its meta.json says the run ended. Slower than
 * telemetry, and a machine that died leaves it `lost` by its heartbeat.
 */
export async function followStore(options: {
  runId: string;
  source: RunSource;
  write: (bytes: Uint8Array) => void;
  pollMs?: number;
  /** Aborted (its machine is gone): the follow ends with `lost` after one last read. */
  signal?: AbortSignal;
}): Promise<FollowEnd> {
  const { runId, source, write } = options;
  const { sourceMeta, withEffectiveStatus } = await import("@runctl/tracker");
  let printed = 0;
  for (;;) {
    // meta.json first: output synced before it said "ended" is then complete.
    // A run just launched has no store copy yet: it is waited for.
    const meta = await sourceMeta(source, runId).then(withEffectiveStatus, (error: unknown) => {
      if ((error as { code?: unknown }).code === "run_not_found") return undefined;
      throw error;
    });
    const stored = await source.readFile(runId, "output.log");
    if (stored && stored.byteLength > printed) {
      write(stored.subarray(printed));
      printed = stored.byteLength;
    }
    if (meta && TERMINAL_STATUSES.has(meta.status)) return meta.status;
    if (options.signal?.aborted) return "lost";
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 2_000));
  }
}

/**
 * Renewals a follow serves, from `[nats]`: undefined without an account seed (the run's machine
 * then has no credential to renew). Policies come from `store` when it presigns them.
 */
export async function followRenewalFrom(
  config: NatsConfig,
  store: ArtifactStore | undefined,
  runId: string,
  note: (message: string) => void,
  hostId?: string,
): Promise<FollowRenewal | undefined> {
  if (config.account_seed === undefined && config.account_seed_file === undefined) return undefined;
  const [{ loadAccountSeed }, { hostOfRun }] = await Promise.all([
    import("@runctl/control"),
    import("./machine-monitor.ts"),
  ]);
  const presign = store?.presignPost?.bind(store);
  const host = hostId ?? (store ? await hostOfRun(store, runId).catch(() => undefined) : undefined);
  return {
    accountSeed: await loadAccountSeed(config),
    ...(host !== undefined ? { hostId: host } : {}),
    ...(presign
      ? {
          presignPost: () =>
            presign(`runs/${runId}/`, { expiresInSeconds: 24 * 60 * 60, maxBytes: 1024 ** 3 }),
        }
      : {}),
    onRenewal: (expiresAt) => note(`runctl: renewed ${runId}'s credentials until ${expiresAt.toISOString()}`),
  };
}
