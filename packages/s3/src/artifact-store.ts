/**
 * `s3://bucket/prefix` as an ArtifactStore (AWS S3 and compatible stores). Keys are relative
 * to the prefix; writes are atomic because S3 objects are (multipart ones appear only on
 * completion); create-only writes use S3's conditional `If-None-Match: *`.
 */
import { createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { DeleteObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import {
  type ArtifactStore,
  type ArtifactStoreFactory,
  artifactExistsError,
  assertSafeKey,
  type PresignedPost,
  type PresignOptions,
  type PutOptions,
  type StoredObject,
  UserError,
} from "@runctl/core";
import { createS3Client, type S3Settings } from "./client-settings.ts";
import {
  getObjectStream,
  headObject,
  listAll,
  type UploadSettings,
  uploadFile,
  uploadStream,
} from "./object-transfer.ts";
import { presignGetUrl, presignPostPolicy, presignPutUrl } from "./presign.ts";
import { isS3Code, s3Error } from "./s3-errors.ts";
import { directoryPrefix, formatS3Url, parseS3Url, type S3Location } from "./s3-url.ts";

export class S3ArtifactStore implements ArtifactStore {
  readonly url: string;
  readonly bucket: string;
  /** Where keys start: the URL's prefix as a directory (`runs/` for `s3://b/runs`). */
  readonly root: string;

  constructor(
    readonly client: S3Client,
    location: S3Location,
    private readonly settings: Pick<S3Settings, "partSizeBytes" | "concurrency"> & {
      /** Keys per ListObjectsV2 page; unset means the store's maximum (1,000 on S3). */
      listPageSize?: number;
    },
  ) {
    this.bucket = location.bucket;
    this.root = directoryPrefix(location.prefix);
    this.url = formatS3Url({ bucket: this.bucket, prefix: this.root });
  }

  static fromUrl(url: string, settings: S3Settings & { listPageSize?: number }): S3ArtifactStore {
    return new S3ArtifactStore(createS3Client(settings), parseS3Url(url), settings);
  }

  private keyOf(key: string): string {
    assertSafeKey(key);
    return `${this.root}${key}`;
  }

  private fail(operation: string, key: string | undefined) {
    return async (error: unknown): Promise<never> => {
      throw await s3Error(error, this.client, {
        operation,
        bucket: this.bucket,
        key: key === undefined ? this.root : this.keyOf(key),
      });
    };
  }

  private uploadSettings(options: PutOptions, onBytes?: (n: number) => void): UploadSettings {
    const settings: UploadSettings = {
      partSizeBytes: this.settings.partSizeBytes,
      queueSize: Math.max(1, Math.min(4, this.settings.concurrency)),
    };
    if (options.metadata) settings.metadata = options.metadata;
    if (options.ifNoneMatch) settings.ifNoneMatch = options.ifNoneMatch;
    if (onBytes) settings.onBytes = onBytes;
    return settings;
  }

  private stored(key: string, size: number, etag: string | undefined): StoredObject {
    const out: StoredObject = { key, size, modified: new Date().toISOString() };
    if (etag !== undefined) out.etag = etag;
    return out;
  }

  private async conditional<T>(key: string, operation: string, body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      if (isS3Code(error, "PreconditionFailed", "ConditionalRequestConflict"))
        throw artifactExistsError(key, this.url);
      return this.fail(operation, key)(error);
    }
  }

  async putFile(key: string, sourcePath: string, options: PutOptions = {}): Promise<StoredObject> {
    const objectKey = this.keyOf(key);
    const size = (await stat(sourcePath)).size;
    const { etag } = await this.conditional(key, "upload", () =>
      uploadFile(this.client, this.bucket, objectKey, sourcePath, size, this.uploadSettings(options)),
    );
    return this.stored(key, size, etag);
  }

  async putStream(key: string, body: Readable, options: PutOptions = {}): Promise<StoredObject> {
    const objectKey = this.keyOf(key);
    let size = 0;
    const etag = await this.conditional(key, "upload", () =>
      uploadStream(
        this.client,
        this.bucket,
        objectKey,
        body,
        this.uploadSettings(options, (n) => {
          size += n;
        }),
      ),
    );
    return this.stored(key, size, etag);
  }

  async getStream(key: string): Promise<Readable> {
    const objectKey = this.keyOf(key);
    try {
      return (await getObjectStream(this.client, this.bucket, objectKey)).body;
    } catch (error) {
      if (isS3Code(error, "NoSuchKey", "NotFound")) throw this.notFound(key);
      return this.fail("download", key)(error);
    }
  }

  async getFile(key: string, destPath: string): Promise<void> {
    const body = await this.getStream(key);
    await mkdir(dirname(destPath), { recursive: true });
    const tmp = `${destPath}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    try {
      await pipeline(body, createWriteStream(tmp));
      await rename(tmp, destPath);
    } catch (error) {
      await rm(tmp, { force: true });
      throw error;
    }
  }

  async head(key: string): Promise<StoredObject | null> {
    const objectKey = this.keyOf(key);
    const head = await headObject(this.client, this.bucket, objectKey).catch(this.fail("head", key));
    if (!head) return null;
    const out: StoredObject = { key, size: head.size, modified: head.modified };
    if (head.etag !== undefined) out.etag = head.etag;
    return out;
  }

  async list(prefix = ""): Promise<StoredObject[]> {
    const listing = await listAll(
      this.client,
      this.bucket,
      `${this.root}${prefix}`,
      undefined,
      this.settings.listPageSize,
    ).catch(this.fail("list", undefined));
    return listing.objects.map((o) => {
      const out: StoredObject = { key: o.key.slice(this.root.length), size: o.size, modified: o.modified };
      if (o.etag !== undefined) out.etag = o.etag;
      return out;
    });
  }

  async delete(key: string): Promise<void> {
    const objectKey = this.keyOf(key);
    await this.client
      .send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey }))
      .catch(this.fail("delete", key));
  }

  presignGet(key: string, options: PresignOptions): Promise<string> {
    return presignGetUrl(this.client, this.bucket, this.keyOf(key), options.expiresInSeconds);
  }

  presignPut(key: string, options: PresignOptions): Promise<string> {
    return presignPutUrl(this.client, this.bucket, this.keyOf(key), options.expiresInSeconds);
  }

  presignPost(keyPrefix: string, options: PresignOptions & { maxBytes: number }): Promise<PresignedPost> {
    if (keyPrefix !== "") assertSafeKey(keyPrefix.replace(/\/$/, ""));
    return presignPostPolicy(this.client, this.bucket, `${this.root}${keyPrefix}`, options);
  }

  private notFound(key: string): UserError {
    return new UserError(`No artifact "${key}" in ${this.url}`, {
      code: "artifact_not_found",
      hint: "List what the store holds (`runctl s3 ls`), or check the key and the store URL.",
      details: { key, store: this.url },
    });
  }
}

/**
 * For `ProviderRegistry.registerArtifactStore("s3:", …)`: opens `s3://` URLs with one client
 * built from `settings` (see `s3SettingsFromConfig`).
 */
export function s3ArtifactStoreFactory(settings: S3Settings): ArtifactStoreFactory {
  const client = createS3Client(settings);
  return async (url) => new S3ArtifactStore(client, parseS3Url(url.href), settings);
}
