/**
 * `runctl s3 cleanup --keep-last-n N`: under a checkpoint prefix, keep the newest N checkpoints
 * and delete the rest. A checkpoint is an object directly under the prefix with a checkpoint
 * extension, or a "directory" (such as a Hugging Face `checkpoint-500/`) holding at least one
 * such file, which counts as one checkpoint; anything else (logs, configs) is never touched.
 * Newest means the highest step number in the name when every checkpoint has one, else the
 * latest upload.
 */
import { basename } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import { deleteKeys, listAll, type RemoteObject } from "./object-transfer.ts";
import { directoryPrefix, type S3Location } from "./s3-url.ts";

export const CHECKPOINT_EXTENSIONS = [".pt", ".pth", ".ckpt", ".safetensors", ".bin"] as const;

export interface S3Checkpoint {
  /** File name or directory name (with a trailing `/`) under the prefix. */
  name: string;
  keys: string[];
  bytes: number;
  /** ISO 8601: the newest object in it. */
  modified: string;
}

export interface S3CleanupPlan {
  prefix: string;
  keep: S3Checkpoint[];
  delete: S3Checkpoint[];
  bytes: number;
}

function isCheckpointFile(key: string): boolean {
  const name = basename(key).toLowerCase();
  return CHECKPOINT_EXTENSIONS.some((ext) => name.endsWith(ext));
}

const naturalOrder = new Intl.Collator("en", { numeric: true });

function lastNumber(name: string): number | undefined {
  const all = name.match(/\d+/g);
  return all ? Number(all[all.length - 1]) : undefined;
}

export async function planS3Cleanup(
  client: S3Client,
  location: S3Location,
  keepLastN: number,
): Promise<S3CleanupPlan> {
  const root = directoryPrefix(location.prefix);
  const { objects } = await listAll(client, location.bucket, root);
  const groups = new Map<string, RemoteObject[]>();
  for (const o of objects) {
    const rel = o.key.slice(root.length);
    const slash = rel.indexOf("/");
    const name = slash === -1 ? rel : rel.slice(0, slash + 1);
    if (name === "") continue;
    const list = groups.get(name) ?? [];
    list.push(o);
    groups.set(name, list);
  }
  const checkpoints: S3Checkpoint[] = [];
  for (const [name, list] of groups) {
    const isDir = name.endsWith("/");
    if (isDir ? !list.some((o) => isCheckpointFile(o.key)) : !isCheckpointFile(name)) continue;
    checkpoints.push({
      name,
      keys: list.map((o) => o.key),
      bytes: list.reduce((n, o) => n + o.size, 0),
      modified: list.reduce((m, o) => (o.modified > m ? o.modified : m), ""),
    });
  }
  // Newest first. Upload times say little (a sync sends files in any order), so when every
  // name carries a number (step-400.pt, checkpoint-500/) the last number decides; else time.
  const byStep = checkpoints.every((c) => lastNumber(c.name) !== undefined);
  const byTime = (a: S3Checkpoint, b: S3Checkpoint) =>
    a.modified === b.modified ? naturalOrder.compare(b.name, a.name) : a.modified < b.modified ? 1 : -1;
  checkpoints.sort((a, b) => {
    if (!byStep) return byTime(a, b);
    const d = (lastNumber(b.name) as number) - (lastNumber(a.name) as number);
    return d !== 0 ? d : byTime(a, b);
  });
  const keep = checkpoints.slice(0, keepLastN);
  const remove = checkpoints.slice(keepLastN);
  return { prefix: root, keep, delete: remove, bytes: remove.reduce((n, c) => n + c.bytes, 0) };
}

export async function applyS3Cleanup(
  client: S3Client,
  location: S3Location,
  plan: S3CleanupPlan,
): Promise<void> {
  await deleteKeys(
    client,
    location.bucket,
    plan.delete.flatMap((c) => c.keys),
  );
}
