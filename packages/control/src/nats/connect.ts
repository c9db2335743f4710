/**
 * Connecting to NATS from settings: auth (creds file, token, user/password),
 * TLS files, and a reconnect policy that never gives up and backs off (from
 * 250 ms to 5 s, with jitter), so a supervisor or trainer outlives a server
 * restart. nats.js drops what is published while it is disconnected (its
 * outbound buffer is reset on every dial), so NatsChannel holds its publishes
 * until the connection is back (connection-state.ts).
 */
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import {
  connect,
  credsAuthenticator,
  type NatsConnection,
  type NodeConnectionOptions,
} from "@nats-io/transport-node";
import { ConfigError, ProviderError, redactUrlCredentials } from "@runctl/core";
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
 * nats.js connect options for `settings` (context resolved, creds file read,
 * and read again at each reconnect).
 * `backoff` receives the reconnect delays; connectNats resets it on reconnect.
 */
export async function natsConnectOptions(
  settings: NatsSettings,
  options: NatsContextOptions & { backoff?: ReconnectBackoff } = {},
): Promise<NodeConnectionOptions> {
  const s = resolveNatsSettings(settings, options);
  // nats.js ignores credentials in a server URL; take them out and use them as NATS tools do.
  const { servers, user, pass, token } = splitUrlCredentials(s.url ?? DEFAULT_NATS_URL);
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
  if (s.credsText !== undefined) {
    opts.authenticator = credsAuthenticator(new TextEncoder().encode(s.credsText));
  } else if (s.credsFile !== undefined) {
    let creds: Uint8Array;
    try {
      creds = await readFile(s.credsFile);
    } catch (error) {
      throw new ConfigError(`cannot read the NATS creds file ${s.credsFile}: ${String(error)}`, {
        code: "nats_creds_unreadable",
        hint: "Point nats.creds (or the context's creds) at the .creds file `nsc generate creds` wrote.",
      });
    }
    // Read again at every reconnect: a renewed file (a run's credentials,
    // renewal.ts) takes effect the next time the connection is made.
    const file = s.credsFile;
    // A credential that expired or was refused may be renewed in the file (a
    // run's credentials are): keep dialling instead of closing.
    opts.ignoreAuthErrorAbort = true;
    opts.authenticator = credsAuthenticator(() => {
      try {
        creds = readFileSync(file);
      } catch {
        // keep the last readable credentials; the server says if they no longer work
      }
      return creds;
    });
  }
  // Explicit settings win over credentials in the URL.
  const explicit = s.token !== undefined || s.user !== undefined;
  if (s.token !== undefined) opts.token = s.token;
  else if (!explicit && token !== undefined) opts.token = token;
  if (s.user !== undefined) {
    opts.user = s.user;
    opts.pass = s.pass ?? "";
  } else if (!explicit && user !== undefined) {
    opts.user = user;
    opts.pass = pass ?? "";
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
   * The `.creds` text to present at every (re)connect, read each time: a
   * run's renewed credentials (renewal.ts) take effect at the next reconnect
   * (`nc.reconnect()`). Wins over the settings' creds.
   */
  credentials?: () => string;
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
  const current = options.credentials;
  if (current !== undefined) {
    connectOptions.ignoreAuthErrorAbort = true;
    connectOptions.authenticator = credsAuthenticator(() => new TextEncoder().encode(current()));
  }
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
      const where = settings.url === undefined ? "the configured server" : redactUrlCredentials(settings.url);
      if (isAuthRefusal(error)) {
        throw new ProviderError(
          `NATS at ${where} refused the credentials: ${redactUrlCredentials(message)}`,
          {
            code: "nats_auth_refused",
            hint: "Check nats.creds / nats.user and nats.password / nats.token (or the context's); a run's minted credentials expire (`runctl nats creds` mints new ones).",
            cause: error,
          },
        );
      }
      throw new ProviderError(`Cannot reach NATS at ${where}: ${redactUrlCredentials(message)}`, {
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

/** The server said no to the credentials (wrong, expired, revoked), as opposed to not answering. */
function isAuthRefusal(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (
      e.name === "AuthorizationError" ||
      /authorization violation|authentication expired/i.test(e.message)
    ) {
      return true;
    }
  }
  return false;
}

/**
 * Server URLs without their userinfo, and the credentials it held:
 * `nats://user:pass@host` is a user and password, `nats://token@host` a token
 * (percent-decoded, as in any URL). Several URLs must agree on them.
 */
export function splitUrlCredentials(urls: string): {
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
} {
  const servers: string[] = [];
  let found: { user?: string; pass?: string; token?: string } | undefined;
  let foundKey: string | undefined;
  for (const raw of urls.split(",")) {
    const url = raw.trim();
    if (url === "") continue;
    const match = /^([a-z][a-z0-9+.-]*:\/\/)([^@/]*)@(.*)$/i.exec(url);
    if (match === null) {
      servers.push(url);
      continue;
    }
    const [, scheme, userinfo, rest] = match as unknown as [string, string, string, string];
    servers.push(`${scheme}${rest}`);
    const colon = userinfo.indexOf(":");
    const creds =
      colon >= 0
        ? {
            user: decodeURIComponent(userinfo.slice(0, colon)),
            pass: decodeURIComponent(userinfo.slice(colon + 1)),
          }
        : { token: decodeURIComponent(userinfo) };
    const key = JSON.stringify(creds);
    if (foundKey !== undefined && foundKey !== key) {
      throw new ConfigError("the NATS server URLs carry different credentials", {
        code: "nats_url_credentials",
        hint: "Put the credentials in one place: nats.user and nats.password (or nats.token), not in each URL.",
      });
    }
    found = creds;
    foundKey = key;
  }
  return { servers, ...found };
}

/** `url` (or a comma-separated list) with any userinfo removed: what meta.json records. */
export function natsUrlWithoutCredentials(url: string): string {
  return splitUrlCredentials(url).servers.join(",");
}

/**
 * A warning when the server this connection reached lets clients in without
 * credentials (its INFO has no `auth_required`): then anyone who can reach it
 * can read every run's commands and steer any run (docs/protocol.md,
 * "Security"). Undefined when the server requires authentication.
 */
export function openServerWarning(nc: NatsConnection): string | undefined {
  if (nc.info?.auth_required === true) return undefined;
  const where = nc.getServer();
  return (
    `the NATS server ${where} accepts clients without credentials: anyone who can reach it can steer any run on it. ` +
    'Require authentication on it (docs/protocol.md, "Security").'
  );
}

/**
 * Connects once (no waiting for a server that is down) to tell whether the
 * server requires authentication; the warning of openServerWarning, or
 * undefined. Failures to connect are left to the caller's real connection.
 */
export async function checkOpenServer(settings: NatsSettings): Promise<string | undefined> {
  let nc: NatsConnection;
  try {
    nc = await connect({ ...(await natsConnectOptions(settings)), maxReconnectAttempts: 0, timeout: 2_000 });
  } catch {
    return undefined;
  }
  try {
    return openServerWarning(nc);
  } finally {
    await nc.close().catch(() => undefined);
  }
}
