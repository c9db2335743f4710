/** `s3://bucket/prefix` URLs: the one place their shape is decided. */
import { UserError } from "@runctl/core";

export interface S3Location {
  bucket: string;
  /** Key prefix without a leading `/`; "" for the bucket root. */
  prefix: string;
}

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function isS3Url(value: string): boolean {
  return value.startsWith("s3://");
}

export function parseS3Url(value: string): S3Location {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(value);
  const bucket = m?.[1];
  if (!m || bucket === undefined || !BUCKET.test(bucket)) {
    throw new UserError(`Not an S3 URL: ${value}`, {
      code: "s3_bad_url",
      hint: "Write s3://BUCKET/optional/prefix; bucket names are 3-63 lower-case letters, digits, dots and hyphens.",
    });
  }
  return { bucket, prefix: m[2] ?? "" };
}

export function formatS3Url(location: S3Location, key = location.prefix): string {
  return `s3://${location.bucket}/${key}`;
}

/** The key of `relative` under `prefix`, with exactly one `/` between them. */
export function keyUnder(prefix: string, relative: string): string {
  if (prefix === "") return relative;
  return prefix.endsWith("/") ? `${prefix}${relative}` : `${prefix}/${relative}`;
}

/** A prefix that names a "directory": `runs/a` → `runs/a/`, "" stays "". */
export function directoryPrefix(prefix: string): string {
  return prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`;
}
