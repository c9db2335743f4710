/**
 * `runctl logs -f` for a run on another machine: what the store copy holds
 * (when there is one), then the agent's telemetry over NATS from that offset
 * on, until the agent says the run ended. Bytes travel by offset, so nothing
 * is printed twice; a stretch that went by while this side was disconnected
 * is fetched from the store when it can be, else named.
 */
import type { NatsSettings } from "@runctl/control";
import { type RunStatus, TERMINAL_STATUSES } from "@runctl/core";
import type { RunSource } from "@runctl/tracker";

export interface RemoteFollowOptions {
  runId: string;
  settings: NatsSettings;
  /** The store copy of the run, read first and used to fill gaps. */
  source?: RunSource | undefined;
  write: (bytes: Uint8Array) => void;
  note: (message: string) => void;
  /** How long without any telemetry before saying so (the run may be lost). */
  quietMs?: number;
}

export async function followRemote(options: RemoteFollowOptions): Promise<RunStatus> {
  const { connectNats, followTelemetry, openServerWarning } = await import("@runctl/control");
  const { runId, source, write, note } = options;
  const nc = await connectNats(options.settings, { waitForServerMs: 10_000 });
  const warning = openServerWarning(nc);
  if (warning) note(`Warning: ${warning}`);
  const prefix = options.settings.prefix ?? "runctl";
  let printed = 0;
  let ended: ((status: RunStatus) => void) | undefined;
  const done = new Promise<RunStatus>((resolve) => {
    ended = resolve;
  });
  let lastHeard = Date.now();
  let fill = Promise.resolve();

  // Subscribe before reading the store, so no byte falls between the two.
  const follower = followTelemetry(nc, prefix, runId, {
    onBytes: (file, offset, data) => {
      lastHeard = Date.now();
      if (file !== "output.log") return;
      fill = fill.then(async () => {
        if (offset > printed) await fillGap(offset);
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
        if (final !== undefined && final > printed) await fillGap(final);
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

  async function fillGap(to: number): Promise<void> {
    const stored = source ? await source.readFile(runId, "output.log").catch(() => null) : null;
    if (stored && stored.byteLength > printed) {
      const part = stored.subarray(printed, Math.min(to, stored.byteLength));
      write(part);
      printed += part.byteLength;
    }
    if (printed < to) {
      note(
        `runctl: ${to - printed} bytes of output went by while disconnected; they are in the run's store copy`,
      );
      printed = to;
    }
  }

  if (source) {
    const stored = await source.readFile(runId, "output.log").catch(() => null);
    fill = fill.then(() => {
      if (stored && stored.byteLength > printed) {
        write(stored.subarray(printed));
        printed = stored.byteLength;
      }
    });
    const meta = await source.readFile(runId, "meta.json").catch(() => null);
    const status = meta ? statusOf(meta) : undefined;
    if (status && TERMINAL_STATUSES.has(status)) ended?.(status);
  }

  const quietMs = options.quietMs ?? 60_000;
  let warned = false;
  const watch = setInterval(() => {
    if (!warned && Date.now() - lastHeard > quietMs) {
      warned = true;
      note(`runctl: no telemetry from ${runId} for ${Math.round(quietMs / 1000)} s; its machine may be gone`);
    }
  }, 1_000);
  try {
    const status = await done;
    await fill;
    return status;
  } finally {
    clearInterval(watch);
    follower.stop();
    await nc.close().catch(() => undefined);
  }
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
}): Promise<RunStatus> {
  const { runId, source, write } = options;
  const { sourceMeta, withEffectiveStatus } = await import("@runctl/tracker");
  let printed = 0;
  for (;;) {
    // meta.json first: output synced before it said "ended" is then complete.
    const meta = withEffectiveStatus(await sourceMeta(source, runId));
    const stored = await source.readFile(runId, "output.log");
    if (stored && stored.byteLength > printed) {
      write(stored.subarray(printed));
      printed = stored.byteLength;
    }
    if (TERMINAL_STATUSES.has(meta.status)) return meta.status;
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 2_000));
  }
}
