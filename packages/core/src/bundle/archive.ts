/**
 * Deterministic tar.gz for a manifest: the same manifest always packs to the
 * same bytes (with one zlib), so a key can stand for its archive.
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import * as tar from "tar";
import { UserError } from "../errors.ts";
import type { BundleEntry } from "./manifest.ts";
import { hashFile, manifestKey } from "./manifest.ts";

/** Every entry carries this mtime; 2000-01-01 rather than 0 because some tools treat 0 as "unset". */
export const ARCHIVE_MTIME = new Date(Date.UTC(2000, 0, 1));

/**
 * tar turns a second path to an inode it has seen into a hard link entry.
 * That would make the archive depend on how the checkout was made (a `cp -l`
 * tree differs from a clone), so the cache it consults never remembers.
 */
class ForgetfulMap<K, V> extends Map<K, V> {
  override set(): this {
    return this;
  }
}

/**
 * Packs `entries` (read from `root`) into `dest`, which must not exist.
 * Directories are implied by paths, so empty directories are not kept. The
 * result is verified against the manifest afterwards: a file edited while it
 * was being packed would otherwise hide under a key that does not describe it.
 */
export async function writeArchive(
  root: string,
  entries: readonly BundleEntry[],
  dest: string,
): Promise<{ bytes: number; sha256: string }> {
  const modes = new Map<string, number>();
  for (const e of entries) if (e.type === "file") modes.set(e.path, e.mode);

  const pack = new tar.Pack({
    cwd: root,
    gzip: true,
    // portable drops uid/gid/uname/atime/ctime and marks the gzip header OS as unknown (0xff).
    portable: true,
    mtime: ARCHIVE_MTIME,
    noDirRecurse: true,
    strict: true,
    linkCache: new ForgetfulMap(),
    onWriteEntry: (entry) => {
      // The archive stores the manifest's normalised mode, not the checkout's.
      const mode = modes.get(entry.path);
      if (mode !== undefined && entry.stat) entry.stat.mode = (entry.stat.mode & ~0o7777) | mode;
    },
  });
  const out = createWriteStream(dest, { flags: "wx", mode: 0o644 });
  const written = new Promise<void>((resolve, reject) => {
    out.on("close", resolve);
    out.on("error", reject);
    pack.on("error", (error: unknown) => {
      out.destroy();
      reject(error);
    });
  });
  pack.pipe(out);
  for (const e of entries) pack.add(e.path);
  pack.end();
  try {
    await written;
  } catch (error) {
    throw changedDuringBuild(root, error);
  }

  const inspected = await inspectArchive(dest);
  if (inspected.foreign.length > 0) throw changedDuringBuild(root, undefined, inspected.foreign[0]);
  if (manifestKey(inspected.entries) !== manifestKey(entries)) {
    throw changedDuringBuild(root, undefined, firstDifference(entries, inspected.entries));
  }
  return { bytes: inspected.bytes, sha256: inspected.sha256 };
}

function changedDuringBuild(root: string, cause: unknown, path?: string): UserError {
  const where = path === undefined ? "" : ` (${path})`;
  return new UserError(`Files under ${root} changed while the bundle was being packed${where}`, {
    code: "bundle_changed_during_build",
    hint: "Stop whatever is writing into the project directory (a running job, an editor saving) and build again.",
    details: path === undefined ? { root } : { root, path },
    cause,
  });
}

function firstDifference(a: readonly BundleEntry[], b: readonly BundleEntry[]): string | undefined {
  const length = Math.max(a.length, b.length);
  for (let i = 0; i < length; i++) {
    if (JSON.stringify(a[i]) !== JSON.stringify(b[i])) return a[i]?.path ?? b[i]?.path;
  }
  return undefined;
}

/**
 * Reads an archive back into manifest entries (hashing each file's content)
 * and hashes the archive bytes themselves, which is what a bootstrap verifies.
 * Entries a bundle never holds (directories, hard links, odd modes) are listed
 * in `foreign` instead, so they fail a comparison rather than being coerced.
 */
export async function inspectArchive(
  archive: string,
): Promise<{ entries: BundleEntry[]; foreign: string[]; bytes: number; sha256: string }> {
  const entries: BundleEntry[] = [];
  const foreign: string[] = [];
  await tar.list({
    file: archive,
    strict: true,
    onReadEntry: (entry) => {
      const mode = entry.mode;
      if (entry.type === "SymbolicLink" && entry.linkpath) {
        entries.push({ type: "symlink", path: entry.path, target: entry.linkpath });
      } else if (entry.type === "File" && (mode === 0o644 || mode === 0o755)) {
        const hash = createHash("sha256");
        let size = 0;
        entry.on("data", (chunk: Buffer) => {
          hash.update(chunk);
          size += chunk.length;
        });
        entry.on("end", () => {
          entries.push({ type: "file", path: entry.path, mode, size, sha256: hash.digest("hex") });
        });
      } else {
        foreign.push(entry.path);
      }
    },
  });
  const { sha256, size } = await hashFile(archive);
  return { entries, foreign, bytes: size, sha256 };
}
