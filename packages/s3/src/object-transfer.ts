/**
 * Moving single objects: uploads (one PutObject up to the part size, lib-storage multipart
 * above it), downloads to a temporary name renamed into place, listings and batch deletes.
 * Every S3 response runctl relies on is checked with zod before use.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { ProviderError } from "@runctl/core";
import { z } from "zod";
import { DOWNLOAD_TMP_MARK } from "./local-tree.ts";
import { resumeUpload } from "./multipart-resume.ts";
import { isS3Code } from "./s3-errors.ts";

/** `x-amz-meta-runctl-sha256`: the object's SHA-256 (hex), written by runctl on every upload. */
export const SHA256_METADATA = "runctl-sha256";

export interface RemoteObject {
  key: string;
  size: number;
  etag: string | undefined;
  modified: string;
}

const ListPage = z.object({
  Contents: z
    .array(
      z.object({
        Key: z.string(),
        Size: z.number().int().nonnegative(),
        ETag: z.string().optional(),
        LastModified: z.date().optional(),
      }),
    )
    .optional(),
  CommonPrefixes: z.array(z.object({ Prefix: z.string() })).optional(),
  IsTruncated: z.boolean().optional(),
  NextContinuationToken: z.string().optional(),
});

export interface Listing {
  objects: RemoteObject[];
  prefixes: string[];
}

/** Every object under `prefix` (all pages); with a delimiter, common prefixes too. */
export async function listAll(
  client: S3Client,
  bucket: string,
  prefix: string,
  delimiter?: string,
  pageSize?: number,
): Promise<Listing> {
  const objects: RemoteObject[] = [];
  const prefixes: string[] = [];
  let token: string | undefined;
  do {
    const page = ListPage.parse(
      await client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: prefix,
          ContinuationToken: token,
          Delimiter: delimiter,
          MaxKeys: pageSize,
        }),
      ),
    );
    for (const o of page.Contents ?? []) {
      objects.push({
        key: o.Key,
        size: o.Size,
        etag: o.ETag,
        modified: (o.LastModified ?? new Date(0)).toISOString(),
      });
    }
    for (const p of page.CommonPrefixes ?? []) prefixes.push(p.Prefix);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
    if (page.IsTruncated && token === undefined) {
      throw new ProviderError(
        `S3 listing of s3://${bucket}/${prefix} was truncated without a continuation token`,
        {
          code: "s3_error",
          hint: "The store answered ListObjectsV2 inconsistently; check its compatibility.",
        },
      );
    }
  } while (token !== undefined);
  return { objects, prefixes };
}

const HeadResult = z.object({
  ContentLength: z.number().int().nonnegative().optional(),
  ETag: z.string().optional(),
  LastModified: z.date().optional(),
  Metadata: z.record(z.string(), z.string()).optional(),
});

export interface HeadInfo extends RemoteObject {
  metadata: Record<string, string>;
}

/** HEAD, or undefined when there is no such object. */
export async function headObject(
  client: S3Client,
  bucket: string,
  key: string,
): Promise<HeadInfo | undefined> {
  try {
    const head = HeadResult.parse(await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })));
    return {
      key,
      size: head.ContentLength ?? 0,
      etag: head.ETag,
      modified: (head.LastModified ?? new Date(0)).toISOString(),
      metadata: head.Metadata ?? {},
    };
  } catch (error) {
    if (isS3Code(error, "NotFound", "NoSuchKey")) return undefined;
    throw error;
  }
}

export interface UploadSettings {
  partSizeBytes: number;
  /** Parts of one object in flight at once. */
  queueSize: number;
  metadata?: Record<string, string>;
  ifNoneMatch?: "*";
  /** Called with byte counts as the body is read. */
  onBytes?: (n: number) => void;
}

function counting(onBytes: ((n: number) => void) | undefined): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      onBytes?.(chunk.length);
      done(null, chunk);
    },
  });
}

export interface UploadOutcome {
  etag: string | undefined;
  /** Parts of a killed run's multipart upload that were kept rather than sent again. */
  resumedParts: number;
}

/**
 * Uploads a file. Up to one part it is a single PutObject streamed from disk (atomic on S3);
 * above, a multipart upload, which S3 makes visible only at CompleteMultipartUpload, so a killed
 * upload never shows half an object. A multipart upload of the same key left by a killed run is
 * finished when it can be proven to hold this file's bytes (multipart-resume.ts); otherwise
 * such uploads are aborted, so their parts stop costing storage, and lib-storage starts afresh.
 */
export async function uploadFile(
  client: S3Client,
  bucket: string,
  key: string,
  path: string,
  size: number,
  settings: UploadSettings,
): Promise<UploadOutcome> {
  if (size <= settings.partSizeBytes) {
    const body = createReadStream(path).pipe(counting(settings.onBytes));
    const result = await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: body,
        ContentLength: size,
        Metadata: settings.metadata,
        IfNoneMatch: settings.ifNoneMatch,
      }),
    );
    return { etag: result.ETag, resumedParts: 0 };
  }
  // A create-only write must not complete someone else's upload: it always starts afresh.
  if (settings.ifNoneMatch === undefined) {
    const request = {
      bucket,
      key,
      path,
      size,
      modifiedMs: (await stat(path)).mtimeMs,
      partSizeBytes: settings.partSizeBytes,
      queueSize: settings.queueSize,
      ...(settings.onBytes ? { onBytes: settings.onBytes } : {}),
    };
    const resumed = await resumeUpload(client, request);
    if (resumed) {
      const expected = settings.metadata?.[SHA256_METADATA];
      const head = expected === undefined ? undefined : await headObject(client, bucket, key);
      if (expected === undefined || head?.metadata[SHA256_METADATA] === expected) {
        await abortStaleUploads(client, bucket, key);
        return { etag: resumed.etag, resumedParts: resumed.reusedParts };
      }
    }
  }
  await abortStaleUploads(client, bucket, key);
  const etag = await uploadStream(client, bucket, key, createReadStream(path), settings, size);
  return { etag, resumedParts: 0 };
}

export async function uploadStream(
  client: S3Client,
  bucket: string,
  key: string,
  body: Readable,
  settings: UploadSettings,
  size?: number,
): Promise<string | undefined> {
  const upload = new Upload({
    client,
    queueSize: settings.queueSize,
    partSize: settings.partSizeBytes,
    leavePartsOnError: false,
    params: {
      Bucket: bucket,
      Key: key,
      Body: body.pipe(counting(settings.onBytes)),
      Metadata: settings.metadata,
      IfNoneMatch: settings.ifNoneMatch,
      ...(size === undefined ? {} : { ContentLength: size }),
    },
  });
  const result = await upload.done();
  return (result as { ETag?: string }).ETag;
}

const UploadsPage = z.object({
  Uploads: z.array(z.object({ Key: z.string(), UploadId: z.string() })).optional(),
});

/** Aborts unfinished multipart uploads of exactly `key` (a killed earlier run's). */
export async function abortStaleUploads(client: S3Client, bucket: string, key: string): Promise<number> {
  const page = UploadsPage.parse(
    await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key })),
  );
  let aborted = 0;
  for (const u of page.Uploads ?? []) {
    if (u.Key !== key) continue;
    await client
      .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: u.UploadId }))
      .catch((error: unknown) => {
        if (!isS3Code(error, "NoSuchUpload")) throw error;
      });
    aborted += 1;
  }
  return aborted;
}

const GetResult = z.object({
  Body: z.custom<Readable>((v) => v instanceof Readable, "GetObject returned no readable body"),
  Metadata: z.record(z.string(), z.string()).optional(),
});

export async function getObjectStream(
  client: S3Client,
  bucket: string,
  key: string,
): Promise<{ body: Readable; metadata: Record<string, string> }> {
  const result = GetResult.parse(await client.send(new GetObjectCommand({ Bucket: bucket, Key: key })));
  return { body: result.Body, metadata: result.Metadata ?? {} };
}

/**
 * Downloads to a temporary file beside `dest`, checks the SHA-256 runctl recorded (when
 * there is one), then renames into place: a killed download never leaves half a file.
 */
export async function downloadFile(
  client: S3Client,
  bucket: string,
  key: string,
  dest: string,
  onBytes?: (n: number) => void,
): Promise<void> {
  const { body, metadata } = await getObjectStream(client, bucket, key);
  await mkdir(dirname(dest), { recursive: true });
  const tmp = join(
    dirname(dest),
    `.${basename(dest)}${DOWNLOAD_TMP_MARK}${process.pid}-${Math.random().toString(36).slice(2)}`,
  );
  const sha = createHash("sha256");
  try {
    await pipeline(
      body,
      new Transform({
        transform(chunk: Buffer, _enc, done) {
          sha.update(chunk);
          onBytes?.(chunk.length);
          done(null, chunk);
        },
      }),
      createWriteStream(tmp),
    );
    const expected = metadata[SHA256_METADATA];
    const actual = sha.digest("hex");
    if (expected !== undefined && expected !== actual) {
      throw new ProviderError(`s3://${bucket}/${key} does not match its recorded SHA-256`, {
        code: "s3_corrupt",
        hint: "The object changed during the download or was written without runctl; sync again.",
        details: { expected, actual },
      });
    }
    await rename(tmp, dest);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
}

const DeleteResult = z.object({
  Errors: z
    .array(
      z.object({ Key: z.string().optional(), Code: z.string().optional(), Message: z.string().optional() }),
    )
    .optional(),
});

/** DeleteObjects in batches of 1,000 (S3's limit); any per-key failure is an error. */
export async function deleteKeys(client: S3Client, bucket: string, keys: readonly string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000);
    const result = DeleteResult.parse(
      await client.send(
        new DeleteObjectsCommand({
          Bucket: bucket,
          Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }),
      ),
    );
    const first = result.Errors?.[0];
    if (first) {
      throw Object.assign(new Error(first.Message ?? "DeleteObjects failed"), {
        name: first.Code ?? "DeleteFailed",
        Code: first.Code,
        $metadata: { httpStatusCode: first.Code === "AccessDenied" ? 403 : 500 },
      });
    }
  }
}
