/**
 * A real npm registry (verdaccio) on loopback, for tests that publish and install packages, e.g.
 * third-party provider plugins installed with `runctl plugins install`.
 *
 * Nothing is proxied: `uplinks` is empty, so a package the test did not publish is a 404 instead of
 * a silent download from registry.npmjs.org. npm runs against a temporary userconfig and cache, so
 * the user's ~/.npmrc and ~/.npm are never read or written.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { freePort } from "./ports.ts";

export interface StartRegistryOptions {
  /** Where verdaccio stores packages. A fresh temporary directory when omitted; never deleted when given. */
  storageDir?: string;
}

export interface NpmResult {
  stdout: string;
  stderr: string;
}

/** The variables that point an npm child process at this registry and nowhere else. */
export interface RegistryNpmEnv {
  npm_config_registry: string;
  npm_config_userconfig: string;
  npm_config_cache: string;
}

export interface Registry {
  /** Registry URL with the trailing slash npm uses, e.g. `http://127.0.0.1:41234/`. */
  url: string;
  /** Temporary npmrc holding the registry and an auth token for it. */
  npmrcPath: string;
  /** The auth token of the registered test user (also in the npmrc). */
  token: string;
  userconfigEnv: RegistryNpmEnv;
  /** verdaccio's stdout and stderr, one request per line. */
  logPath: string;
  /** `base` (default `process.env`) without inherited `npm_*` variables, plus `userconfigEnv`. */
  env(base?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  /** Runs the real `npm` with `env()`; rejects with npm's output when it exits non-zero. */
  npm(args: readonly string[], options?: { cwd?: string }): Promise<NpmResult>;
  /** `npm publish` of the package in `pkgDir` to this registry. */
  publish(pkgDir: string): Promise<NpmResult>;
  /** Stops verdaccio, waits for it to exit and removes the temporary files. Safe to call twice. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 5_000;
const START_ATTEMPTS = 3;

export async function startRegistry(options: StartRegistryOptions = {}): Promise<Registry> {
  const root = await mkdtemp(join(tmpdir(), "runctl-verdaccio-"));
  try {
    return await startIn(root, options);
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }
}

async function startIn(root: string, options: StartRegistryOptions): Promise<Registry> {
  const storageDir = resolve(options.storageDir ?? join(root, "storage"));
  const cacheDir = join(root, "npm-cache");
  const configPath = join(root, "config.yaml");
  const logPath = join(root, "verdaccio.log");
  const npmrcPath = join(root, "npmrc");
  await mkdir(storageDir, { recursive: true });
  await mkdir(cacheDir, { recursive: true });
  // JSON is valid YAML, so no YAML library is needed to write verdaccio's config.
  const config = {
    storage: storageDir,
    auth: { htpasswd: { file: join(root, "htpasswd") } },
    uplinks: {},
    // Mirrored dependencies include large tarballs (npm itself, bundled into @oclif/plugin-plugins).
    max_body_size: "200mb",
    packages: {
      "**": { access: "$all", publish: "$authenticated", unpublish: "$authenticated" },
    },
    web: { enable: false },
    log: { type: "stdout", format: "pretty", level: "http", colors: false },
  };
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);

  const server = await spawnVerdaccio(root, configPath, logPath);
  const url = `http://127.0.0.1:${server.port}/`;
  let token: string;
  try {
    // npm 11 refuses to publish without credentials, and a real user exercises the same
    // token path a private registry would, so register one and keep its token.
    token = await registerUser(url);
    const authKey = `//127.0.0.1:${server.port}/:_authToken`;
    await writeFile(
      npmrcPath,
      [
        `registry=${url}`,
        `${authKey}=${token}`,
        `cache=${cacheDir}`,
        "audit=false",
        "fund=false",
        "update-notifier=false",
        "",
      ].join("\n"),
    );
  } catch (err) {
    await server.stop();
    throw err;
  }

  const userconfigEnv: RegistryNpmEnv = {
    npm_config_registry: url,
    npm_config_userconfig: npmrcPath,
    npm_config_cache: cacheDir,
  };
  const env = (base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv => {
    // When tests run under `npm test`, npm exports its own config (npm_config_userconfig,
    // npm_config_registry, …) to every descendant; drop it so only this registry's config applies.
    const clean: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(base)) {
      if (!/^npm_/i.test(key)) clean[key] = value;
    }
    return { ...clean, ...userconfigEnv };
  };
  const npm = (args: readonly string[], opts: { cwd?: string } = {}): Promise<NpmResult> =>
    run("npm", args, { cwd: opts.cwd ?? root, env: env() });

  let stopped = false;
  return {
    url,
    npmrcPath,
    token,
    userconfigEnv,
    logPath,
    env,
    npm,
    publish: (pkgDir) => npm(["publish", "--registry", url, "--userconfig", npmrcPath], { cwd: pkgDir }),
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.stop();
      // RUNCTL_E2E_KEEP_TMP keeps the config, storage and log for a post-mortem.
      if (!process.env.RUNCTL_E2E_KEEP_TMP) await rm(root, { recursive: true, force: true });
    },
  };
}

interface RunningServer {
  port: number;
  stop(): Promise<void>;
}

async function spawnVerdaccio(root: string, configPath: string, logPath: string): Promise<RunningServer> {
  const bin = verdaccioBin();
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    // The port is free when chosen but verdaccio binds it later; another process can take it in
    // between, which shows up as an early exit with EADDRINUSE and is worth another try.
    const port = await freePort();
    const logFd = openSync(logPath, "a");
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [bin, "--config", configPath, "--listen", `127.0.0.1:${port}`], {
        cwd: root,
        stdio: ["ignore", logFd, logFd],
      });
    } finally {
      closeSync(logFd);
    }
    const server = track(child);
    try {
      await waitForPing(`http://127.0.0.1:${port}/-/ping`, server.exited, logPath);
      return { port, stop: server.stop };
    } catch (err) {
      await server.stop();
      lastError = err instanceof Error ? err : new Error(String(err));
      const log = await readFile(logPath, "utf8").catch(() => "");
      if (!log.includes("EADDRINUSE")) break;
    }
  }
  throw lastError ?? new Error("verdaccio did not start");
}

function verdaccioBin(): string {
  const require = createRequire(import.meta.url);
  const pkgJsonPath = require.resolve("verdaccio/package.json");
  const pkg = require(pkgJsonPath) as { bin?: string | Record<string, string> };
  const rel = typeof pkg.bin === "string" ? pkg.bin : pkg.bin?.verdaccio;
  if (!rel) throw new Error(`no verdaccio bin in ${pkgJsonPath}`);
  return join(dirname(pkgJsonPath), rel);
}

interface Tracked {
  exited: Promise<void>;
  stop(): Promise<void>;
}

/** Watches a child: a promise for its exit, a stop that escalates to SIGKILL, and no orphan if we exit. */
function track(child: ChildProcess): Tracked {
  let done = false;
  const exited = new Promise<void>((resolveExit) => {
    child.once("exit", () => {
      done = true;
      resolveExit();
    });
    // A spawn failure emits "error" and may never emit "exit".
    child.once("error", () => {
      done = true;
      resolveExit();
    });
  });
  // If the test process ends without calling stop(), do not leave a registry listening.
  const onExit = () => {
    if (!done) child.kill("SIGKILL");
  };
  process.once("exit", onExit);
  const stop = async () => {
    process.removeListener("exit", onExit);
    if (done) return;
    child.kill("SIGTERM");
    const graceful = await Promise.race([exited.then(() => true), delay(STOP_GRACE_MS, false)]);
    if (!graceful) {
      child.kill("SIGKILL");
      await exited;
    }
  };
  return { exited, stop };
}

async function waitForPing(pingUrl: string, exited: Promise<void>, logPath: string): Promise<void> {
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
  });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (hasExited) throw new Error(`verdaccio exited before answering ${pingUrl}\n${await logTail(logPath)}`);
    try {
      const res = await fetch(pingUrl, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    await delay(100);
  }
  throw new Error(
    `verdaccio did not answer ${pingUrl} within ${READY_TIMEOUT_MS} ms\n${await logTail(logPath)}`,
  );
}

async function registerUser(url: string): Promise<string> {
  const name = "runctl-e2e";
  const password = `pw-${randomUUID()}`;
  const res = await fetch(new URL(`-/user/org.couchdb.user:${name}`, url), {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, password }),
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await res.json().catch(() => ({}))) as { token?: unknown };
  if (!res.ok || typeof body.token !== "string") {
    throw new Error(`could not register a verdaccio user: HTTP ${res.status} ${JSON.stringify(body)}`);
  }
  return body.token;
}

async function logTail(logPath: string, lines = 40): Promise<string> {
  const text = await readFile(logPath, "utf8").catch(() => "");
  return `--- ${logPath} (last ${lines} lines) ---\n${text.split("\n").slice(-lines).join("\n")}`;
}

function run(
  command: string,
  args: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<NpmResult> {
  return new Promise((resolveRun, reject) => {
    execFile(
      command,
      [...args],
      { cwd: options.cwd, env: options.env, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          reject(
            new Error(
              `${command} ${args.join(" ")} failed in ${options.cwd} (exit ${String(err.code ?? err.signal)})\n${stdout}${stderr}`,
            ),
          );
          return;
        }
        resolveRun({ stdout, stderr });
      },
    );
  });
}
