/**
 * What a run records about the code and environment it ran with: `git.json`
 * and `requirements.txt` (or a copy of `uv.lock`). Capture never fails a run:
 * a missing git or pip just means the file is absent.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFile, mkdir, readFile, realpath, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { writeFileAtomicSync } from "@runctl/core/internal";
import { z } from "zod";

const MAX_DIFF_BYTES = 1024 * 1024;

function run(cmd: string, args: string[], cwd: string, timeoutMs = 20_000): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout) =>
      resolve(error ? undefined : stdout),
    );
  });
}

export interface GitInfo {
  commit: string;
  short_hash: string;
  branch: string | null;
  dirty: boolean;
  remote: string | null;
  diff: string;
  diff_truncated: boolean;
}

export async function captureGit(cwd: string): Promise<GitInfo | undefined> {
  const commit = (await run("git", ["rev-parse", "HEAD"], cwd))?.trim();
  if (!commit) return undefined;
  const [branch, status, remote, diff] = await Promise.all([
    run("git", ["rev-parse", "--abbrev-ref", "HEAD"], cwd),
    run("git", ["status", "--porcelain"], cwd),
    run("git", ["remote", "get-url", "origin"], cwd),
    run("git", ["diff", "HEAD"], cwd),
  ]);
  const fullDiff = diff ?? "";
  const truncated = Buffer.byteLength(fullDiff) > MAX_DIFF_BYTES;
  return {
    commit,
    short_hash: commit.slice(0, 7),
    branch: branch?.trim() && branch.trim() !== "HEAD" ? branch.trim() : null,
    dirty: (status ?? "").trim().length > 0,
    remote: remote?.trim() || null,
    diff: truncated ? Buffer.from(fullDiff).subarray(0, MAX_DIFF_BYTES).toString("utf8") : fullDiff,
    diff_truncated: truncated,
  };
}

/** Writes git.json; returns the meta.json fields to record. */
export async function writeGitInfo(runDir: string, cwd: string): Promise<Record<string, unknown>> {
  const info = await captureGit(cwd);
  if (!info) return {};
  await writeFile(join(runDir, "git.json"), `${JSON.stringify(info, null, 2)}\n`);
  const { diff: _diff, diff_truncated: _t, ...summary } = info;
  return { git: summary, git_file: "git.json" };
}

// `pip freeze` costs ~1 s of importing pip; reading the installed
// distributions' metadata gives the same name==version list in ~50 ms.
// Its first line: the existing directories on sys.path (JSON), the cache's key.
const LIST_DISTRIBUTIONS = `
import importlib.metadata as md, json, os, sys
print(json.dumps([p for p in sys.path if p and os.path.isdir(p)]))
seen = {}
for d in md.distributions():
    name = d.metadata["Name"]
    if name and name.lower() not in seen:
        seen[name.lower()] = "%s==%s" % (name, d.version)
print("\\n".join(sorted(seen.values(), key=str.lower)))
`;

/**
 * Copies uv.lock when the project has one, else records the distributions
 * installed for the interpreter the run uses, as `pip freeze` would list them.
 * Returns the meta.json field to record.
 */
export async function writeRequirements(
  runDir: string,
  cwd: string,
  python: string | undefined,
): Promise<Record<string, unknown>> {
  try {
    await copyFile(join(cwd, "uv.lock"), join(runDir, "uv.lock"));
    return { requirements_file: "uv.lock" };
  } catch {
    // no uv.lock: fall through to pip
  }
  if (!python) return {};
  const frozen = await installedDistributions(python, cwd);
  if (frozen === undefined) return {};
  await writeFile(join(runDir, "requirements.txt"), frozen);
  return { requirements_file: "requirements.txt" };
}

/**
 * The distribution list of an interpreter, from a cache when nothing was
 * installed or removed since: an install or uninstall adds or removes a
 * `*.dist-info` entry, which changes the mtime of the directory on sys.path
 * that holds it. A cache hit spares every run a Python start (~50 ms and up).
 */
async function installedDistributions(python: string, cwd: string): Promise<string | undefined> {
  const cacheFile = await requirementsCacheFile(python);
  if (cacheFile) {
    try {
      const cached = RequirementsCache.parse(JSON.parse(await readFile(cacheFile, "utf8")));
      const now = await Promise.all(
        cached.paths.map((p) =>
          stat(p.dir).then(
            (s) => s.mtimeMs,
            () => -1,
          ),
        ),
      );
      if (now.every((mtime, i) => mtime === cached.paths[i]?.mtimeMs)) return cached.text;
    } catch {
      // no cache yet, or an unreadable one: list them
    }
  }
  const out = await run(python, ["-c", LIST_DISTRIBUTIONS], cwd, 30_000);
  if (out === undefined) return undefined;
  const cut = out.indexOf("\n");
  const dirs = (JSON.parse(out.slice(0, cut)) as unknown[]).filter((d): d is string => typeof d === "string");
  const text = out.slice(cut + 1);
  if (cacheFile) {
    try {
      const paths = await Promise.all(dirs.map(async (dir) => ({ dir, mtimeMs: (await stat(dir)).mtimeMs })));
      await mkdir(dirname(cacheFile), { recursive: true });
      writeFileAtomicSync(cacheFile, JSON.stringify({ paths, text }));
    } catch {
      // a cache is an optimisation: the list itself was captured
    }
  }
  return text;
}

const RequirementsCache = z.object({
  paths: z.array(z.object({ dir: z.string(), mtimeMs: z.number() })),
  text: z.string(),
});

/** One cache file per interpreter (by its real path), under $XDG_CACHE_HOME/runctl or ~/.cache/runctl. */
async function requirementsCacheFile(python: string): Promise<string | undefined> {
  const base =
    process.env.XDG_CACHE_HOME || (process.env.HOME ? join(process.env.HOME, ".cache") : undefined);
  if (!base) return undefined;
  if (!python.startsWith("/")) return undefined;
  let real: string;
  try {
    real = await realpath(python);
  } catch {
    return undefined;
  }
  const key = createHash("sha256").update(real).digest("hex").slice(0, 32);
  return join(base, "runctl", "requirements", `${key}.json`);
}
