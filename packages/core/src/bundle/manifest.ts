/**
 * The manifest is what a bundle's key is computed from: relative paths, modes
 * normalised to 644/755, link targets and content hashes. Nothing about the
 * checkout (mtime, owner, absolute path, readdir order) reaches it, so two
 * checkouts of one commit share a key and an upload.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { z } from "zod";
import type { BundleFile } from "./select.ts";
import { comparePaths } from "./select.ts";

export const Sha256HexSchema = z.string().regex(/^[0-9a-f]{64}$/, "expected a lowercase sha256 hex digest");

export const BundleEntrySchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("file"),
    path: z.string().min(1),
    mode: z.union([z.literal(0o644), z.literal(0o755)]),
    size: z.number().int().nonnegative(),
    sha256: Sha256HexSchema,
  }),
  z.object({ type: z.literal("symlink"), path: z.string().min(1), target: z.string().min(1) }),
]);
export type BundleEntry = z.infer<typeof BundleEntrySchema>;

export interface BundleManifest {
  /** Sorted by path in code-unit order. */
  entries: BundleEntry[];
  /** sha256 hex of {@link canonicalManifest}. */
  key: string;
}

/** Bumped whenever the manifest or the archive layout changes, so old cache entries stop matching. */
export const BUNDLE_FORMAT = "runctl-bundle/1";

/**
 * The exact bytes the key hashes: a format line, then one JSON array per entry
 * in path order. JSON escaping makes any path (newlines, tabs) unambiguous, and
 * arrays avoid depending on object key order. Written down so another
 * implementation can reproduce a key.
 */
export function canonicalManifest(entries: readonly BundleEntry[]): string {
  const lines = [...entries]
    .sort((a, b) => comparePaths(a.path, b.path))
    .map((e) =>
      e.type === "file"
        ? JSON.stringify(["file", e.path, e.mode, e.size, e.sha256])
        : JSON.stringify(["symlink", e.path, e.target]),
    );
  return `${BUNDLE_FORMAT}\n${lines.map((l) => `${l}\n`).join("")}`;
}

export function manifestKey(entries: readonly BundleEntry[]): string {
  return createHash("sha256").update(canonicalManifest(entries)).digest("hex");
}

/** Streams a file through sha256 so a multi-gigabyte file costs no memory. */
export async function hashFile(file: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    const bytes = chunk as Buffer;
    hash.update(bytes);
    size += bytes.length;
  }
  return { sha256: hash.digest("hex"), size };
}

/** Enough parallel reads to keep an SSD busy without exhausting file descriptors. */
const HASH_CONCURRENCY = 8;

/**
 * Hashes the selected files and derives the key. The size recorded is the
 * number of bytes hashed, so the entry always describes the content it names
 * even if the file changed after selection.
 */
export async function bundleManifest(files: readonly BundleFile[]): Promise<BundleManifest> {
  const entries: BundleEntry[] = new Array(files.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const index = next++;
      const file = files[index];
      if (file === undefined) continue;
      if (file.type === "symlink") {
        entries[index] = { type: "symlink", path: file.path, target: file.target };
        continue;
      }
      const { sha256, size } = await hashFile(file.absolutePath);
      entries[index] = { type: "file", path: file.path, mode: file.mode, size, sha256 };
    }
  };
  await Promise.all(Array.from({ length: Math.min(HASH_CONCURRENCY, files.length) }, worker));
  entries.sort((a, b) => comparePaths(a.path, b.path));
  return { entries, key: manifestKey(entries) };
}
