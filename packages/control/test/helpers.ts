// Real child processes running the built package, and throwaway directories.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const CHILD = join(here, "fixtures", "child.mjs");
const SRC = join(here, "..", "src");
const DIST = join(here, "..", "dist");
const CORE_INTERNAL_DIST = join(here, "..", "..", "core", "dist", "internal_mod.js");

/** Children import dist/: fail loudly if it is missing or older than src/. */
export async function assertDistFresh(): Promise<void> {
  const build = "run `npx tsc -p tsconfig.build.json` in packages/control first";
  if (!existsSync(join(DIST, "mod.js"))) throw new Error(`packages/control/dist is missing: ${build}`);
  for (const file of await readdir(SRC, { recursive: true })) {
    if (!file.endsWith(".ts")) continue;
    const out = join(DIST, file.replace(/\.ts$/, ".js"));
    if (!existsSync(out) || statSync(out).mtimeMs < statSync(join(SRC, file)).mtimeMs) {
      throw new Error(`packages/control/dist is stale (${file}): ${build}`);
    }
  }
  if (
    !existsSync(CORE_INTERNAL_DIST) ||
    !readFileSync(CORE_INTERNAL_DIST, "utf8").includes("withFileMutexSync")
  ) {
    throw new Error("packages/core/dist does not export withFileMutexSync: build packages/core first");
  }
}

export interface Child {
  proc: ChildProcess;
  /** The next line the child prints on stdout. */
  line(): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

export function startChild(args: string[]): Child {
  const proc = spawn(process.execPath, [CHILD, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const buffered: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on("line", (l) => {
    const w = waiting.shift();
    if (w) w(l);
    else buffered.push(l);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>(
    (resolve) => {
      proc.on("exit", (code, signal) => resolve({ code, signal, stderr }));
    },
  );
  return {
    proc,
    line: () => {
      const l = buffered.shift();
      if (l !== undefined) return Promise.resolve(l);
      return new Promise<string>((resolve, reject) => {
        waiting.push(resolve);
        void exited.then((e) =>
          reject(new Error(`child exited (${e.code ?? e.signal}) before printing: ${e.stderr}`)),
        );
      });
    },
    exited,
  };
}

export async function tempDir(prefix: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `runctl-control-${prefix}-`));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** The lines of a JSONL file, parsed. */
export function readLines(path: string): Array<Record<string, unknown>> {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
