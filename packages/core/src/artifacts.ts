/**
 * ArtifactStore: where bytes live (code bundles, synced run directories,
 * checkpoints). Keys are relative POSIX paths inside the store; the `file://`
 * store lives here, `s3://` and others come from provider plugins.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { copyFile, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { z } from "zod";
import { UserError } from "./errors.ts";

export const StoredObject = z
  .object({
    key: z.string(),
    size: z.number().int().nonnegative(),
    /** ISO 8601. */
    modified: z.string(),
  })
  .strict();
export type StoredObject = z.infer<typeof StoredObject>;

export interface ArtifactStore {
  /** Store root as a URL, e.g. `file:///data/runctl` or `s3://bucket/prefix`. */
  readonly url: string;
  /** Copies a local file in under `key`; readers never see a partial object. */
  putFile(key: string, sourcePath: string): Promise<StoredObject>;
  putStream(key: string, body: Readable): Promise<StoredObject>;
  getFile(key: string, destPath: string): Promise<void>;
  getStream(key: string): Promise<Readable>;
  head(key: string): Promise<StoredObject | null>;
  list(prefix?: string): Promise<StoredObject[]>;
  delete(key: string): Promise<void>;
}

export type ArtifactStoreFactory = (url: URL) => Promise<ArtifactStore>;

const KEY_SEGMENT = /^[^/\\\0]+$/;

/** Keys are untrusted (they come from run files and CLI flags): no escapes. */
export function assertSafeKey(key: string): void {
  const parts = key.split("/");
  const ok = key.length > 0 && parts.every((p) => KEY_SEGMENT.test(p) && p !== "." && p !== "..");
  if (!ok) {
    throw new UserError(`Invalid artifact key "${key}"`, {
      code: "artifact_bad_key",
      hint: "Keys are relative paths like `bundles/<sha256>.tar.gz`, without `..`, empty segments or a leading `/`.",
    });
  }
}

export class FileArtifactStore implements ArtifactStore {
  readonly url: string;
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.url = pathToFileURL(this.root).href;
  }

  static fromUrl(url: URL): FileArtifactStore {
    if (url.protocol !== "file:") {
      throw new UserError(`Not a file:// URL: ${url.href}`, {
        code: "artifact_bad_url",
        hint: "Use file:///absolute/path for a local store.",
      });
    }
    return new FileArtifactStore(fileURLToPath(url));
  }

  private pathOf(key: string): string {
    assertSafeKey(key);
    const full = join(this.root, ...key.split("/"));
    // Belt and braces against platform path quirks: the result must stay under root.
    if (!full.startsWith(this.root + sep)) {
      throw new UserError(`Artifact key escapes the store: ${key}`, {
        code: "artifact_bad_key",
        hint: "Use a relative key without `..`.",
      });
    }
    return full;
  }

  async putFile(key: string, sourcePath: string): Promise<StoredObject> {
    const dest = this.pathOf(key);
    await mkdir(dirname(dest), { recursive: true });
    const tmp = `${dest}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    try {
      await copyFile(sourcePath, tmp);
      await rename(tmp, dest);
    } catch (error) {
      await rm(tmp, { force: true });
      throw error;
    }
    return this.describe(key, dest);
  }

  async putStream(key: string, body: Readable): Promise<StoredObject> {
    const dest = this.pathOf(key);
    await mkdir(dirname(dest), { recursive: true });
    const tmp = `${dest}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    try {
      await pipeline(body, createWriteStream(tmp));
      await rename(tmp, dest);
    } catch (error) {
      await rm(tmp, { force: true });
      throw error;
    }
    return this.describe(key, dest);
  }

  async getFile(key: string, destPath: string): Promise<void> {
    const src = this.pathOf(key);
    await this.requireExists(key, src);
    await mkdir(dirname(destPath), { recursive: true });
    await copyFile(src, destPath);
  }

  async getStream(key: string): Promise<Readable> {
    const src = this.pathOf(key);
    await this.requireExists(key, src);
    return createReadStream(src);
  }

  async head(key: string): Promise<StoredObject | null> {
    const path = this.pathOf(key);
    try {
      return await this.describe(key, path);
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  async list(prefix = ""): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries: import("node:fs").Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (error) {
        if (isNotFound(error)) return;
        throw error;
      }
      for (const entry of entries) {
        const full = join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else if (entry.isFile() && !entry.name.includes(".tmp-")) {
          const key = relative(this.root, full).split(sep).join("/");
          if (key.startsWith(prefix)) out.push(await this.describe(key, full));
        }
      }
    };
    await walk(this.root);
    return out.sort((a, b) => a.key.localeCompare(b.key));
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }

  private async describe(key: string, path: string): Promise<StoredObject> {
    const s = await stat(path);
    return { key, size: s.size, modified: s.mtime.toISOString() };
  }

  private async requireExists(key: string, path: string): Promise<void> {
    if ((await this.head(key)) === null) {
      throw new UserError(`No artifact "${key}" in ${this.url}`, {
        code: "artifact_not_found",
        hint: "List what the store holds, or check the key and the store URL.",
        details: { key, store: this.url, path },
      });
    }
  }
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}
