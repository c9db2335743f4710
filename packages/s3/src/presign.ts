/**
 * Short-lived access without credentials: presigned GET and PUT URLs, and a POST policy that
 * may write only under one key prefix, up to a size, until it expires (what a remote agent
 * holds instead of a key).
 */
import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { createPresignedPost } from "@aws-sdk/s3-presigned-post";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import type { PresignedPost } from "@runctl/core";
import { z } from "zod";

/** SigV4 presigned requests live at most 7 days. */
export const MAX_PRESIGN_SECONDS = 604_800;

export const ExpiresInSeconds = z.number().int().min(1).max(MAX_PRESIGN_SECONDS);

export function presignGetUrl(
  client: S3Client,
  bucket: string,
  key: string,
  expiresInSeconds: number,
): Promise<string> {
  return getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: key }), {
    expiresIn: ExpiresInSeconds.parse(expiresInSeconds),
  });
}

export function presignPutUrl(
  client: S3Client,
  bucket: string,
  key: string,
  expiresInSeconds: number,
): Promise<string> {
  return getSignedUrl(client, new PutObjectCommand({ Bucket: bucket, Key: key }), {
    expiresIn: ExpiresInSeconds.parse(expiresInSeconds),
  });
}

const PostResult = z.object({ url: z.string().url(), fields: z.record(z.string(), z.string()) });

export async function presignPostPolicy(
  client: S3Client,
  bucket: string,
  keyPrefix: string,
  options: { expiresInSeconds: number; maxBytes: number },
): Promise<PresignedPost> {
  const expiresIn = ExpiresInSeconds.parse(options.expiresInSeconds);
  const maxBytes = z.number().int().min(0).parse(options.maxBytes);
  const post = PostResult.parse(
    // s3-presigned-post pins its own client-s3 copy; the client is structurally the same.
    await createPresignedPost(client as unknown as Parameters<typeof createPresignedPost>[0], {
      Bucket: bucket,
      // S3 replaces ${filename} with the uploaded file's name; senders overwrite `key` anyway.
      Key: `${keyPrefix}\${filename}`,
      Conditions: [
        ["starts-with", "$key", keyPrefix],
        ["content-length-range", 0, maxBytes],
      ],
      Expires: expiresIn,
    }),
  );
  return {
    url: post.url,
    fields: post.fields,
    keyPrefix,
    maxBytes,
    expiresAt: new Date(Date.now() + expiresIn * 1000).toISOString(),
  };
}
