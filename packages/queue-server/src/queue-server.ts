/**
 * `runctl server`: the job queue over HTTP (docs/job-queue.md), on node:http
 * alone. One QueueStore holds the state; a timer takes back expired leases;
 * every request is authenticated (when a token is set), routed through the
 * table in queue-routes.ts, and answered with JSON or an error body. A
 * handler's bug answers 500 and is logged; it never stops the server.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { mkdirSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { isIP } from "node:net";
import { join } from "node:path";
import { isRunctlError, JSON_TOO_DEEP, MAX_JSON_DEPTH, UserError } from "@runctl/core";
import { BodyAbortedError, DISCARD_LIMIT_BYTES, declaredLength, discardRest } from "./http-body.ts";
import { HttpError, sendError, sendJson } from "./http-response.ts";
import { matchRoute, RESPONDED, type ServerContext } from "./queue-routes.ts";
import { QueueStore } from "./queue-store.ts";

export interface QueueServerOptions {
  dataDir: string;
  /** Default 127.0.0.1. Anything beyond loopback requires `token`. */
  host?: string;
  /** Default 0: any free port (read it back from `port`/`url`). */
  port?: number;
  /** Every /api/v1 request must send `Authorization: Bearer <token>`. */
  token?: string;
  /** How often expired leases are taken back; default 1000 ms. */
  leaseCheckIntervalMs?: number;
  /** JSON request bodies; default 1 MiB. */
  maxBodyBytes?: number;
  /** One file upload request; default 64 MiB. */
  maxUploadBytes?: number;
  /** Where errors and lease expiries are reported; default stderr. */
  log?: (line: string) => void;
  /** The store's clock (tests move it instead of sleeping). */
  now?: () => Date;
  /** Workers are offline after this long without a claim or heartbeat; default 2 × their lease. */
  offlineAfterMs?: number;
}

export interface QueueServer {
  /** `http://host:port`, without a trailing slash. */
  url: string;
  host: string;
  port: number;
  store: QueueStore;
  close(): Promise<void>;
}

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
export const DEFAULT_MAX_UPLOAD_BYTES = 64 * 1024 * 1024;

/** 127.0.0.0/8, ::1 (also IPv4-mapped) and `localhost`: addresses only this machine reaches. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (h === "localhost" || h === "::1") return true;
  const v4 = h.startsWith("::ffff:") ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith("127.");
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/**
 * Bearer-token check in constant time: both sides are hashed first so
 * timingSafeEqual compares equal lengths and the token's length leaks nothing.
 */
function tokenChecker(token: string): (header: string | undefined) => boolean {
  const expected = sha256(token);
  return (header) => {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? "");
    return m !== null && timingSafeEqual(sha256(m[1] as string), expected);
  };
}

const UNAUTHORIZED = new HttpError(401, "unauthorized", "Missing or wrong bearer token", {
  hint: "Send `Authorization: Bearer <token>` with the server's token (`runctl` reads it from --token / RUNCTL_SERVER_TOKEN / [server] token).",
  headers: { "WWW-Authenticate": 'Bearer realm="runctl"' },
});

export async function startQueueServer(options: QueueServerOptions): Promise<QueueServer> {
  const host = options.host ?? "127.0.0.1";
  const token = options.token === "" ? undefined : options.token;
  if (token === undefined && !isLoopbackHost(host)) {
    throw new UserError(`Refusing to listen on ${host} without a token`, {
      code: "token_required",
      hint: "Anyone who can reach the port could run commands on your workers. Pass --token (or RUNCTL_SERVER_TOKEN), or listen on 127.0.0.1.",
      details: { host },
    });
  }
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const storeOptions = {
    ...(options.now ? { now: options.now } : {}),
    ...(options.offlineAfterMs === undefined ? {} : { offlineAfterMs: options.offlineAfterMs }),
  };
  const store = new QueueStore(options.dataDir, storeOptions);
  const ctx: ServerContext = {
    store,
    runsDir: join(options.dataDir, "runs"),
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    maxUploadBytes: options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES,
  };
  mkdirSync(ctx.runsDir, { recursive: true });
  // Workers that kept running while the server was down get one lease period to heartbeat again.
  store.extendLeasesAtStartup();
  for (const job of store.repairTooDeepConfigs()) {
    log(
      `job ${job.id}: its stored config was nested more than ${MAX_JSON_DEPTH} levels deep and was dropped (job is ${job.status})`,
    );
  }

  const authorized = token === undefined ? undefined : tokenChecker(token);
  const server = createServer((req, res) => {
    void handleRequest(req, res, ctx, authorized, log);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    store.close();
    throw error;
  }

  const timer = setInterval(() => {
    try {
      for (const lost of store.requeueExpired()) {
        log(`job ${lost.job_id} attempt ${lost.attempt}: lease expired, job is now ${lost.status}`);
      }
    } catch (error) {
      log(`lease check failed: ${(error as Error).stack ?? String(error)}`);
    }
  }, options.leaseCheckIntervalMs ?? 1000);
  timer.unref();

  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : (options.port ?? 0);
  const urlHost = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}`,
    host,
    port,
    store,
    close() {
      closing ??= new Promise<void>((resolve) => {
        clearInterval(timer);
        server.close(() => {
          store.close();
          resolve();
        });
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

async function handleRequest(
  req: IncomingMessage,
  res: ServerResponse,
  ctx: ServerContext,
  authorized: ((header: string | undefined) => boolean) | undefined,
  log: (line: string) => void,
): Promise<void> {
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  const path = q < 0 ? url : url.slice(0, q);
  const query = new URLSearchParams(q < 0 ? "" : url.slice(q + 1));
  try {
    if (authorized && path !== "/health" && !authorized(req.headers.authorization)) throw UNAUTHORIZED;
    const { match, allowed } = matchRoute(req.method ?? "GET", path);
    if (!match) {
      if (allowed.length > 0) {
        throw new HttpError(405, "method_not_allowed", `${req.method} is not allowed on ${path}`, {
          hint: `Use ${allowed.join(" or ")}.`,
          headers: { Allow: allowed.join(", ") },
        });
      }
      throw new HttpError(404, "not_found", `No route for ${req.method} ${path}`, {
        hint: "The API lives under /api/v1 (docs/job-queue.md).",
      });
    }
    const body = await match.route.handle({ req, res, params: match.params, query, server: ctx });
    if (body !== RESPONDED) sendJson(res, 200, body);
  } catch (error) {
    answerError(req, res, error, log);
  } finally {
    // Whatever the handler left unread is dropped (bounded), so a keep-alive client sees its answer.
    discardRest(req);
  }
}

/** The store's UserErrors that are the caller's fault, by HTTP status. */
const STORE_REFUSALS: Readonly<Record<string, number>> = {
  invalid_body: 422,
  [JSON_TOO_DEEP]: 422,
  idempotency_conflict: 409,
};

function answerError(
  req: IncomingMessage,
  res: ServerResponse,
  error: unknown,
  log: (line: string) => void,
): void {
  if (error instanceof BodyAbortedError) {
    res.destroy();
    return;
  }
  let httpError: HttpError;
  if (error instanceof HttpError) {
    httpError = error;
  } else if (isRunctlError(error) && STORE_REFUSALS[error.code] !== undefined) {
    httpError = new HttpError(
      STORE_REFUSALS[error.code] as number,
      error.code,
      error.message,
      error.hint === undefined ? {} : { hint: error.hint },
    );
  } else {
    log(`${req.method} ${req.url}: ${(error as Error)?.stack ?? String(error)}`);
    httpError = new HttpError(500, "internal", "Internal server error", {
      hint: "This is a bug in the runctl server; its log has the details.",
    });
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // A body far over the limit is not worth reading to the end: answer and close.
  const declared = declaredLength(req);
  if (httpError.status === 413 && declared !== undefined && declared > DISCARD_LIMIT_BYTES) {
    res.setHeader("Connection", "close");
  }
  sendError(res, httpError);
}
