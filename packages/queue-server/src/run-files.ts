/**
 * Files of a run directory on the job server (`<dataDir>/runs/<run_id>/`),
 * addressed by paths that come straight from request URLs. Nothing here may
 * ever name a file outside the run directory: paths are decoded once and
 * checked segment by segment, and what exists on disk is resolved (symlinks
 * included) and required to lie inside the run directory's real path.
 */
import type { Dirent } from "node:fs";
import { lstat, readdir, realpath } from "node:fs/promises";
import { join, sep } from "node:path";
import { isErrno } from "@runctl/core/internal";
import type { ArtifactRecord } from "@runctl/tracker";
import { isSafeRunId } from "@runctl/tracker";
import { HttpError } from "./http-response.ts";

/** In-progress uploads carry this prefix; listings hide them and uploads may not name them. */
export const UPLOAD_TEMP_PREFIX = ".runctl-upload-";

/** C0 controls (NUL included) and DEL: never part of a file name we serve or write. */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

function badPath(path: string, why: string): HttpError {
  return new HttpError(400, "bad_path", `Invalid file path "${path}": ${why}`, {
    hint: "Name a file inside the run directory with a relative path like `artifacts/model.pt` (no `..`, `.`, empty segments, leading `/`, backslashes or control characters).",
  });
}

/** A run id from a URL segment (percent-decoded once), or 400 `bad_path`. */
export function runIdFromUrl(raw: string): string {
  const id = decodeOnce(raw);
  if (!isSafeRunId(id)) throw badPath(id, "not a run id");
  return id;
}

function decodeOnce(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw badPath(raw, "malformed percent-encoding");
  }
}

/**
 * The segments of a file path taken raw from a URL: percent-decoded exactly
 * once (so `%2e%2e%2f` is `../` and refused, while `%252e` stays a literal
 * name), then every segment checked.
 */
export function relativePathFromUrl(raw: string): string[] {
  const path = decodeOnce(raw);
  if (path === "") throw badPath(path, "empty");
  if (path.startsWith("/")) throw badPath(path, "absolute");
  if (path.includes("\\")) throw badPath(path, "backslash");
  if (hasControlCharacter(path)) throw badPath(path, "control character");
  // File systems refuse longer names (ENAMETOOLONG): the caller's mistake, said as a 400, not a 500.
  if (Buffer.byteLength(path) > MAX_PATH_BYTES)
    throw badPath(shortened(path), `longer than ${MAX_PATH_BYTES} bytes`);
  const segments = path.split("/");
  for (const segment of segments) {
    if (Buffer.byteLength(segment) > MAX_NAME_BYTES) {
      throw badPath(shortened(path), `a name longer than ${MAX_NAME_BYTES} bytes`);
    }
    if (segment === "" || segment === "." || segment === "..") throw badPath(path, `segment "${segment}"`);
    if (segment.startsWith(UPLOAD_TEMP_PREFIX)) throw badPath(path, "reserved name");
  }
  return segments;
}

/** NAME_MAX and PATH_MAX of Linux file systems (ext4, xfs, tmpfs), for one name and a relative path. */
const MAX_NAME_BYTES = 255;
const MAX_PATH_BYTES = 4096;

function shortened(path: string): string {
  return path.length > 100 ? `${path.slice(0, 100)}…` : path;
}

/** True when `real` is `root` or inside it (both real paths). */
export function isInside(root: string, real: string): boolean {
  return real === root || real.startsWith(root.endsWith(sep) ? root : `${root}${sep}`);
}

/**
 * The real path of an existing file inside `runDir`, or undefined when it
 * does not exist, is not a regular file, or resolves (through a symlink)
 * outside the run directory: a caller answers 404 to all three alike.
 */
export async function resolveRunFile(
  runDir: string,
  segments: readonly string[],
): Promise<string | undefined> {
  let root: string;
  let real: string;
  try {
    root = await realpath(runDir);
    real = await realpath(join(root, ...segments));
  } catch (error) {
    if (isErrno(error, "ENOENT", "ENOTDIR", "ELOOP", "ENAMETOOLONG")) return undefined;
    throw error;
  }
  if (real === root || !isInside(root, real)) return undefined;
  return real;
}

/**
 * Every regular file under `runDir` (symlinks are not followed or listed),
 * paths relative with `/`, sorted; a missing directory lists as empty.
 */
export async function listRunFiles(runDir: string): Promise<ArtifactRecord[]> {
  const out: ArtifactRecord[] = [];
  await walk(runDir, "", out);
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

async function walk(dir: string, prefix: string, out: ArtifactRecord[]): Promise<void> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if (isErrno(error, "ENOENT", "ENOTDIR")) return;
    throw error;
  }
  for (const entry of entries) {
    if (entry.name.startsWith(UPLOAD_TEMP_PREFIX)) continue;
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      await walk(join(dir, entry.name), rel, out);
      continue;
    }
    if (!entry.isFile()) continue;
    try {
      const s = await lstat(join(dir, entry.name));
      out.push({ path: rel, size: s.size, modified: s.mtime.toISOString() });
    } catch (error) {
      // Replaced or removed between readdir and lstat: it is simply not there now.
      if (!isErrno(error, "ENOENT")) throw error;
    }
  }
}
