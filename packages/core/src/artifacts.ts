/**
 * ArtifactStore: where bytes live (code bundles, synced run directories,
 * checkpoints). Keys are relative POSIX paths inside the store; the `file://`
 * store lives here, `s3://` and others come from provider plugins.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { copyFile, link, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
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
    /** The store's version tag where it has one (S3's ETag); compare for equality only. */
    etag: z.string().optional(),
  })
  .strict();
export type StoredObject = z.infer<typeof StoredObject>;

export interface PutOptions {
  /**
   * `"*"` makes the write create-only: when `key` already holds an object the write fails
   * with code `artifact_exists` and the object is left as it was. The check and the write
   * are one atomic step (S3's `If-None-Match: *`, a hard link on file stores), so two
   * writers racing for one key cannot both win.
   */
  ifNoneMatch?: "*";
  /** Small string metadata kept with the object where the store can (S3 user metadata). */
  metadata?: Record<string, string>;
}

export interface PresignOptions {
  /** How long the URL works, in seconds. */
  expiresInSeconds: number;
}

/** A browser-style POST upload that may only write keys under one prefix. */
export const PresignedPostSchema = z
  .object({
    url: z.url(),
    fields: z.record(z.string(), z.string()),
    keyPrefix: z.string(),
    maxBytes: z.number().int().nonnegative(),
    expiresAt: z.string(),
  })
  .strict();

/** A browser-style POST upload that may only write keys under one prefix. */
export interface PresignedPost {
  url: string;
  /** Form fields to send before the file; set `key` to a key starting with `keyPrefix`. */
  fields: Record<string, string>;
  /** What every form `key` must start with: a full object key prefix, the store's own root included. */
  keyPrefix: string;
  maxBytes: number;
  /** ISO 8601. */
  expiresAt: string;
}

export interface ArtifactStore {
  /** Store root as a URL, e.g. `file:///data/runctl` or `s3://bucket/prefix`. */
  readonly url: string;
  /** Copies a local file in under `key`; readers never see a partial object. */
  putFile(key: string, sourcePath: string, options?: PutOptions): Promise<StoredObject>;
  /** Stores a stream under `key`; readers never see a partial object. */
  putStream(key: string, body: Readable, options?: PutOptions): Promise<StoredObject>;
  getFile(key: string, destPath: string): Promise<void>;
  getStream(key: string): Promise<Readable>;
  head(key: string): Promise<StoredObject | null>;
  /** Every object whose key starts with `prefix` (a string prefix, not a directory), sorted by key. */
  list(prefix?: string): Promise<StoredObject[]>;
  /** Removes `key`; removing a missing key is not an error. */
  delete(key: string): Promise<void>;
  /** Optional capability: a URL that GETs `key` without credentials until it expires. */
  presignGet?(key: string, options: PresignOptions): Promise<string>;
  /** Optional capability: a URL that PUTs `key` without credentials until it expires. */
  presignPut?(key: string, options: PresignOptions): Promise<string>;
  /**
   * Optional capability: a POST policy that lets its holder write any key under `keyPrefix`
   * (and nothing else), up to `maxBytes` each, until it expires: how a remote machine writes
   * its run directory without a long-lived credential.
   */
  presignPost?(keyPrefix: string, options: PresignOptions & { maxBytes: number }): Promise<PresignedPost>;
}

/** The one error for a create-only write that found the key taken, whatever the store. */
export function artifactExistsError(key: string, store: string): UserError {
  return new UserError(`Artifact "${key}" already exists in ${store}`, {
    code: "artifact_exists",
    hint: 'The write was create-only (ifNoneMatch: "*"); pick another key, or delete the existing object first.',
    details: { key, store },
  });
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

  async putFile(key: string, sourcePath: string, options: PutOptions = {}): Promise<StoredObject> {
    return this.write(key, options, (tmp) => copyFile(sourcePath, tmp));
  }

  async putStream(key: string, body: Readable, options: PutOptions = {}): Promise<StoredObject> {
    return this.write(key, options, (tmp) => pipeline(body, createWriteStream(tmp)));
  }

  /**
   * Writes to a temporary name, then commits: rename replaces atomically; a hard link
   * fails with EEXIST when the key is taken, which makes create-only atomic too.
   * Metadata is not kept: a file store has nowhere to put it.
   */
  private async write(
    key: string,
    options: PutOptions,
    fill: (tmp: string) => Promise<void>,
  ): Promise<StoredObject> {
    const dest = this.pathOf(key);
    await mkdir(dirname(dest), { recursive: true });
    const tmp = `${dest}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    try {
      if (options.ifNoneMatch === "*" && (await this.head(key)) !== null) {
        throw artifactExistsError(key, this.url);
      }
      await fill(tmp);
      if (options.ifNoneMatch === "*") {
        try {
          await link(tmp, dest);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "EEXIST") throw artifactExistsError(key, this.url);
          throw error;
        }
        await rm(tmp, { force: true });
      } else {
        await rename(tmp, dest);
      }
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
    // Code-unit order, as S3 lists (UTF-8 byte order), so every store agrees.
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
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
