// Runs the built `runctl` binary as a user would, in an isolated home.
import { spawn } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const BIN = fileURLToPath(new URL("../bin/run.js", import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Sandbox {
  home: string;
  project: string;
  env: Record<string, string>;
}

/** A fresh HOME and XDG dirs so tests never read or write the real user's config, data or cache. */
export async function sandbox(): Promise<Sandbox> {
  const home = await mkdtemp(join(tmpdir(), "runctl-cli-"));
  const { mkdir } = await import("node:fs/promises");
  const project = join(home, "project");
  await mkdir(project, { recursive: true });
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: home,
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_DATA_HOME: join(home, ".local/share"),
    XDG_CACHE_HOME: join(home, ".cache"),
  };
  return { home, project, env };
}

export function runctl(
  args: string[],
  options: {
    cwd: string;
    env: Record<string, string>;
    /** For long-running commands (server, worker): SIGTERM once stderr matches. */
    stopWhen?: RegExp;
  },
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd,
      env: options.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    let stopped = false;
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (options.stopWhen && !stopped && options.stopWhen.test(stderr)) {
        stopped = true;
        child.kill("SIGTERM");
      }
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
