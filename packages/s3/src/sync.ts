/**
 * `runctl s3 sync`: a local directory and an S3 prefix made equal in one direction, moving only
 * what differs. Two files are the same when their sizes match and their contents hash the same:
 * the S3 ETag is compared with the local MD5 where it is a plain MD5 (single-part uploads,
 * no KMS), otherwise the SHA-256 runctl records as `x-amz-meta-runctl-sha256` is read with a
 * HEAD. A no-change re-sync therefore costs one listing plus local hashing, not a HEAD per file.
 */
import { rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import { UserError } from "@runctl/core";
import { digestFile, type FileDigest, plainMd5Etag } from "./file-digest.ts";
import { type LocalFile, type PathFilter, pathFilter, walkLocal } from "./local-tree.ts";
import {
  deleteKeys,
  downloadFile,
  headObject,
  listAll,
  type RemoteObject,
  SHA256_METADATA,
  uploadFile,
} from "./object-transfer.ts";
import { type ProgressSink, silentProgress } from "./progress.ts";
import { directoryPrefix, formatS3Url, isS3Url, parseS3Url, type S3Location } from "./s3-url.ts";
import { forEachConcurrent } from "./task-pool.ts";

export interface SyncOptions {
  /** Remove from the destination what the source no longer has (within the filters). */
  delete?: boolean;
  dryRun?: boolean;
  include?: readonly string[];
  exclude?: readonly string[];
  concurrency: number;
  partSizeBytes: number;
  /** Transfer every file without comparing: `runctl s3 upload|download` of a directory. */
  force?: boolean;
  progress?: ProgressSink;
}

export interface SyncSummary {
  direction: "up" | "down";
  from: string;
  to: string;
  dryRun: boolean;
  files: { sent: number; skipped: number; deleted: number };
  bytes: { sent: number; skipped: number; deleted: number };
  /** Relative paths transferred (or that would be, with --dry-run). */
  sent: string[];
  /** Relative paths deleted from the destination (or that would be). */
  deleted: string[];
  /** Relative paths whose upload finished a multipart upload a killed run had begun. */
  resumed: string[];
}

interface Transfer {
  path: string;
  size: number;
  local?: LocalFile;
  digest?: FileDigest;
}

function emptySummary(direction: "up" | "down", from: string, to: string, dryRun: boolean): SyncSummary {
  return {
    direction,
    from,
    to,
    dryRun,
    files: { sent: 0, skipped: 0, deleted: 0 },
    bytes: { sent: 0, skipped: 0, deleted: 0 },
    sent: [],
    deleted: [],
    resumed: [],
  };
}

/** Relative paths from keys are untrusted: nothing may land outside the destination directory. */
function safeRelative(path: string): boolean {
  return (
    path !== "" && !path.startsWith("/") && path.split("/").every((p) => p !== "" && p !== "." && p !== "..")
  );
}

async function remoteTree(
  client: S3Client,
  location: S3Location,
  filter: PathFilter,
): Promise<Map<string, RemoteObject>> {
  const root = directoryPrefix(location.prefix);
  const listing = await listAll(client, location.bucket, root);
  const out = new Map<string, RemoteObject>();
  for (const o of listing.objects) {
    const path = o.key.slice(root.length);
    // "dir/" placeholder objects made by consoles hold no file.
    if (path === "" || path.endsWith("/")) continue;
    if (filter(path)) out.set(path, o);
  }
  return out;
}

/** Same content? Sizes first; then MD5 against a plain ETag; else the recorded SHA-256 by HEAD. */
async function sameContent(
  client: S3Client,
  bucket: string,
  remote: RemoteObject,
  local: LocalFile,
): Promise<{ same: boolean; digest: FileDigest }> {
  const md5 = plainMd5Etag(remote.etag);
  const digest = await digestFile(local.absolute, md5 !== undefined, local.size);
  if (md5 !== undefined && digest.md5 === md5) return { same: true, digest };
  const head = await headObject(client, bucket, remote.key);
  const recorded = head?.metadata[SHA256_METADATA];
  return { same: recorded !== undefined && recorded === digest.sha256 && head?.size === local.size, digest };
}

export async function syncDirectories(
  client: S3Client,
  from: string,
  to: string,
  options: SyncOptions,
): Promise<SyncSummary> {
  if (isS3Url(from) === isS3Url(to)) {
    throw new UserError(`Sync needs one local directory and one s3:// URL, got ${from} and ${to}`, {
      code: "s3_bad_sync",
      hint: "runctl s3 sync ./dir s3://bucket/prefix (upload) or runctl s3 sync s3://bucket/prefix ./dir (download).",
    });
  }
  return isS3Url(from)
    ? syncDown(client, parseS3Url(from), to, options)
    : syncUp(client, from, parseS3Url(to), options);
}

export async function syncUp(
  client: S3Client,
  dir: string,
  location: S3Location,
  options: SyncOptions,
): Promise<SyncSummary> {
  // A mistyped source would otherwise look like an empty tree, and --delete would empty the prefix.
  if (!(await stat(dir).catch(() => undefined))?.isDirectory()) {
    throw new UserError(`No such directory: ${dir}`, {
      code: "not_found",
      hint: "Check the local path; `runctl s3 upload` sends a single file.",
      details: { path: dir },
    });
  }
  const filter = pathFilter(options.include ?? [], options.exclude ?? []);
  const root = directoryPrefix(location.prefix);
  const to = formatS3Url({ bucket: location.bucket, prefix: root });
  const summary = emptySummary("up", dir, to, options.dryRun ?? false);
  const [local, remote] = await Promise.all([walkLocal(dir, filter), remoteTree(client, location, filter)]);
  const transfers: Transfer[] = [];
  await forEachConcurrent(local, options.concurrency, async (file) => {
    const existing = remote.get(file.path);
    if (!options.force && existing && existing.size === file.size) {
      const { same, digest } = await sameContent(client, location.bucket, existing, file);
      if (same) {
        summary.files.skipped += 1;
        summary.bytes.skipped += file.size;
        return;
      }
      transfers.push({ path: file.path, size: file.size, local: file, digest });
      return;
    }
    transfers.push({ path: file.path, size: file.size, local: file });
  });
  const localPaths = new Set(local.map((f) => f.path));
  const gone = options.delete
    ? [...remote.values()].filter((o) => !localPaths.has(o.key.slice(root.length)))
    : [];
  await execute(
    summary,
    transfers,
    gone.map((o) => ({ path: o.key.slice(root.length), size: o.size })),
    options,
    {
      transfer: async (t, onBytes) => {
        const file = t.local as LocalFile;
        const digest = t.digest ?? (await digestFile(file.absolute, false, file.size));
        const outcome = await uploadFile(
          client,
          location.bucket,
          `${root}${t.path}`,
          file.absolute,
          file.size,
          {
            partSizeBytes: options.partSizeBytes,
            queueSize: Math.max(1, Math.min(4, options.concurrency)),
            metadata: { [SHA256_METADATA]: digest.sha256 },
            onBytes,
          },
        );
        if (outcome.resumedParts > 0) summary.resumed.push(t.path);
      },
      remove: (paths) =>
        deleteKeys(
          client,
          location.bucket,
          paths.map((p) => `${root}${p}`),
        ),
    },
  );
  return summary;
}

export async function syncDown(
  client: S3Client,
  location: S3Location,
  dir: string,
  options: SyncOptions,
): Promise<SyncSummary> {
  const filter = pathFilter(options.include ?? [], options.exclude ?? []);
  const root = directoryPrefix(location.prefix);
  const from = formatS3Url({ bucket: location.bucket, prefix: root });
  const summary = emptySummary("down", from, dir, options.dryRun ?? false);
  const [remote, local] = await Promise.all([remoteTree(client, location, filter), walkLocal(dir, filter)]);
  const localByPath = new Map(local.map((f) => [f.path, f]));
  const unsafe = [...remote.keys()].filter((p) => !safeRelative(p));
  if (unsafe.length > 0) {
    throw new UserError(
      `Refusing to download keys that would land outside ${dir}: ${unsafe.slice(0, 3).join(", ")}`,
      {
        code: "s3_unsafe_key",
        hint: "Exclude them with --exclude, or download those objects one by one with `runctl s3 download`.",
        details: { keys: unsafe.slice(0, 20) },
      },
    );
  }
  const transfers: Transfer[] = [];
  await forEachConcurrent([...remote.entries()], options.concurrency, async ([path, object]) => {
    const existing = localByPath.get(path);
    if (!options.force && existing && existing.size === object.size) {
      if ((await sameContent(client, location.bucket, object, existing)).same) {
        summary.files.skipped += 1;
        summary.bytes.skipped += object.size;
        return;
      }
    }
    transfers.push({ path, size: object.size });
  });
  const gone = options.delete ? local.filter((f) => !remote.has(f.path)) : [];
  await execute(summary, transfers, gone, options, {
    transfer: (t, onBytes) =>
      downloadFile(client, location.bucket, `${root}${t.path}`, join(dir, ...t.path.split("/")), onBytes),
    remove: async (paths) => {
      for (const p of paths) await rm(join(dir, ...p.split("/")), { force: true });
    },
  });
  return summary;
}

async function execute(
  summary: SyncSummary,
  transfers: Transfer[],
  gone: Array<{ path: string; size: number }>,
  options: SyncOptions,
  ops: {
    transfer: (t: Transfer, onBytes: (n: number) => void) => Promise<void>;
    remove: (paths: string[]) => Promise<void>;
  },
): Promise<void> {
  // Sorted so that output and --json are stable whatever order the comparisons finished in.
  transfers.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  // Big files first: they set the critical path; small ones fill the gaps around them.
  const order = [...transfers].sort((a, b) => b.size - a.size);
  summary.sent = transfers.map((t) => t.path);
  summary.files.sent = transfers.length;
  summary.bytes.sent = transfers.reduce((n, t) => n + t.size, 0);
  summary.deleted = gone.map((g) => g.path).sort();
  summary.files.deleted = gone.length;
  summary.bytes.deleted = gone.reduce((n, g) => n + g.size, 0);
  if (options.dryRun) return;
  const progress = options.progress ?? silentProgress;
  progress.start(transfers.length, summary.bytes.sent);
  try {
    await forEachConcurrent(order, options.concurrency, async (t) => {
      await ops.transfer(t, (n) => progress.bytes(n));
      progress.fileDone();
    });
  } finally {
    progress.finish();
  }
  if (gone.length > 0) await ops.remove(summary.deleted);
}
