/**
 * Runs the built `runctl` binary as a user would, in an isolated HOME and XDG
 * dirs, and parses `--json` output with the envelope schema.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { z } from "zod";

const require = createRequire(import.meta.url);
export const RUNCTL_BIN = join(dirname(require.resolve("runctl/package.json")), "bin", "run.js");

export const Envelope = z.union([
  z.object({ success: z.literal(true) }).passthrough(),
  z.object({
    success: z.literal(false),
    error: z.object({ code: z.string(), message: z.string(), hint: z.string().optional() }).passthrough(),
  }),
]);

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Workspace {
  home: string;
  project: string;
  env: NodeJS.ProcessEnv;
}

export async function workspace(extraEnv: NodeJS.ProcessEnv = {}): Promise<Workspace> {
  const home = await mkdtemp(join(tmpdir(), "runctl-e2e-"));
  const project = join(home, "project");
  await mkdir(project);
  return {
    home,
    project,
    env: {
      PATH: process.env.PATH,
      HOME: home,
      XDG_CONFIG_HOME: join(home, ".config"),
      XDG_DATA_HOME: join(home, ".local/share"),
      XDG_CACHE_HOME: join(home, ".cache"),
      ...extraEnv,
    },
  };
}

export function startRunctl(
  args: string[],
  ws: Workspace,
): { child: ChildProcess; result: Promise<CliResult> } {
  const child = spawn(process.execPath, [RUNCTL_BIN, ...args], {
    cwd: ws.project,
    env: ws.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const result = new Promise<CliResult>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, result };
}

export function runctl(args: string[], ws: Workspace): Promise<CliResult> {
  return startRunctl(args, ws).result;
}

/** Runs with `--json`, placed before any `--` so the script does not receive it. */
export async function runctlJson(args: string[], ws: Workspace) {
  const end = args.indexOf("--");
  const r = await runctl(
    end === -1 ? [...args, "--json"] : [...args.slice(0, end), "--json", ...args.slice(end)],
    ws,
  );
  let doc: unknown;
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    throw new Error(`runctl ${args.join(" ")} printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  return { ...r, doc: Envelope.parse(doc) };
}

/** Polls `check` until it returns true (errors count as false), or fails naming `what`. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (
    !(await Promise.resolve()
      .then(check)
      .catch(() => false))
  ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * `runctl local …` in the foreground, once it has announced its run ("runctl:
 * run <id> (<dir>)" on stderr) and, when `readyFile` is given, once the script
 * has created that file in its run directory.
 */
export async function startLocalRun(args: string[], ws: Workspace, readyFile?: string) {
  const { child, result } = startRunctl(["local", ...args], ws);
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const announced = () => /runctl: run (\S+) \(/.exec(stderr)?.[1];
  await waitFor(() => announced() !== undefined, `the run to start:\n${stderr}`);
  const id = announced() as string;
  const runDir = join(ws.project, "runs", id);
  if (readyFile) await waitFor(() => existsSync(join(runDir, readyFile)), `${readyFile} in ${runDir}`);
  return { child, result, id, runDir };
}
