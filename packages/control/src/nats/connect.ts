/**
 * Connecting to NATS from settings: auth (creds file, token, user/password),
 * TLS files, and a reconnect policy that never gives up and backs off (from
 * 250 ms to 5 s, with jitter), so a supervisor or trainer outlives a server
 * restart. nats.js drops what is published while it is disconnected (its
 * outbound buffer is reset on every dial), so NatsChannel holds its publishes
 * until the connection is back (connection-state.ts).
 */
import { readFile } from "node:fs/promises";
import {
  connect,
  credsAuthenticator,
  type NatsConnection,
  type NodeConnectionOptions,
} from "@nats-io/transport-node";
import { ConfigError, ProviderError } from "@runctl/core";
import { type NatsContextOptions, type NatsSettings, resolveNatsSettings } from "./settings.ts";

export const DEFAULT_NATS_URL = "nats://127.0.0.1:4222";

/**
 * Reconnect backoff: the wait before the next dial is half the time spent
 * disconnected so far, between 250 ms and 5 s, plus up to 20% jitter (dials at
 * about 0, 0.25, 0.5, 0.75, 1.1, 1.7, 2.5, 3.8, 5.7 s …, then every 5 s).
 */
export const RECONNECT_BACKOFF = Object.freeze({ firstMs: 250, maxMs: 5_000, jitter: 0.2 });

export interface ReconnectBackoff {
  /** The wait before the next dial (what nats.js calls `reconnectDelayHandler`). */
  next(): number;
  /** Back to the first delay, after a successful (re)connect. */
  reset(): void;
}

/**
 * nats.js asks for the delay on every turn of its dial loop, including turns
 * that only sleep, so the delay is a function of the time since the first
 * ask, not of the number of asks.
 */
export function reconnectBackoff(
  policy = RECONNECT_BACKOFF,
  random: () => number = Math.random,
  now: () => number = Date.now,
): ReconnectBackoff {
  let since: number | undefined;
  return {
    next() {
      const t = now();
      since ??= t;
      const base = Math.min(policy.maxMs, Math.max(policy.firstMs, (t - since) / 2));
      return Math.round(base * (1 + policy.jitter * random()));
    },
    reset() {
      since = undefined;
    },
  };
}

/**
 * nats.js connect options for `settings` (context resolved, creds file read).
 * `backoff` receives the reconnect delays; connectNats resets it on reconnect.
 */
export async function natsConnectOptions(
  settings: NatsSettings,
  options: NatsContextOptions & { backoff?: ReconnectBackoff } = {},
): Promise<NodeConnectionOptions> {
  const s = resolveNatsSettings(settings, options);
  const servers = (s.url ?? DEFAULT_NATS_URL)
    .split(",")
    .map((u) => u.trim())
    .filter((u) => u !== "");
  const backoff = options.backoff ?? reconnectBackoff();
  const opts: NodeConnectionOptions = {
    servers,
    name: s.name ?? "runctl",
    maxReconnectAttempts: -1,
    reconnectTimeWait: RECONNECT_BACKOFF.firstMs,
    reconnectDelayHandler: () => backoff.next(),
    // A dead peer that keeps its TCP connection is noticed within about a minute.
    pingInterval: 20_000,
    maxPingOut: 3,
  };
  if (s.credsFile !== undefined) {
    let creds: Uint8Array;
    try {
      creds = await readFile(s.credsFile);
    } catch (error) {
      throw new ConfigError(`cannot read the NATS creds file ${s.credsFile}: ${String(error)}`, {
        code: "nats_creds_unreadable",
        hint: "Point nats.creds (or the context's creds) at the .creds file `nsc generate creds` wrote.",
      });
    }
    opts.authenticator = credsAuthenticator(creds);
  }
  if (s.token !== undefined) opts.token = s.token;
  if (s.user !== undefined) {
    opts.user = s.user;
    opts.pass = s.pass ?? "";
  }
  if (s.inboxPrefix !== undefined) opts.inboxPrefix = s.inboxPrefix;
  const wantsTls = servers.some((u) => /^tls:\/\//i.test(u));
  if (s.tls !== undefined || wantsTls) {
    const tls: NonNullable<NodeConnectionOptions["tls"]> = {};
    if (s.tls?.ca !== undefined) tls.caFile = s.tls.ca;
    if (s.tls?.cert !== undefined) tls.certFile = s.tls.cert;
    if (s.tls?.key !== undefined) tls.keyFile = s.tls.key;
    if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
      throw new ConfigError("a TLS client certificate needs its key, and a key its certificate", {
        code: "nats_tls_invalid",
        hint: "Set both nats.tls_cert and nats.tls_key, or neither.",
      });
    }
    opts.tls = tls;
  }
  return opts;
}

export interface ConnectNatsOptions extends NatsContextOptions {
  /**
   * Keep trying a server that is not up yet for this long (ms) before failing;
   * a command published "during an outage" then goes out once it is back.
   */
  waitForServerMs?: number;
}

/**
 * Connects with `natsConnectOptions(settings)`; reconnects forever, backing off.
 * A server that cannot be reached becomes a ProviderError naming the URL.
 */
export async function connectNats(
  settings: NatsSettings,
  options: ConnectNatsOptions = {},
): Promise<NatsConnection> {
  const backoff = reconnectBackoff();
  const connectOptions = await natsConnectOptions(settings, { ...options, backoff });
  const deadline = Date.now() + (options.waitForServerMs ?? 0);
  let nc: NatsConnection;
  for (;;) {
    try {
      nc = await connect(connectOptions);
      break;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (Date.now() < deadline && /refused|timeout|ENOTFOUND|EAI_AGAIN/i.test(message)) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        continue;
      }
      throw new ProviderError(`Cannot reach NATS at ${settings.url ?? "the configured server"}: ${message}`, {
        code: "nats_unreachable",
        hint: "Start the server (`nats-server -js`), or fix --nats / `nats.url` / RUNCTL_NATS_URL.",
        cause: error,
      });
    }
  }
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "reconnect") backoff.reset();
    }
  })().catch(() => {});
  return nc;
}
