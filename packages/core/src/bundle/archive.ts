/**
 * Deterministic tar.gz for a manifest: the same manifest always packs to the
 * same bytes (with one zlib), so a key can stand for its archive.
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import { constants, createWriteStream } from "node:fs";
import { open, readlink } from "node:fs/promises";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import * as tar from "tar";
import { isRunctlError, UserError } from "../errors.ts";
import type { BundleEntry } from "./manifest.ts";
import { hashFile } from "./manifest.ts";

/** Every entry carries this mtime; 2000-01-01 rather than 0 because some tools treat 0 as "unset". */
export const ARCHIVE_MTIME = new Date(Date.UTC(2000, 0, 1));

/** Bytes read from a file at a time while packing: the most of it ever in memory. */
const READ_BYTES = 1024 * 1024;
const BLOCK = 512;
/** The gzip header's OS byte (RFC 1952): 255 "unknown", so the archive is the same on every platform. */
const GZIP_OS_OFFSET = 9;
const GZIP_OS_UNKNOWN = 0xff;

/**
 * Packs `entries` (read from `root`) into `dest`, which must not exist, as a
 * stream: each file is read in 1 MiB pieces that are hashed and compressed as
 * they pass, so memory stays bounded whatever the file sizes (a 2 GB sparse
 * file included), and nothing is decompressed again afterwards. Every piece is
 * checked against the manifest while it is packed: a file that changed since
 * it was hashed (size, content, a symlink's target) stops the build, since it
 * would otherwise hide under a key that does not describe it. Directories are
 * implied by paths, so empty directories are not kept.
 */
export async function writeArchive(
  root: string,
  entries: readonly BundleEntry[],
  dest: string,
): Promise<{ bytes: number; sha256: string }> {
  const gzip = createGzip({ level: 6 });
  const digest = createHash("sha256");
  let bytes = 0;
  const measure = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (bytes === 0 && chunk.length > GZIP_OS_OFFSET) chunk[GZIP_OS_OFFSET] = GZIP_OS_UNKNOWN;
      digest.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  const out = createWriteStream(dest, { flags: "wx", mode: 0o644 });
  const written = pipeline(gzip, measure, out);
  // The pipeline's failure is reported once, by `await written` below.
  written.catch(() => {});
  const write = async (chunk: Buffer): Promise<void> => {
    if (!gzip.write(chunk)) await once(gzip, "drain");
  };
  try {
    for (const entry of entries) {
      if (entry.type === "symlink") await packSymlink(root, entry, write);
      else await packFile(root, entry, write);
    }
    // End of archive: two zero blocks.
    await write(Buffer.alloc(2 * BLOCK));
    gzip.end();
    await written;
  } catch (error) {
    gzip.destroy();
    await written.catch(() => {});
    if (isRunctlError(error)) throw error;
    throw changedDuringBuild(root, error);
  }
  return { bytes, sha256: digest.digest("hex") };
}

type Write = (chunk: Buffer) => Promise<void>;

/** The tar header (with a pax header before it when a field does not fit ustar). */
function headerBlocks(data: {
  path: string;
  type: "File" | "SymbolicLink";
  mode: number;
  size: number;
  linkpath?: string;
}): Buffer {
  const fields = { ...data, mtime: ARCHIVE_MTIME };
  const header = new tar.Header(fields);
  const needPax = header.encode();
  const block = header.block as Buffer;
  if (!needPax) return block;
  const pax = new tar.Pax({
    path: data.path,
    mtime: ARCHIVE_MTIME,
    size: data.size,
    ...(data.linkpath === undefined ? {} : { linkpath: data.linkpath }),
  }).encode();
  return Buffer.concat([pax, block]);
}

async function packSymlink(
  root: string,
  entry: BundleEntry & { type: "symlink" },
  write: Write,
): Promise<void> {
  const target = await readlink(path.join(root, entry.path));
  if (target !== entry.target) throw changedDuringBuild(root, undefined, entry.path);
  await write(
    headerBlocks({ path: entry.path, type: "SymbolicLink", mode: 0o777, size: 0, linkpath: target }),
  );
}

async function packFile(root: string, entry: BundleEntry & { type: "file" }, write: Write): Promise<void> {
  const handle = await open(path.join(root, entry.path), constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    if (!(await handle.stat()).isFile()) throw changedDuringBuild(root, undefined, entry.path);
    await write(headerBlocks({ path: entry.path, type: "File", mode: entry.mode, size: entry.size }));
    const hash = createHash("sha256");
    let done = 0;
    for (;;) {
      // A fresh buffer per read: gzip may still hold the previous one.
      const chunk = Buffer.allocUnsafe(READ_BYTES);
      const { bytesRead } = await handle.read(chunk, 0, READ_BYTES, null);
      if (bytesRead === 0) break;
      done += bytesRead;
      if (done > entry.size) throw changedDuringBuild(root, undefined, entry.path);
      const piece = chunk.subarray(0, bytesRead);
      hash.update(piece);
      await write(piece);
    }
    if (done !== entry.size || hash.digest("hex") !== entry.sha256) {
      throw changedDuringBuild(root, undefined, entry.path);
    }
    const pad = (BLOCK - (entry.size % BLOCK)) % BLOCK;
    if (pad > 0) await write(Buffer.alloc(pad));
  } finally {
    await handle.close();
  }
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
    // Our own archives: a file of zeros legitimately compresses over 1000:1.
    maxDecompressionRatio: Number.POSITIVE_INFINITY,
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
