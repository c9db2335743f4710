/**
 * Unpacks a bundle on the machine that runs it. An archive fetched from
 * storage is untrusted input: every entry is checked before anything is
 * written, and extraction refuses to deviate from what was checked.
 */
import { mkdir, readdir, stat } from "node:fs/promises";
import path from "node:path";
import * as tar from "tar";
import { isRunctlError, UserError } from "../errors.ts";

/** What the checks need of a tar header. */
export interface ArchiveEntryHeader {
  path: string;
  type: string;
  linkpath?: string | undefined;
  /** Bytes of content the entry declares. */
  size?: number | undefined;
}

/**
 * The most an archive may unpack to, summed over its entries' declared sizes
 * (which extraction then holds it to). This, not tar's default cap of 1000:1
 * on the compression ratio, is the defence against decompression bombs: an
 * honest bundle may hold a file of zeros that compresses far beyond 1000:1.
 */
export const MAX_UNPACKED_BYTES = 64 * 1024 ** 3;

type EntryKind = "file" | "directory" | "symlink" | "hardlink";

const KIND_OF_TYPE: Readonly<Record<string, EntryKind>> = {
  File: "file",
  OldFile: "file",
  ContiguousFile: "file",
  Directory: "directory",
  SymbolicLink: "symlink",
  Link: "hardlink",
};

/** Deep enough for any honest chain of relative links; a cycle ends here too. */
const MAX_LINK_HOPS = 40;

function unsafe(archive: string, entry: string, reason: string): UserError {
  return new UserError(`Refusing to extract ${archive}: entry "${entry}" ${reason}`, {
    code: "bundle_unsafe_entry",
    hint:
      "This archive was not made by runctl or was altered after upload, so nothing was extracted. " +
      "Rebuild the bundle from the project directory and fetch it again.",
    details: { archive, entry, reason },
  });
}

/** Splits an archive path into segments; undefined for absolute paths or `..` anywhere. */
function segmentsOf(raw: string): string[] | undefined {
  // Backslashes and drive letters count as separators and roots here even on
  // posix: the same bundle may be unpacked on Windows.
  if (/^[\\/]/.test(raw) || /^[A-Za-z]:/.test(raw)) return undefined;
  const segments = raw.split(/[\\/]/).filter((s) => s !== "" && s !== ".");
  return segments.includes("..") ? undefined : segments;
}

/**
 * Follows a relative link target from `dir` the way the kernel would once the
 * archive is on disk, hopping through links the archive itself creates.
 * Returns undefined when the walk leaves the extraction root at any point.
 */
function resolveWithin(
  dir: readonly string[],
  target: string,
  links: ReadonlyMap<string, string>,
  hops = 0,
): string[] | undefined {
  if (hops > MAX_LINK_HOPS || target.startsWith("/")) return undefined;
  let at = [...dir];
  for (const segment of target.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (at.length === 0) return undefined;
      at.pop();
      continue;
    }
    at.push(segment);
    const next = links.get(at.join("/"));
    if (next !== undefined) {
      const resolved = resolveWithin(at.slice(0, -1), next, links, hops + 1);
      if (resolved === undefined) return undefined;
      at = resolved;
    }
  }
  return at;
}

/**
 * Checks a whole archive listing and throws on the first entry that could
 * write outside the extraction root: absolute paths, `..`, devices and FIFOs,
 * duplicate paths, entries beneath a symlink, symlinks that resolve outside,
 * and hard links to anything but an earlier regular file.
 */
export function checkArchiveEntries(archive: string, headers: readonly ArchiveEntryHeader[]): void {
  const checked: { header: ArchiveEntryHeader; kind: EntryKind; segments: string[] }[] = [];
  const seen = new Set<string>();
  const links = new Map<string, string>();
  for (const header of headers) {
    const kind = KIND_OF_TYPE[header.type];
    if (kind === undefined)
      throw unsafe(archive, header.path, `has type ${header.type}, which a bundle never holds`);
    const segments = segmentsOf(header.path);
    if (segments === undefined) throw unsafe(archive, header.path, "has an absolute path or a '..' segment");
    const key = segments.join("/");
    if (key === "" && kind !== "directory") throw unsafe(archive, header.path, "has an empty path");
    if (seen.has(key)) throw unsafe(archive, header.path, "appears twice");
    seen.add(key);
    if (kind === "symlink") links.set(key, header.linkpath ?? "");
    checked.push({ header, kind, segments });
  }

  const filesSoFar = new Set<string>();
  for (const { header, kind, segments } of checked) {
    for (let i = 1; i < segments.length; i++) {
      if (links.has(segments.slice(0, i).join("/"))) {
        throw unsafe(archive, header.path, "would be written through a symlink");
      }
    }
    const linkpath = header.linkpath ?? "";
    if (kind === "symlink" && resolveWithin(segments.slice(0, -1), linkpath, links) === undefined) {
      throw unsafe(
        archive,
        header.path,
        `is a symlink to ${linkpath}, which resolves outside the target or loops`,
      );
    }
    if (kind === "hardlink") {
      const target = segmentsOf(linkpath);
      if (target === undefined || !filesSoFar.has(target.join("/"))) {
        throw unsafe(
          archive,
          header.path,
          `is a hard link to ${linkpath}, not to an earlier file of the archive`,
        );
      }
    }
    if (kind === "file") filesSoFar.add(segments.join("/"));
  }
}

function headerOf(entry: tar.ReadEntry): ArchiveEntryHeader {
  return { path: entry.path, type: entry.type, linkpath: entry.linkpath, size: entry.size };
}

function sameHeader(a: ArchiveEntryHeader | undefined, b: ArchiveEntryHeader): boolean {
  return (
    a !== undefined &&
    a.path === b.path &&
    a.type === b.type &&
    (a.linkpath ?? "") === (b.linkpath ?? "") &&
    (a.size === undefined || a.size === (b.size ?? 0))
  );
}

function invalidArchive(archive: string, cause: unknown): UserError {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new UserError(`Cannot read ${archive} as a tar archive: ${why}`, {
    code: "bundle_archive_invalid",
    hint: "The download may be truncated; fetch the bundle again, or rebuild it if the copy in storage is damaged.",
    details: { archive },
    cause,
  });
}

async function prepareTarget(targetDir: string): Promise<void> {
  try {
    const info = await stat(targetDir);
    if (!info.isDirectory()) {
      throw new UserError(`Cannot extract into ${targetDir}: it is not a directory`, {
        code: "bundle_target_not_directory",
        hint: "Pass a path for a new directory, or an empty existing one.",
        details: { target: targetDir },
      });
    }
  } catch (error) {
    if (isRunctlError(error)) throw error;
    await mkdir(targetDir, { recursive: true });
    return;
  }
  // What is already there (a symlink, say) is outside what the checks saw.
  if ((await readdir(targetDir)).length > 0) {
    throw new UserError(`Cannot extract into ${targetDir}: the directory is not empty`, {
      code: "bundle_target_not_empty",
      hint: "Extract into a new or empty directory; remove the old copy first if it is no longer needed.",
      details: { target: targetDir },
    });
  }
}

/**
 * Second line of defence: extracts `archive` into `target`, writing an entry
 * only while the archive still matches `checked` one for one. The file is
 * read twice, and should it change in between, extraction stops at the first
 * entry that was not checked and throws.
 */
export async function extractListed(
  archive: string,
  target: string,
  checked: readonly ArchiveEntryHeader[],
): Promise<void> {
  let index = 0;
  let deviation: string | undefined;
  try {
    await tar.extract({
      file: archive,
      cwd: target,
      strict: true,
      // Bounded by the checked sizes instead (MAX_UNPACKED_BYTES).
      maxDecompressionRatio: Number.POSITIVE_INFINITY,
      preserveOwner: false,
      // Exact modes from the archive (644/755) whatever this process's umask is.
      chmod: true,
      processUmask: 0o022,
      // Files get the extraction time: build tools compare mtimes, and 2000-01-01 would look stale.
      noMtime: true,
      filter: (entryPath, entry) => {
        if (deviation !== undefined) return false;
        const expected = checked[index++];
        const actual = entry instanceof tar.ReadEntry ? headerOf(entry) : undefined;
        if (actual === undefined || !sameHeader(expected, actual)) {
          deviation = entryPath;
          return false;
        }
        return true;
      },
    });
  } catch (error) {
    throw invalidArchive(archive, error);
  }
  if (deviation === undefined && index !== checked.length) deviation = "(end of archive)";
  if (deviation !== undefined) {
    throw unsafe(
      archive,
      deviation,
      "differs from the listing that was checked; the archive changed during extraction",
    );
  }
}

/**
 * Extracts `archivePath` into `targetDir` (created if missing, else it must be
 * empty). Files get the archive's mode exactly and the current time; owners
 * are never taken from the archive.
 */
export async function extractBundle(archivePath: string, targetDir: string): Promise<{ fileCount: number }> {
  const archive = path.resolve(archivePath);
  const target = path.resolve(targetDir);
  try {
    if (!(await stat(archive)).isFile()) throw new Error("not a regular file");
  } catch (error) {
    throw new UserError(`Cannot extract ${archive}: no such archive`, {
      code: "bundle_archive_missing",
      hint: "Check the path, or build the bundle again to recreate it.",
      details: { archive },
      cause: error,
    });
  }

  const headers: ArchiveEntryHeader[] = [];
  try {
    await tar.list({
      file: archive,
      strict: true,
      maxDecompressionRatio: Number.POSITIVE_INFINITY,
      onReadEntry: (entry) => headers.push(headerOf(entry)),
    });
  } catch (error) {
    throw invalidArchive(archive, error);
  }
  const unpacked = headers.reduce((sum, h) => sum + (h.size ?? 0), 0);
  if (unpacked > MAX_UNPACKED_BYTES) {
    throw new UserError(
      `Refusing to extract ${archive}: it would unpack to ${unpacked} bytes, over the limit of ${MAX_UNPACKED_BYTES}`,
      {
        code: "bundle_too_large",
        hint: "Keep data and weights out of the bundle (.runctlignore, bundle.exclude) and fetch them on the machine.",
        details: { archive, bytes: unpacked, max: MAX_UNPACKED_BYTES },
      },
    );
  }
  checkArchiveEntries(archive, headers);
  await prepareTarget(target);

  await extractListed(archive, target, headers);
  return { fileCount: headers.filter((h) => KIND_OF_TYPE[h.type] !== "directory").length };
}
