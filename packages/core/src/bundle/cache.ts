/**
 * The local bundle cache: `<cacheDir>/<key>.tar.gz` plus a small
 * `<key>.json` remembering the archive's own sha256, so a cache hit costs
 * neither a repack nor a re-read of the archive.
 */
import { randomUUID } from "node:crypto";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { hashFile, Sha256HexSchema } from "./manifest.ts";

const CacheRecordSchema = z.object({
  key: Sha256HexSchema,
  archiveBytes: z.number().int().nonnegative(),
  archiveSha256: Sha256HexSchema,
});
type CacheRecord = z.infer<typeof CacheRecordSchema>;

export interface CachedArchive {
  archivePath: string;
  archiveBytes: number;
  archiveSha256: string;
}

export function archivePathFor(cacheDir: string, key: string): string {
  return path.join(cacheDir, `${key}.tar.gz`);
}

function recordPathFor(cacheDir: string, key: string): string {
  return path.join(cacheDir, `${key}.json`);
}

/** Names temporaries with a leading dot so a listing of the cache shows only finished archives. */
function tempPathFor(cacheDir: string, key: string, suffix: string): string {
  return path.join(cacheDir, `.${key}.${process.pid}.${randomUUID()}${suffix}`);
}

async function writeAtomically(dest: string, temp: string, data: string): Promise<void> {
  try {
    await writeFile(temp, data, { flag: "wx" });
    await rename(temp, dest);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

async function readRecord(cacheDir: string, key: string): Promise<CacheRecord | undefined> {
  let text: string;
  try {
    text = await readFile(recordPathFor(cacheDir, key), "utf8");
  } catch {
    return undefined;
  }
  try {
    const parsed = CacheRecordSchema.safeParse(JSON.parse(text));
    return parsed.success && parsed.data.key === key ? parsed.data : undefined;
  } catch {
    // A torn or hand-edited record is only a cache miss for the digest; it is rebuilt below.
    return undefined;
  }
}

async function writeRecord(cacheDir: string, record: CacheRecord): Promise<void> {
  const dest = recordPathFor(cacheDir, record.key);
  await writeAtomically(dest, tempPathFor(cacheDir, record.key, ".json.tmp"), `${JSON.stringify(record)}\n`);
}

/** The cached archive for `key`, or undefined. Never rewrites the archive itself. */
export async function lookupArchive(cacheDir: string, key: string): Promise<CachedArchive | undefined> {
  const archivePath = archivePathFor(cacheDir, key);
  let size: number;
  try {
    const info = await stat(archivePath);
    if (!info.isFile()) return undefined;
    size = info.size;
  } catch {
    return undefined;
  }
  const record = await readRecord(cacheDir, key);
  if (record !== undefined && record.archiveBytes === size) {
    return { archivePath, archiveBytes: size, archiveSha256: record.archiveSha256 };
  }
  // Archives only ever appear by rename, so one without a record is complete; its record was lost.
  const { sha256, size: bytes } = await hashFile(archivePath);
  await writeRecord(cacheDir, { key, archiveBytes: bytes, archiveSha256: sha256 });
  return { archivePath, archiveBytes: bytes, archiveSha256: sha256 };
}

/**
 * Runs `write` against a temporary file in `cacheDir` and renames it to the
 * key's name only when it succeeded, so a crash or a failed verification never
 * leaves a half archive under a name a later build would trust.
 */
export async function storeArchive(
  cacheDir: string,
  key: string,
  write: (tempPath: string) => Promise<{ bytes: number; sha256: string }>,
): Promise<CachedArchive> {
  await mkdir(cacheDir, { recursive: true });
  const temp = tempPathFor(cacheDir, key, ".tar.gz.tmp");
  const archivePath = archivePathFor(cacheDir, key);
  let result: { bytes: number; sha256: string };
  try {
    result = await write(temp);
    await rename(temp, archivePath);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await writeRecord(cacheDir, { key, archiveBytes: result.bytes, archiveSha256: result.sha256 });
  return { archivePath, archiveBytes: result.bytes, archiveSha256: result.sha256 };
}
