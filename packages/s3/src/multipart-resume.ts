/**
 * Finishing a multipart upload that a killed run left behind, instead of sending the file again.
 * An unfinished upload of the same key is reused only when nothing suggests the file changed
 * since: the file was last modified before the upload began, the part size is the one in use,
 * and every part already there has the size and the MD5 (its ETag) of the same byte range of
 * the file now. Then only the missing parts are sent. After completion the object's recorded
 * SHA-256 (set when the upload began) is compared with the file's; if they differ the caller
 * uploads afresh, so a resumed object never carries a wrong hash for long.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { Transform } from "node:stream";
import {
  CompleteMultipartUploadCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  type S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { z } from "zod";
import { forEachConcurrent } from "./task-pool.ts";

const UploadsPage = z.object({
  Uploads: z
    .array(z.object({ Key: z.string(), UploadId: z.string(), Initiated: z.date().optional() }))
    .optional(),
});

const PartsPage = z.object({
  Parts: z
    .array(z.object({ PartNumber: z.number().int().min(1), ETag: z.string(), Size: z.number().int() }))
    .optional(),
  IsTruncated: z.boolean().optional(),
  NextPartNumberMarker: z.union([z.string(), z.number()]).optional(),
});

export interface ResumeRequest {
  bucket: string;
  key: string;
  path: string;
  size: number;
  /** The file's mtime, ms since the epoch. */
  modifiedMs: number;
  partSizeBytes: number;
  queueSize: number;
  onBytes?: (n: number) => void;
}

export interface Resumed {
  uploadId: string;
  etag: string | undefined;
  /** Parts found already uploaded and kept. */
  reusedParts: number;
}

async function rangeMd5(path: string, start: number, end: number): Promise<string> {
  const hash = createHash("md5");
  for await (const chunk of createReadStream(path, { start, end, highWaterMark: 1024 * 1024 })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest("hex");
}

async function listParts(client: S3Client, bucket: string, key: string, uploadId: string) {
  const parts: Array<{ PartNumber: number; ETag: string; Size: number }> = [];
  let marker: string | undefined;
  for (;;) {
    const page = PartsPage.parse(
      await client.send(
        new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }),
      ),
    );
    parts.push(...(page.Parts ?? []));
    if (!page.IsTruncated || page.NextPartNumberMarker === undefined) return parts;
    marker = String(page.NextPartNumberMarker);
  }
}

/** Completes a reusable stale upload of `key`, or returns undefined when there is none. */
export async function resumeUpload(client: S3Client, request: ResumeRequest): Promise<Resumed | undefined> {
  const { bucket, key, path, size, partSizeBytes } = request;
  const page = UploadsPage.parse(
    await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key })),
  );
  const candidate = (page.Uploads ?? [])
    .filter((u) => u.Key === key && u.Initiated !== undefined && u.Initiated.getTime() > request.modifiedMs)
    .sort((a, b) => (b.Initiated as Date).getTime() - (a.Initiated as Date).getTime())[0];
  if (!candidate) return undefined;
  const count = Math.ceil(size / partSizeBytes);
  const rangeOf = (n: number) => ({
    start: (n - 1) * partSizeBytes,
    end: Math.min(size, n * partSizeBytes) - 1,
  });
  const present = await listParts(client, bucket, key, candidate.UploadId);
  const kept = new Map<number, string>();
  for (const part of present) {
    if (part.PartNumber > count) return undefined;
    const { start, end } = rangeOf(part.PartNumber);
    if (part.Size !== end - start + 1) return undefined;
    if (part.ETag.replace(/"/g, "") !== (await rangeMd5(path, start, end))) return undefined;
    kept.set(part.PartNumber, part.ETag);
  }
  if (kept.size === 0) return undefined;
  for (const n of kept.keys()) {
    const { start, end } = rangeOf(n);
    request.onBytes?.(end - start + 1);
  }
  const missing = Array.from({ length: count }, (_, i) => i + 1).filter((n) => !kept.has(n));
  const etags = new Map(kept);
  await forEachConcurrent(missing, request.queueSize, async (n) => {
    const { start, end } = rangeOf(n);
    // Counted as the SDK reads it; a "data" listener here would start the flow before the SDK pipes.
    const body = createReadStream(path, { start, end }).pipe(
      new Transform({
        transform(chunk: Buffer, _enc, done) {
          request.onBytes?.(chunk.length);
          done(null, chunk);
        },
      }),
    );
    const result = await client.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: key,
        UploadId: candidate.UploadId,
        PartNumber: n,
        Body: body,
        ContentLength: end - start + 1,
      }),
    );
    etags.set(n, z.string().parse(result.ETag));
  });
  const done = await client.send(
    new CompleteMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      UploadId: candidate.UploadId,
      MultipartUpload: {
        Parts: [...etags.entries()]
          .sort((a, b) => a[0] - b[0])
          .map(([PartNumber, ETag]) => ({ PartNumber, ETag })),
      },
    }),
  );
  return { uploadId: candidate.UploadId, etag: done.ETag, reusedParts: kept.size };
}
