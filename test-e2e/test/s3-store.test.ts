// S3ArtifactStore against the S3 emulator (real HTTP, real SigV4, the unmodified SDK): the
// ArtifactStore contract, and the errors a user sees for wrong keys and missing buckets.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { isRunctlError } from "@runctl/core";
import { artifactStoreContractCases } from "@runctl/core/testing";
import { S3ArtifactStore, type S3Settings } from "@runctl/s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type S3Emulator, startS3Emulator } from "../src/s3-emulator.ts";

const KEY = { accessKeyId: "AKIDSTORE", secretAccessKey: "store-secret" };
const SCOPED = { accessKeyId: "AKIDSCOPED", secretAccessKey: "scoped-secret", prefix: "runs/r1/" };
const EXPIRED = {
  accessKeyId: "ASIAEXPIRED",
  secretAccessKey: "expired-secret",
  sessionToken: "expired-token",
  expiresAt: "2020-01-01T00:00:00Z",
};
let s3: S3Emulator;
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "runctl-s3-store-"));
  s3 = await startS3Emulator({ dataDir, credentials: [KEY, SCOPED, EXPIRED], buckets: ["artifacts"] });
});
afterAll(async () => {
  await s3?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

function settings(credentials: S3Settings["credentials"] = KEY): S3Settings {
  return {
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    partSizeBytes: 5 * 1024 * 1024,
    concurrency: 4,
    credentials,
  };
}

describe("ArtifactStore contract: S3ArtifactStore on the emulator", () => {
  // Pages of 50 keys prove the listing follows continuation tokens without writing 1,001 objects.
  const make = async () =>
    S3ArtifactStore.fromUrl("s3://artifacts/store", { ...settings(), listPageSize: 50 });
  for (const c of artifactStoreContractCases(make, { listingSize: 120 })) it(c.name, c.run);
});

describe("S3ArtifactStore", () => {
  it("keeps keys under the URL's prefix and streams multipart bodies", async () => {
    const store = S3ArtifactStore.fromUrl("s3://artifacts/nested/root", settings());
    expect(store.url).toBe("s3://artifacts/nested/root/");
    const big = Buffer.alloc(11 * 1024 * 1024, 5);
    const stored = await store.putStream(
      "big.bin",
      Readable.from([big.subarray(0, 6_000_000), big.subarray(6_000_000)]),
    );
    expect(stored.size).toBe(big.length);
    expect(stored.etag).toMatch(/-3"$/);
    const outer = S3ArtifactStore.fromUrl("s3://artifacts/nested", settings());
    expect((await outer.list("root/")).map((o) => o.key)).toEqual(["root/big.bin"]);
  });

  it("a wrong secret is a provider error (exit 2) naming the key and telling how to fix it", async () => {
    const store = S3ArtifactStore.fromUrl("s3://artifacts/x", settings({ ...KEY, secretAccessKey: "wrong" }));
    const error = await store.list().catch((e: unknown) => e);
    expect(isRunctlError(error)).toBe(true);
    if (!isRunctlError(error)) return;
    expect(error.exitCode).toBe(2);
    expect(error.code).toBe("auth");
    expect(error.message).toContain("secret key does not belong to access key AKIDSTORE");
    expect(error.details?.s3Code).toBe("SignatureDoesNotMatch");
  });

  it("a missing bucket says so", async () => {
    const store = S3ArtifactStore.fromUrl("s3://no-such-bucket/x", settings());
    const error = await store.putStream("k", Readable.from([Buffer.from("x")])).catch((e: unknown) => e);
    expect(isRunctlError(error) && error.code).toBe("not_found");
    expect(String((error as Error).message)).toContain('Bucket "no-such-bucket" does not exist');
  });

  it("an expired session token and a prefix the key may not touch are auth errors that say which", async () => {
    const expired = S3ArtifactStore.fromUrl("s3://artifacts/x", settings(EXPIRED));
    const e1 = await expired.head("k").catch((e: unknown) => e);
    expect(isRunctlError(e1) && e1.code).toBe("auth");
    expect(String((e1 as Error).message)).toMatch(
      /session token of the access key ASIAEXPIRED .* has expired/,
    );
    const scoped = S3ArtifactStore.fromUrl(
      "s3://artifacts/runs",
      settings({ accessKeyId: SCOPED.accessKeyId, secretAccessKey: SCOPED.secretAccessKey }),
    );
    await scoped.putStream("r1/ok", Readable.from([Buffer.from("x")]));
    const e2 = await scoped
      .putStream("r2/denied", Readable.from([Buffer.from("x")]))
      .catch((e: unknown) => e);
    expect(isRunctlError(e2) && e2.code).toBe("auth");
    expect(String((e2 as Error).message)).toContain("Access denied to s3://artifacts/runs/r2/denied");
  });
});
