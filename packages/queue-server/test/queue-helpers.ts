// Shared by the job-queue tests: a real server on loopback with a movable
// clock, a small JSON client over fetch, raw requests over a socket (for
// paths fetch would normalise), and child processes that claim jobs.
import { spawn } from "node:child_process";
import { connect } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type QueueServer, type QueueServerOptions, startQueueServer } from "../src/mod.ts";

export interface TestServer {
  server: QueueServer;
  url: string;
  /** Moves the server's clock forward (leases, backoff, worker liveness). */
  advance(seconds: number): void;
  /** Lines the server logged. */
  logs: string[];
  api(method: string, path: string, options?: ApiOptions): Promise<ApiAnswer>;
}

export async function startTestServer(
  dataDir: string,
  options: Partial<QueueServerOptions> = {},
): Promise<TestServer> {
  let offsetMs = 0;
  const logs: string[] = [];
  const server = await startQueueServer({
    dataDir,
    now: () => new Date(Date.now() + offsetMs),
    log: (line) => logs.push(line),
    ...options,
  });
  return {
    server,
    url: server.url,
    advance(seconds) {
      offsetMs += seconds * 1000;
    },
    logs,
    api: (method, path, apiOptions) => api(server.url, method, path, apiOptions),
  };
}

export interface ApiOptions {
  /** Sent as JSON (with its Content-Type). */
  json?: unknown;
  /** Sent as is. */
  body?: string | Uint8Array;
  headers?: Record<string, string>;
  token?: string;
}

export interface ApiAnswer {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read fields of whatever the server answered.
  json: any;
}

export async function api(
  url: string,
  method: string,
  path: string,
  options: ApiOptions = {},
): Promise<ApiAnswer> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | Uint8Array | undefined = options.body;
  if (options.json !== undefined) {
    headers["content-type"] ??= "application/json";
    body = JSON.stringify(options.json);
  }
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  const res = await fetch(`${url}${path}`, { method, headers, body });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Sends `head` (request line and headers, without the final blank line) and
 * `body` exactly as given over a socket, and reads one answer (by its
 * Content-Length): no client library gets to normalise `../` away. The
 * connection stays keep-alive, as a browser's or fetch's would, so a server
 * that answers before reading the whole body can drain it instead of
 * resetting the connection.
 */
export function rawRequest(port: number, head: string, body: Buffer | string = ""): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let received = Buffer.alloc(0);
    let answer: (Omit<RawAnswer, "body"> & { bodyStart: number; length: number | undefined }) | undefined;
    const finish = () => {
      if (!answer) return;
      resolve({ status: answer.status, headers: answer.headers, body: received.subarray(answer.bodyStart) });
      socket.destroy();
    };
    socket.on("data", (d: Buffer) => {
      received = Buffer.concat([received, d]);
      if (!answer) {
        const split = received.indexOf("\r\n\r\n");
        if (split < 0) return;
        const lines = received.subarray(0, split).toString("latin1").split("\r\n");
        const headers: Record<string, string> = {};
        for (const line of lines.slice(1)) {
          const i = line.indexOf(":");
          headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
        }
        const length =
          headers["content-length"] === undefined ? undefined : Number(headers["content-length"]);
        answer = { status: Number((lines[0] ?? "").split(" ")[1]), headers, bodyStart: split + 4, length };
      }
      if (answer.length !== undefined && received.length - answer.bodyStart >= answer.length) finish();
    });
    socket.on("error", reject);
    socket.on("end", () => {
      if (answer) finish();
      else reject(new Error(`no HTTP answer: ${received.toString()}`));
    });
    socket.write(`${head}\r\nHost: 127.0.0.1\r\n\r\n`);
    socket.write(body);
  });
}

const CLAIMER = join(fileURLToPath(new URL(".", import.meta.url)), "fixtures", "queue-claimer.mjs");

export interface Claimer {
  /** Resolves when the child is ready to start claiming. */
  ready: Promise<void>;
  go(): void;
  /** The job ids it claimed. */
  claimed: Promise<number[]>;
}

/** A child process claiming and completing jobs until none is left (fixtures/queue-claimer.mjs). */
export function startClaimer(args: string[]): Claimer {
  const child = spawn(process.execPath, [CLAIMER, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
    if (out.startsWith("ready\n")) markReady();
  });
  child.stderr.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const claimed = new Promise<number[]>((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code !== 0) reject(new Error(`claimer exited ${code}: ${err}`));
      else resolve(JSON.parse(out.slice("ready\n".length)) as number[]);
    });
  });
  return { ready, go: () => child.stdin.end("go\n"), claimed };
}
