/**
 * The `artifacts/` directory of a run: names (untrusted: they come from
 * scripts, CLI flags and HTTP bodies, so none may escape the directory),
 * copying in without readers ever seeing a half-copied file, and listing.
 */
import { randomBytes } from "node:crypto";
import type { Dirent } from "node:fs";
import { copyFile, cp, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { type ArtifactInfo, UserError } from "@runctl/core";
import { isErrno } from "@runctl/core/internal";
import { RUN_FILES } from "./layout.ts";

// Copies in progress carry this prefix; listings hide them.
const TEMP_PREFIX = ".runctl-tmp-";
const BAD_SEGMENT = /[\\\0]/;

/** Absolute path of artifact `name` in `runDir`, or a UserError if the name could escape. */
export function artifactPath(runDir: string, name: string): string {
  const parts = name.split("/");
  const ok =
    name.length > 0 &&
    parts.every((p) => p !== "" && p !== "." && p !== ".." && !BAD_SEGMENT.test(p)) &&
    !parts.some((p) => p.startsWith(TEMP_PREFIX));
  if (!ok) {
    throw new UserError(`Invalid artifact name "${name}"`, {
      code: "artifact_bad_name",
      hint: "Use a relative name inside artifacts/, like `model.pt` or `checkpoints/epoch-3.pt` (no `..`, no leading `/`, no backslashes).",
      details: { name },
    });
  }
  return join(runDir, RUN_FILES.artifacts, ...parts);
}

/** Copies a file or directory to `artifacts/<name>` (default: the source's base name), replacing any previous one. */
export async function copyArtifact(runDir: string, source: string, name?: string): Promise<ArtifactInfo> {
  const rel = name ?? basename(source);
  const dest = artifactPath(runDir, rel);
  let sourceStat: Awaited<ReturnType<typeof stat>>;
  try {
    sourceStat = await stat(source);
  } catch (error) {
    if (!isErrno(error, "ENOENT", "ENOTDIR")) throw error;
    throw new UserError(`Artifact source ${source} does not exist`, {
      code: "artifact_source_missing",
      hint: "Pass the path of an existing file or directory (relative paths are relative to the working directory).",
      details: { source },
      cause: error,
    });
  }
  await mkdir(dirname(dest), { recursive: true });
  const tmp = join(dirname(dest), `${TEMP_PREFIX}${randomBytes(4).toString("hex")}-${basename(dest)}`);
  try {
    if (sourceStat.isDirectory()) await cp(source, tmp, { recursive: true });
    else await copyFile(source, tmp);
    // rename cannot replace a directory (or a file with a directory), so clear the way first.
    await rm(dest, { recursive: true, force: true });
    await rename(tmp, dest);
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    throw error;
  }
  const destStat = await stat(dest);
  const size = destStat.isDirectory()
    ? (await walk(dest, rel)).reduce((sum, f) => sum + f.size, 0)
    : destStat.size;
  return { path: rel, size, modified: destStat.mtime.toISOString() };
}

/** Every file under `artifacts/`, with paths relative to it (POSIX separators), sorted. */
export async function listArtifacts(runDir: string): Promise<ArtifactInfo[]> {
  const files = await walk(join(runDir, RUN_FILES.artifacts), "");
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

async function walk(dir: string, prefix: string): Promise<ArtifactInfo[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if (isErrno(error, "ENOENT", "ENOTDIR")) return [];
    throw error;
  }
  const out: ArtifactInfo[] = [];
  for (const entry of entries) {
    if (entry.name.startsWith(TEMP_PREFIX)) continue;
    const full = join(dir, entry.name);
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      out.push(...(await walk(full, rel)));
      continue;
    }
    try {
      const s = await stat(full);
      if (s.isFile()) out.push({ path: rel, size: s.size, modified: s.mtime.toISOString() });
    } catch (error) {
      // Replaced or removed between readdir and stat: it is simply not there now.
      if (!isErrno(error, "ENOENT")) throw error;
    }
  }
  return out;
}
