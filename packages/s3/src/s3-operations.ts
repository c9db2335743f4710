/**
 * What `runctl s3 upload | download | ls | rm | presign` do, without flag parsing or printing
 * (those stay in the CLI's thin commands).
 */
import { stat } from "node:fs/promises";
import { basename, join } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import { ProviderError, UserError } from "@runctl/core";
import { digestFile } from "./file-digest.ts";
import {
  deleteKeys,
  downloadFile,
  headObject,
  listAll,
  type RemoteObject,
  SHA256_METADATA,
  uploadFile,
} from "./object-transfer.ts";
import type { ProgressSink } from "./progress.ts";
import { directoryPrefix, formatS3Url, parseS3Url } from "./s3-url.ts";
import { type SyncOptions, type SyncSummary, syncDown, syncUp } from "./sync.ts";

export interface TransferSettings {
  concurrency: number;
  partSizeBytes: number;
  progress?: ProgressSink;
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

function syncOptions(settings: TransferSettings): SyncOptions {
  const options: SyncOptions = {
    concurrency: settings.concurrency,
    partSizeBytes: settings.partSizeBytes,
    force: true,
  };
  if (settings.progress) options.progress = settings.progress;
  return options;
}

/**
 * A file to a key (`s3://b/dir/` appends the file name), or a directory to a prefix: every
 * file is sent, compared with nothing (use sync for that).
 */
export async function uploadPath(
  client: S3Client,
  source: string,
  dest: string,
  settings: TransferSettings,
): Promise<SyncSummary> {
  const location = parseS3Url(dest);
  if (await isDirectory(source)) return syncUp(client, source, location, syncOptions(settings));
  const info = await stat(source).catch(() => undefined);
  if (!info?.isFile()) {
    throw new UserError(`No such file or directory: ${source}`, {
      code: "not_found",
      hint: "Check the local path.",
    });
  }
  const key =
    location.prefix === "" || location.prefix.endsWith("/")
      ? `${location.prefix}${basename(source)}`
      : location.prefix;
  const { sha256 } = await digestFile(source, false, info.size);
  settings.progress?.start(1, info.size);
  let resumed = false;
  try {
    resumed =
      (
        await uploadFile(client, location.bucket, key, source, info.size, {
          partSizeBytes: settings.partSizeBytes,
          queueSize: Math.max(1, Math.min(4, settings.concurrency)),
          metadata: { [SHA256_METADATA]: sha256 },
          onBytes: (n) => settings.progress?.bytes(n),
        })
      ).resumedParts > 0;
    settings.progress?.fileDone();
  } finally {
    settings.progress?.finish();
  }
  const summary = single("up", source, formatS3Url(location, key), basename(source), info.size);
  if (resumed) summary.resumed.push(basename(source));
  return summary;
}

/** A key to a file (into a directory when `dest` is one), or a prefix (`…/`) to a directory. */
export async function downloadPath(
  client: S3Client,
  source: string,
  dest: string,
  settings: TransferSettings,
): Promise<SyncSummary> {
  const location = parseS3Url(source);
  const head =
    location.prefix === "" || location.prefix.endsWith("/")
      ? undefined
      : await headObject(client, location.bucket, location.prefix);
  if (!head) {
    const listing = await listAll(client, location.bucket, directoryPrefix(location.prefix));
    if (listing.objects.length === 0) {
      throw new ProviderError(`Nothing at ${source}`, {
        code: "not_found",
        hint: "List what is there with `runctl s3 ls`.",
        details: { url: source },
      });
    }
    return syncDown(client, location, dest, syncOptions(settings));
  }
  const target =
    (await isDirectory(dest)) || dest.endsWith("/") ? join(dest, basename(location.prefix)) : dest;
  settings.progress?.start(1, head.size);
  try {
    await downloadFile(client, location.bucket, location.prefix, target, (n) => settings.progress?.bytes(n));
    settings.progress?.fileDone();
  } finally {
    settings.progress?.finish();
  }
  return single("down", source, target, basename(location.prefix), head.size);
}

function single(direction: "up" | "down", from: string, to: string, path: string, size: number): SyncSummary {
  return {
    direction,
    from,
    to,
    dryRun: false,
    files: { sent: 1, skipped: 0, deleted: 0 },
    bytes: { sent: size, skipped: 0, deleted: 0 },
    sent: [path],
    deleted: [],
    resumed: [],
  };
}

export interface ListedPath {
  url: string;
  objects: RemoteObject[];
  /** "Directories" one level down (without --recursive). */
  prefixes: string[];
}

export async function listPath(client: S3Client, url: string, recursive: boolean): Promise<ListedPath> {
  const location = parseS3Url(url);
  // `s3://b/runs` lists runs/ and also runs-old/..., as `aws s3 ls` does: a string prefix.
  const listing = await listAll(client, location.bucket, location.prefix, recursive ? undefined : "/");
  return { url, objects: listing.objects, prefixes: listing.prefixes };
}

export interface RemoveResult {
  url: string;
  dryRun: boolean;
  deleted: string[];
  bytes: number;
}

/** One key, or with `recursive` every key under the prefix. */
export async function planRemove(client: S3Client, url: string, recursive: boolean): Promise<RemoteObject[]> {
  const location = parseS3Url(url);
  if (recursive) return (await listAll(client, location.bucket, directoryPrefix(location.prefix))).objects;
  const head = await headObject(client, location.bucket, location.prefix);
  if (!head) {
    throw new ProviderError(`No object at ${url}`, {
      code: "not_found",
      hint: "For everything under a prefix, pass --recursive; list with `runctl s3 ls`.",
      details: { url },
    });
  }
  return [head];
}

export async function removeObjects(
  client: S3Client,
  url: string,
  objects: readonly RemoteObject[],
): Promise<void> {
  await deleteKeys(
    client,
    parseS3Url(url).bucket,
    objects.map((o) => o.key),
  );
}
