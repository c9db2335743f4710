/**
 * The emulator's objects on disk. Each object is a data file plus a JSON record naming it; the
 * record's rename is the commit, so a reader sees the old object or the new one, never a mix,
 * and an upload that dies leaves only a temporary file. An in-memory index (rebuilt from the
 * records at start) answers HEAD and listings without touching the disk.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { crc32 } from "node:zlib";
import { z } from "zod";
import { noSuchBucket, noSuchUpload, preconditionFailed, S3Failure } from "./s3-failure.ts";

export const ObjectRecord = z.strictObject({
  key: z.string(),
  size: z.number().int().nonnegative(),
  etag: z.string(),
  lastModified: z.string(),
  contentType: z.string(),
  metadata: z.record(z.string(), z.string()),
  checksums: z.record(z.string(), z.string()),
  dataFile: z.string(),
});
export type ObjectRecord = z.infer<typeof ObjectRecord>;

const UploadRecord = z.strictObject({
  uploadId: z.string(),
  bucket: z.string(),
  key: z.string(),
  initiated: z.string(),
  contentType: z.string(),
  metadata: z.record(z.string(), z.string()),
});
type UploadRecord = z.infer<typeof UploadRecord>;

export interface PartRecord {
  partNumber: number;
  etag: string;
  size: number;
  md5: Buffer;
  lastModified: string;
  dataFile: string;
}

/** A body written to a temporary file, with the digests S3 can be asked to check. */
export interface IngestedBody {
  path: string;
  size: number;
  md5: Buffer;
  sha256: string;
  crc32: number;
}

export interface WriteCondition {
  ifNoneMatch?: string;
  ifMatch?: string;
}

export interface ListResult {
  objects: ObjectRecord[];
  prefixes: string[];
  truncated: boolean;
  /** Last key or common prefix returned: where a continuation starts after. */
  last: string | undefined;
}

export const MIN_PART_SIZE = 5 * 1024 * 1024;

export class ObjectStore {
  private readonly buckets = new Map<string, Map<string, ObjectRecord>>();
  private readonly sorted = new Map<string, string[] | undefined>();
  private readonly uploads = new Map<string, { record: UploadRecord; parts: Map<number, PartRecord> }>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly tmpDir: string;

  constructor(readonly dataDir: string) {
    this.tmpDir = join(dataDir, "tmp");
  }

  async open(buckets: readonly string[]): Promise<void> {
    // Whatever is in tmp/ belongs to requests that died with a previous emulator.
    await rm(this.tmpDir, { recursive: true, force: true });
    await mkdir(this.tmpDir, { recursive: true });
    await mkdir(join(this.dataDir, "buckets"), { recursive: true });
    await mkdir(join(this.dataDir, "uploads"), { recursive: true });
    for (const bucket of await readdir(join(this.dataDir, "buckets"))) {
      const index = new Map<string, ObjectRecord>();
      const dir = join(this.dataDir, "buckets", bucket);
      for (const name of await readdir(dir)) {
        if (!name.endsWith(".json")) continue;
        const record = ObjectRecord.parse(JSON.parse(await readFile(join(dir, name), "utf8")));
        index.set(record.key, record);
      }
      this.buckets.set(bucket, index);
    }
    for (const id of await readdir(join(this.dataDir, "uploads"))) {
      const dir = join(this.dataDir, "uploads", id);
      const raw = await readFile(join(dir, "upload.json"), "utf8").catch(() => undefined);
      if (raw === undefined) continue;
      const parts = new Map<number, PartRecord>();
      for (const name of await readdir(dir)) {
        const m = /^part-(\d+)\.json$/.exec(name);
        if (!m) continue;
        const p = JSON.parse(await readFile(join(dir, name), "utf8")) as Omit<PartRecord, "md5"> & {
          md5: string;
        };
        parts.set(p.partNumber, { ...p, md5: Buffer.from(p.md5, "hex") });
      }
      this.uploads.set(id, { record: UploadRecord.parse(JSON.parse(raw)), parts });
    }
    for (const bucket of buckets) await this.createBucket(bucket);
  }

  async createBucket(bucket: string): Promise<void> {
    if (this.buckets.has(bucket)) return;
    await mkdir(join(this.dataDir, "buckets", bucket), { recursive: true });
    this.buckets.set(bucket, new Map());
  }

  private index(bucket: string): Map<string, ObjectRecord> {
    const index = this.buckets.get(bucket);
    if (index === undefined) throw noSuchBucket(bucket);
    return index;
  }

  requireBucket(bucket: string): void {
    this.index(bucket);
  }

  head(bucket: string, key: string): ObjectRecord | undefined {
    return this.index(bucket).get(key);
  }

  dataPath(bucket: string, record: ObjectRecord): string {
    return join(this.dataDir, "buckets", bucket, record.dataFile);
  }

  openRead(bucket: string, record: ObjectRecord, range?: { start: number; end: number }): Readable {
    return createReadStream(this.dataPath(bucket, record), range);
  }

  /** Streams a body to a temporary file, computing MD5 (the ETag), SHA-256 and CRC32 on the way. */
  async ingest(body: AsyncIterable<Buffer>): Promise<IngestedBody> {
    const path = join(this.tmpDir, randomUUID());
    const md5 = createHash("md5");
    const sha = createHash("sha256");
    let crc = 0;
    let size = 0;
    try {
      await pipeline(
        body,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            md5.update(chunk);
            sha.update(chunk);
            crc = crc32(chunk, crc);
            size += chunk.length;
            yield chunk;
          }
        },
        createWriteStream(path),
      );
    } catch (error) {
      await rm(path, { force: true });
      throw error;
    }
    return { path, size, md5: md5.digest(), sha256: sha.digest("hex"), crc32: crc };
  }

  /** Stores a local file under `key` as a PUT would (for seeding: the Node mirror). */
  async putFile(bucket: string, key: string, path: string, contentType: string): Promise<ObjectRecord> {
    this.requireBucket(bucket);
    const body = await this.ingest(createReadStream(path));
    return this.commit(bucket, key, body.path, {
      size: body.size,
      etag: `"${body.md5.toString("hex")}"`,
      contentType,
      metadata: {},
      checksums: {},
    });
  }

  async discard(body: IngestedBody): Promise<void> {
    await rm(body.path, { force: true });
  }

  /** Serialises writers of one key so a conditional write's check and commit are one step. */
  private async locked<T>(lockKey: string, body: () => Promise<T>): Promise<T> {
    const before = this.locks.get(lockKey) ?? Promise.resolve();
    const run = before.then(body, body);
    const tail = run.catch(() => undefined);
    this.locks.set(lockKey, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(lockKey) === tail) this.locks.delete(lockKey);
    }
  }

  async commit(
    bucket: string,
    key: string,
    tmpPath: string,
    fields: Omit<ObjectRecord, "key" | "dataFile" | "lastModified">,
    condition: WriteCondition = {},
  ): Promise<ObjectRecord> {
    const index = this.index(bucket);
    return this.locked(`${bucket}/${key}`, async () => {
      const existing = index.get(key);
      checkWriteCondition(existing, condition, key);
      const id = createHash("sha256").update(key).digest("hex");
      const dataFile = `${id}.${randomBytes(6).toString("hex")}.data`;
      const dir = join(this.dataDir, "buckets", bucket);
      const record: ObjectRecord = { ...fields, key, dataFile, lastModified: new Date().toISOString() };
      await rename(tmpPath, join(dir, dataFile));
      const recordTmp = join(this.tmpDir, `${randomUUID()}.json`);
      await writeFile(recordTmp, JSON.stringify(record));
      await rename(recordTmp, join(dir, `${id}.json`));
      index.set(key, record);
      this.sorted.set(bucket, undefined);
      // Readers that opened the old data file keep their descriptor; unlinking is safe.
      if (existing) await rm(join(dir, existing.dataFile), { force: true });
      return record;
    });
  }

  async delete(bucket: string, key: string): Promise<void> {
    const index = this.index(bucket);
    await this.locked(`${bucket}/${key}`, async () => {
      const existing = index.get(key);
      if (!existing) return;
      const dir = join(this.dataDir, "buckets", bucket);
      const id = createHash("sha256").update(key).digest("hex");
      await rm(join(dir, `${id}.json`), { force: true });
      index.delete(key);
      this.sorted.set(bucket, undefined);
      await rm(join(dir, existing.dataFile), { force: true });
    });
  }

  list(
    bucket: string,
    options: { prefix: string; delimiter: string; after: string; maxKeys: number },
  ): ListResult {
    const index = this.index(bucket);
    let keys = this.sorted.get(bucket);
    if (keys === undefined) {
      // Code-unit order is S3's order (UTF-8 byte order agrees for the BMP).
      keys = [...index.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      this.sorted.set(bucket, keys);
    }
    const objects: ObjectRecord[] = [];
    const prefixes: string[] = [];
    let last: string | undefined;
    const start = lowerBound(keys, options.prefix > options.after ? options.prefix : options.after);
    let truncated = false;
    for (let i = start; i < keys.length; i++) {
      const key = keys[i] as string;
      if (!key.startsWith(options.prefix)) break;
      if (key <= options.after) continue;
      if (options.delimiter !== "") {
        const at = key.indexOf(options.delimiter, options.prefix.length);
        if (at !== -1) {
          const common = key.slice(0, at + options.delimiter.length);
          // Skip every key under this common prefix: they roll up into it (returned on an
          // earlier page when the continuation starts after it).
          i = lowerBound(keys, `${common}\u{10FFFF}`) - 1;
          if (common <= options.after) continue;
          if (objects.length + prefixes.length >= options.maxKeys) {
            truncated = true;
            break;
          }
          prefixes.push(common);
          last = common;
          continue;
        }
      }
      if (objects.length + prefixes.length >= options.maxKeys) {
        truncated = true;
        break;
      }
      objects.push(index.get(key) as ObjectRecord);
      last = key;
    }
    if (options.maxKeys === 0) truncated = false;
    return { objects, prefixes, truncated, last };
  }

  // --- multipart ---

  async createUpload(bucket: string, key: string, contentType: string, metadata: Record<string, string>) {
    this.index(bucket);
    const record: UploadRecord = {
      uploadId: randomBytes(24).toString("base64url"),
      bucket,
      key,
      initiated: new Date().toISOString(),
      contentType,
      metadata,
    };
    const dir = join(this.dataDir, "uploads", record.uploadId);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "upload.json"), JSON.stringify(record));
    this.uploads.set(record.uploadId, { record, parts: new Map() });
    return record;
  }

  upload(bucket: string, key: string, uploadId: string) {
    const upload = this.uploads.get(uploadId);
    if (!upload || upload.record.bucket !== bucket || upload.record.key !== key) throw noSuchUpload(uploadId);
    return upload;
  }

  listUploads(bucket: string, prefix: string): UploadRecord[] {
    this.index(bucket);
    return [...this.uploads.values()]
      .map((u) => u.record)
      .filter((r) => r.bucket === bucket && r.key.startsWith(prefix))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.initiated.localeCompare(b.initiated)));
  }

  async putPart(bucket: string, key: string, uploadId: string, partNumber: number, body: IngestedBody) {
    const upload = this.upload(bucket, key, uploadId);
    const dir = join(this.dataDir, "uploads", uploadId);
    const dataFile = `part-${partNumber}.${randomBytes(6).toString("hex")}.data`;
    await rename(body.path, join(dir, dataFile));
    const part: PartRecord = {
      partNumber,
      etag: `"${body.md5.toString("hex")}"`,
      size: body.size,
      md5: body.md5,
      lastModified: new Date().toISOString(),
      dataFile,
    };
    const previous = upload.parts.get(partNumber);
    upload.parts.set(partNumber, part);
    await writeFile(
      join(dir, `part-${partNumber}.json`),
      JSON.stringify({ ...part, md5: body.md5.toString("hex") }),
    );
    if (previous) await rm(join(dir, previous.dataFile), { force: true });
    return part;
  }

  async abortUpload(bucket: string, key: string, uploadId: string): Promise<void> {
    this.upload(bucket, key, uploadId);
    this.uploads.delete(uploadId);
    await rm(join(this.dataDir, "uploads", uploadId), { recursive: true, force: true });
  }

  /** Checks the client's part list against what was uploaded, then joins the parts into one object. */
  async completeUpload(
    bucket: string,
    key: string,
    uploadId: string,
    requested: Array<{ partNumber: number; etag: string }>,
    condition: WriteCondition,
  ): Promise<ObjectRecord> {
    const upload = this.upload(bucket, key, uploadId);
    if (requested.length === 0) {
      throw new S3Failure(400, "MalformedXML", "You must specify at least one part");
    }
    const chosen: PartRecord[] = [];
    let previous = 0;
    for (const want of requested) {
      if (want.partNumber <= previous) {
        throw new S3Failure(400, "InvalidPartOrder", "The list of parts was not in ascending order.");
      }
      previous = want.partNumber;
      const part = upload.parts.get(want.partNumber);
      if (!part || normaliseEtag(part.etag) !== normaliseEtag(want.etag)) {
        throw new S3Failure(
          400,
          "InvalidPart",
          "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
          { UploadId: uploadId, PartNumber: String(want.partNumber), ETag: want.etag },
        );
      }
      chosen.push(part);
    }
    chosen.forEach((part, i) => {
      if (i < chosen.length - 1 && part.size < MIN_PART_SIZE) {
        throw new S3Failure(
          400,
          "EntityTooSmall",
          "Your proposed upload is smaller than the minimum allowed object size.",
          {
            ProposedSize: String(part.size),
            MinSizeAllowed: String(MIN_PART_SIZE),
            PartNumber: String(part.partNumber),
            ETag: part.etag,
          },
        );
      }
    });
    checkWriteCondition(this.index(bucket).get(key), condition, key);
    const dir = join(this.dataDir, "uploads", uploadId);
    const joined = join(this.tmpDir, randomUUID());
    const out = createWriteStream(joined);
    try {
      for (const part of chosen) {
        await pipeline(createReadStream(join(dir, part.dataFile)), out, { end: false });
      }
      await new Promise<void>((resolve, reject) =>
        out.end((error?: Error | null) => (error ? reject(error) : resolve())),
      );
    } catch (error) {
      out.destroy();
      await rm(joined, { force: true });
      throw error;
    }
    const etagHash = createHash("md5");
    for (const part of chosen) etagHash.update(part.md5);
    const record = await this.commit(
      bucket,
      key,
      joined,
      {
        size: chosen.reduce((n, p) => n + p.size, 0),
        etag: `"${etagHash.digest("hex")}-${chosen.length}"`,
        contentType: upload.record.contentType,
        metadata: upload.record.metadata,
        checksums: {},
      },
      condition,
    );
    this.uploads.delete(uploadId);
    await rm(dir, { recursive: true, force: true });
    return record;
  }
}

function normaliseEtag(etag: string): string {
  return etag.replace(/^"|"$/g, "");
}

export function checkWriteCondition(
  existing: ObjectRecord | undefined,
  condition: WriteCondition,
  key: string,
): void {
  if (condition.ifNoneMatch !== undefined) {
    if (condition.ifNoneMatch !== "*") {
      throw new S3Failure(501, "NotImplemented", "If-None-Match on writes accepts only *");
    }
    if (existing) throw preconditionFailed("If-None-Match");
  }
  if (condition.ifMatch !== undefined) {
    if (!existing) throw new S3Failure(404, "NoSuchKey", "The specified key does not exist.", { Key: key });
    if (condition.ifMatch !== "*" && normaliseEtag(condition.ifMatch) !== normaliseEtag(existing.etag)) {
      throw preconditionFailed("If-Match");
    }
  }
}

function lowerBound(keys: readonly string[], target: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((keys[mid] as string) < target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
