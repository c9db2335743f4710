/**
 * A real `nats-server` with JetStream on a free loopback port, its store in a
 * temporary directory, for tests and benchmarks that need NATS:
 *
 *   const server = await startNatsServer();
 *   … connect to server.url …
 *   await server.stop();     // down; state kept
 *   await server.start();    // up again: same port, same store, streams intact
 *   await server.restart();  // both
 *   await server.close();    // down for good; the temporary store is removed
 *
 * With `{ jwt: true }` the server runs in JWT (operator) mode, as a
 * production server for remote runs does: an operator, a system account and
 * one application account with JetStream, generated with nkeys at start and
 * preloaded into a memory resolver. No client gets in without a user JWT
 * signed by the account; `server.jwt` has the account seed (to mint run
 * credentials) and an unrestricted user of the account (what a user's CLI
 * holds), as `.creds` text and file.
 *
 * The binary is `$NATS_SERVER_BIN`, else `nats-server` on PATH, else
 * `/usr/sbin/nats-server` (Debian's package). Ready means the server greeted a
 * TCP client with an `INFO` line that says JetStream is on.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, closeSync, constants, openSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import {
  createAccount,
  createOperator,
  createUser,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
} from "@nats-io/jwt";
import { freePort } from "./ports.ts";

export interface StartNatsOptions {
  /** JetStream store directory; a fresh temporary one (removed by close()) when omitted. */
  storeDir?: string;
  /** Extra command-line arguments for nats-server. */
  args?: readonly string[];
  /** How long to wait for the server to accept clients (default 30 s). */
  readyTimeoutMs?: number;
  /** Run in JWT (operator) mode; see `NatsServer.jwt`. */
  jwt?: boolean;
}

/** The keys and credentials of a JWT-mode server. Test secrets, made fresh per server. */
export interface NatsJwtAuth {
  operatorPublicKey: string;
  systemAccountPublicKey: string;
  /** The application account, with JetStream. */
  accountPublicKey: string;
  /** Its seed (`SA…`): what the launching side holds to mint per-run credentials. */
  accountSeed: string;
  /** A user of the account without permission limits (what a user's CLI holds), as `.creds` text … */
  userCreds: string;
  /** … and as a file (mode 0600). */
  userCredsFile: string;
}

export interface NatsServer {
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly storeDir: string;
  /** The server's stdout and stderr, appended across restarts. */
  readonly logPath: string;
  /** Set when started with `{ jwt: true }`. */
  readonly jwt: NatsJwtAuth | undefined;
  /** Whether the process is running. */
  readonly running: boolean;
  /** The running process's pid, or undefined. */
  readonly pid: number | undefined;
  /** Stops the server (SIGTERM, SIGKILL after 5 s) and waits for it to exit; the store is kept. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same store (JetStream state survives). */
  start(): Promise<void>;
  restart(): Promise<void>;
  /** Stops it and removes the temporary store (a given storeDir is left alone). Safe to call twice. */
  close(): Promise<void>;
}

const HOST = "127.0.0.1";
const STOP_GRACE_MS = 5_000;
const START_ATTEMPTS = 3;

export function natsServerBin(): string {
  const fromEnv = process.env.NATS_SERVER_BIN;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, "nats-server");
    if (isExecutable(candidate)) return candidate;
  }
  return "/usr/sbin/nats-server";
}

export async function startNatsServer(options: StartNatsOptions = {}): Promise<NatsServer> {
  const root = await mkdtemp(join(tmpdir(), "runctl-nats-"));
  const storeDir = options.storeDir ?? join(root, "store");
  const logPath = join(root, "nats-server.log");
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const bin = natsServerBin();
  const jwt = options.jwt === true ? await jwtMode(root) : undefined;
  const extraArgs = [...(jwt === undefined ? [] : ["-c", jwt.configPath]), ...(options.args ?? [])];
  let port = 0;
  let proc: Tracked | undefined;
  let closed = false;

  const launch = async (): Promise<void> => {
    const tracked = spawnServer(bin, port, storeDir, logPath, extraArgs);
    try {
      await waitReady(port, tracked, readyTimeoutMs, logPath);
    } catch (error) {
      await tracked.stop();
      throw error;
    }
    proc = tracked;
  };

  // The port is free when chosen but the server binds it later; retry on a lost race.
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS && proc === undefined; attempt++) {
    port = await freePort(HOST);
    try {
      await launch();
    } catch (error) {
      lastError = error;
      const log = await readFile(logPath, "utf8").catch(() => "");
      if (!/address already in use/i.test(log)) break;
    }
  }
  if (proc === undefined) {
    await rm(root, { recursive: true, force: true });
    throw lastError instanceof Error ? lastError : new Error(String(lastError));
  }

  const server: NatsServer = {
    url: `nats://${HOST}:${port}`,
    host: HOST,
    port,
    storeDir,
    logPath,
    jwt: jwt?.auth,
    get running() {
      return proc !== undefined && !proc.done;
    },
    get pid() {
      return proc !== undefined && !proc.done ? proc.child.pid : undefined;
    },
    async stop() {
      const running = proc;
      proc = undefined;
      if (running !== undefined) await running.stop();
    },
    async start() {
      if (closed) throw new Error("this nats-server was closed");
      if (proc !== undefined && !proc.done) return;
      // The old process may still hold the port for a moment after it exits.
      let error: unknown;
      for (let attempt = 0; attempt < 20; attempt++) {
        try {
          await launch();
          return;
        } catch (e) {
          error = e;
          await delay(250);
        }
      }
      throw error;
    },
    async restart() {
      await server.stop();
      await server.start();
    },
    async close() {
      if (closed) return;
      closed = true;
      await server.stop();
      // RUNCTL_E2E_KEEP_TMP keeps the store and log for a post-mortem.
      if (!process.env.RUNCTL_E2E_KEEP_TMP) await rm(root, { recursive: true, force: true });
    },
  };
  return server;
}

/** Keys, JWTs and a server config for operator mode, written under `root`. */
async function jwtMode(root: string): Promise<{ auth: NatsJwtAuth; configPath: string }> {
  const operator = createOperator();
  const system = createAccount();
  const account = createAccount();
  const user = createUser();
  const unlimited = {
    subs: -1,
    data: -1,
    payload: -1,
    imports: -1,
    exports: -1,
    wildcards: true,
    conn: -1,
    leaf: -1,
  };
  const operatorJwt = await encodeOperator("runctl-test-operator", operator, {
    system_account: system.getPublicKey(),
  });
  const systemJwt = await encodeAccount("SYS", system, { limits: unlimited }, { signer: operator });
  const accountJwt = await encodeAccount(
    "RUNCTL",
    account,
    {
      limits: {
        ...unlimited,
        mem_storage: -1,
        disk_storage: -1,
        streams: -1,
        consumer: -1,
        max_ack_pending: -1,
        mem_max_stream_bytes: -1,
        disk_max_stream_bytes: -1,
      },
    },
    { signer: operator },
  );
  const userJwt = await encodeUser("runctl-cli", user, account);
  const userCreds = new TextDecoder().decode(fmtCreds(userJwt, user));
  const userCredsFile = join(root, "user.creds");
  await writeFile(userCredsFile, userCreds, { mode: 0o600 });
  const configPath = join(root, "nats-server.conf");
  // JSON is valid nats-server configuration syntax.
  const config = {
    operator: operatorJwt,
    system_account: system.getPublicKey(),
    resolver: "MEMORY",
    resolver_preload: {
      [system.getPublicKey()]: systemJwt,
      [account.getPublicKey()]: accountJwt,
    },
    // The store directory comes from the command line (-sd), as for a server without JWT.
    jetstream: "enabled",
  };
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  return {
    configPath,
    auth: {
      operatorPublicKey: operator.getPublicKey(),
      systemAccountPublicKey: system.getPublicKey(),
      accountPublicKey: account.getPublicKey(),
      accountSeed: new TextDecoder().decode(account.getSeed()),
      userCreds,
      userCredsFile,
    },
  };
}

interface Tracked {
  child: ChildProcess;
  done: boolean;
  exited: Promise<void>;
  stop(): Promise<void>;
}

function spawnServer(
  bin: string,
  port: number,
  storeDir: string,
  logPath: string,
  extra: readonly string[],
): Tracked {
  const logFd = openSync(logPath, "a");
  let child: ChildProcess;
  try {
    child = spawn(bin, ["-a", HOST, "-p", String(port), "-js", "-sd", storeDir, ...extra], {
      stdio: ["ignore", logFd, logFd],
    });
  } finally {
    closeSync(logFd);
  }
  const tracked: Tracked = {
    child,
    done: false,
    exited: Promise.resolve(),
    stop: async () => {},
  };
  tracked.exited = new Promise<void>((resolve) => {
    const finish = () => {
      tracked.done = true;
      resolve();
    };
    child.once("exit", finish);
    // A spawn failure emits "error" and may never emit "exit".
    child.once("error", finish);
  });
  // If the test process ends without stopping the server, do not leave it running.
  const onExit = () => {
    if (!tracked.done) child.kill("SIGKILL");
  };
  process.once("exit", onExit);
  tracked.stop = async () => {
    process.removeListener("exit", onExit);
    if (tracked.done) return;
    child.kill("SIGTERM");
    const graceful = await Promise.race([tracked.exited.then(() => true), delay(STOP_GRACE_MS, false)]);
    if (!graceful) {
      child.kill("SIGKILL");
      await tracked.exited;
    }
  };
  return tracked;
}

async function waitReady(port: number, server: Tracked, timeoutMs: number, logPath: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server.done)
      throw new Error(`nats-server exited before accepting clients\n${await logTail(logPath)}`);
    const info = await greeting(port).catch(() => undefined);
    if (info !== undefined && /"jetstream"\s*:\s*true/.test(info)) return;
    await delay(50);
  }
  throw new Error(
    `nats-server did not accept clients on port ${port} within ${timeoutMs} ms\n${await logTail(logPath)}`,
  );
}

/** The server's `INFO {…}` line. */
function greeting(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: HOST, port });
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("no INFO"));
    }, 1_000);
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("utf8");
      const end = text.indexOf("\r\n");
      if (end >= 0) {
        clearTimeout(timer);
        socket.destroy();
        if (text.startsWith("INFO ")) resolve(text.slice(0, end));
        else reject(new Error(`unexpected greeting: ${text.slice(0, 80)}`));
      }
    });
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function logTail(logPath: string, lines = 30): Promise<string> {
  const text = await readFile(logPath, "utf8").catch(() => "");
  return `--- ${logPath} (last ${lines} lines) ---\n${text.split("\n").slice(-lines).join("\n")}`;
}
