// The S3 emulator against the unmodified AWS SDK: what it accepts, and that it refuses what
// S3 refuses (bad signatures, unknown keys, expired tokens and URLs, denied prefixes, policy
// violations) with S3's codes.
import { createHash, createHmac } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  S3ServiceException,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { createPresignedPost } from "@aws-sdk/s3-presigned-post";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type S3Emulator, startS3Emulator } from "../src/s3-emulator.ts";

const KEY = { accessKeyId: "AKIDTEST", secretAccessKey: "secret-test" };
const SCOPED = { accessKeyId: "AKIDSCOPED", secretAccessKey: "secret-scoped", prefix: "runs/r1/" };
const EXPIRED = {
  accessKeyId: "ASIAEXPIRED",
  secretAccessKey: "secret-expired",
  sessionToken: "token-expired",
  expiresAt: "2020-01-01T00:00:00Z",
};
const SESSION = {
  accessKeyId: "ASIASESSION",
  secretAccessKey: "secret-session",
  sessionToken: "token-live",
  expiresAt: "2099-01-01T00:00:00Z",
};
const BUCKET = "emu-bucket";

let s3: S3Emulator;
let dataDir: string;

function client(
  credentials: S3ClientConfig["credentials"] = KEY,
  extra: Partial<S3ClientConfig> = {},
): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials,
    ...extra,
  });
}

async function code(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof S3ServiceException) return error.name;
    throw error;
  }
  return "no error";
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "s3-emulator-"));
  s3 = await startS3Emulator({ dataDir, credentials: [KEY, SCOPED, EXPIRED, SESSION], buckets: [BUCKET] });
});

afterAll(async () => {
  await s3?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

describe("objects", () => {
  it("puts, heads, gets (with ranges) and keeps user metadata, with the SDK's default CRC32 checksums", async () => {
    const c = client();
    const body = Buffer.from("hello, emulator");
    const put = await c.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: "a/b.txt", Body: body, Metadata: { sha256: "abc" } }),
    );
    expect(put.ETag).toBe(`"${createHash("md5").update(body).digest("hex")}"`);
    const head = await c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "a/b.txt" }));
    expect(head.ContentLength).toBe(body.length);
    expect(head.Metadata).toEqual({ sha256: "abc" });
    const got = await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: "a/b.txt" }));
    expect(await got.Body?.transformToString()).toBe("hello, emulator");
    const ranged = await c.send(
      new GetObjectCommand({ Bucket: BUCKET, Key: "a/b.txt", Range: "bytes=7-14" }),
    );
    expect(await ranged.Body?.transformToString()).toBe("emulator");
    expect(ranged.ContentRange).toBe(`bytes 7-14/${body.length}`);
    expect(
      await code(c.send(new GetObjectCommand({ Bucket: BUCKET, Key: "a/b.txt", Range: "bytes=100-" }))),
    ).toBe("InvalidRange");
    expect(await code(c.send(new GetObjectCommand({ Bucket: BUCKET, Key: "missing" })))).toBe("NoSuchKey");
    expect(await code(c.send(new GetObjectCommand({ Bucket: "no-bucket", Key: "x" })))).toBe("NoSuchBucket");
  });

  it("accepts a streaming body of unknown length as aws-chunked with a CRC32 trailer", async () => {
    const c = client(KEY, { requestChecksumCalculation: "WHEN_SUPPORTED" });
    const { Readable } = await import("node:stream");
    const parts = [Buffer.alloc(70_000, 1), Buffer.alloc(10, 2)];
    await c.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: "chunked.bin",
        Body: Readable.from(parts),
        ContentLength: 70_010,
      }),
    );
    const head = await c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "chunked.bin" }));
    expect(head.ContentLength).toBe(70_010);
  });

  it("create-only writes: If-None-Match * is refused with 412 once the key exists; If-Match checks the ETag", async () => {
    const c = client();
    await c.send(new PutObjectCommand({ Bucket: BUCKET, Key: "once", Body: "1", IfNoneMatch: "*" }));
    expect(
      await code(c.send(new PutObjectCommand({ Bucket: BUCKET, Key: "once", Body: "2", IfNoneMatch: "*" }))),
    ).toBe("PreconditionFailed");
    expect(
      await code(c.send(new PutObjectCommand({ Bucket: BUCKET, Key: "once", Body: "3", IfMatch: '"nope"' }))),
    ).toBe("PreconditionFailed");
    const got = await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: "once" }));
    expect(await got.Body?.transformToString()).toBe("1");
  });

  it("lists with prefix, delimiter, max-keys and continuation tokens", async () => {
    const c = client();
    const keys = ["l/a/1", "l/a/2", "l/b", "l/c/1", "l/d", "l/e"];
    for (const key of keys) await c.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: key }));
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await c.send(
        new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "l/", MaxKeys: 2, ContinuationToken: token }),
      );
      seen.push(...(page.Contents ?? []).map((o) => o.Key as string));
      token = page.NextContinuationToken;
      pages += 1;
    } while (token);
    expect(seen).toEqual(keys);
    expect(pages).toBe(3);
    const folded: string[] = [];
    token = undefined;
    do {
      const page: ListObjectsV2CommandOutput = await c.send(
        new ListObjectsV2Command({
          Bucket: BUCKET,
          Prefix: "l/",
          Delimiter: "/",
          MaxKeys: 1,
          ContinuationToken: token,
        }),
      );
      folded.push(...(page.CommonPrefixes ?? []).map((p) => p.Prefix as string));
      folded.push(...(page.Contents ?? []).map((o) => o.Key as string));
      token = page.NextContinuationToken;
    } while (token);
    expect(folded).toEqual(["l/a/", "l/b", "l/c/", "l/d", "l/e"]);
  });

  it("deletes many objects at once", async () => {
    const c = client();
    for (const key of ["d/1", "d/2"])
      await c.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: key }));
    const result = await c.send(
      new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: [{ Key: "d/1" }, { Key: "d/2" }] } }),
    );
    expect(result.Deleted?.map((d) => d.Key).sort()).toEqual(["d/1", "d/2"]);
    const left = await c.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "d/" }));
    expect(left.KeyCount).toBe(0);
  });

  it("virtual-host-style addressing reaches the same bucket", async () => {
    const c = client();
    await c.send(new PutObjectCommand({ Bucket: BUCKET, Key: "vhost.txt", Body: "v" }));
    const url = await getSignedUrl(
      new S3Client({ endpoint: `http://localhost:${s3.port}`, region: "us-east-1", credentials: KEY }),
      new GetObjectCommand({ Bucket: BUCKET, Key: "vhost.txt" }),
    );
    expect(new URL(url).hostname).toBe(`${BUCKET}.localhost`);
    // `<bucket>.localhost` may not resolve here: connect to loopback and send the Host header.
    const body = await new Promise<string>((resolve, reject) => {
      const u = new URL(url);
      const req = request(
        { host: "127.0.0.1", port: s3.port, path: `${u.pathname}${u.search}`, headers: { host: u.host } },
        (res) => {
          let text = "";
          res.on("data", (d: Buffer) => {
            text += d.toString();
          });
          res.on("end", () => resolve(`${res.statusCode} ${text}`));
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(body).toBe("200 v");
  });
});

describe("multipart", () => {
  it("uploads parts, lists them, completes with an N-part ETag, and refuses small non-last parts", async () => {
    const c = client();
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "mp.bin" }));
    const part1 = Buffer.alloc(5 * 1024 * 1024, 7);
    const part2 = Buffer.from("tail");
    const p1 = await c.send(
      new UploadPartCommand({ Bucket: BUCKET, Key: "mp.bin", UploadId, PartNumber: 1, Body: part1 }),
    );
    const p2 = await c.send(
      new UploadPartCommand({ Bucket: BUCKET, Key: "mp.bin", UploadId, PartNumber: 2, Body: part2 }),
    );
    expect(await code(c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "mp.bin" })))).toBe("NotFound");
    const listed = await c.send(new ListPartsCommand({ Bucket: BUCKET, Key: "mp.bin", UploadId }));
    expect(listed.Parts?.map((p) => p.Size)).toEqual([part1.length, part2.length]);
    const uploads = await c.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: "mp" }));
    expect(uploads.Uploads?.map((u) => u.UploadId)).toContain(UploadId);
    const done = await c.send(
      new CompleteMultipartUploadCommand({
        Bucket: BUCKET,
        Key: "mp.bin",
        UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: p1.ETag },
            { PartNumber: 2, ETag: p2.ETag },
          ],
        },
      }),
    );
    expect(done.ETag).toMatch(/-2"$/);
    const head = await c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "mp.bin" }));
    expect(head.ContentLength).toBe(part1.length + part2.length);

    const small = await c.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "small.bin" }));
    const s1 = await c.send(
      new UploadPartCommand({
        Bucket: BUCKET,
        Key: "small.bin",
        UploadId: small.UploadId,
        PartNumber: 1,
        Body: "a",
      }),
    );
    const s2 = await c.send(
      new UploadPartCommand({
        Bucket: BUCKET,
        Key: "small.bin",
        UploadId: small.UploadId,
        PartNumber: 2,
        Body: "b",
      }),
    );
    expect(
      await code(
        c.send(
          new CompleteMultipartUploadCommand({
            Bucket: BUCKET,
            Key: "small.bin",
            UploadId: small.UploadId,
            MultipartUpload: {
              Parts: [
                { PartNumber: 1, ETag: s1.ETag },
                { PartNumber: 2, ETag: s2.ETag },
              ],
            },
          }),
        ),
      ),
    ).toBe("EntityTooSmall");
    await c.send(
      new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: "small.bin", UploadId: small.UploadId }),
    );
    expect(
      await code(
        c.send(new ListPartsCommand({ Bucket: BUCKET, Key: "small.bin", UploadId: small.UploadId })),
      ),
    ).toBe("NoSuchUpload");
  });
});

describe("authentication", () => {
  it("refuses a wrong secret, an unknown key, an expired session token, and a key outside its prefix", async () => {
    const put = (c: S3Client, key: string) =>
      c.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: "x" }));
    expect(await code(put(client({ ...KEY, secretAccessKey: "wrong" }), "k"))).toBe("SignatureDoesNotMatch");
    expect(await code(put(client({ accessKeyId: "AKIDNOBODY", secretAccessKey: "x" }), "k"))).toBe(
      "InvalidAccessKeyId",
    );
    expect(await code(put(client(EXPIRED), "k"))).toBe("ExpiredToken");
    expect(await code(put(client(SESSION), "k"))).toBe("no error");
    expect(await code(put(client({ ...SESSION, sessionToken: "forged" }), "k"))).toBe("InvalidToken");
    expect(await code(put(client(SCOPED), "runs/r2/x"))).toBe("AccessDenied");
    expect(await code(put(client(SCOPED), "runs/r1/x"))).toBe("no error");
    expect(
      await code(client(SCOPED).send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "runs/" }))),
    ).toBe("AccessDenied");
  });

  it("refuses a body that does not match its signed SHA-256", async () => {
    // Sign for one body, send another: the signature covers x-amz-content-sha256, the body must match it.
    const url = new URL(`${s3.endpoint}/${BUCKET}/tampered`);
    const signed = sigv4Put(url, Buffer.from("original"), KEY);
    const status = await rawPut(url, signed.headers, Buffer.from("tampered"));
    expect(status).toMatch(/^400 .*XAmzContentSHA256Mismatch/s);
  });

  it("verifies STREAMING-AWS4-HMAC-SHA256-PAYLOAD chunk signatures", async () => {
    const url = new URL(`${s3.endpoint}/${BUCKET}/streamed`);
    const chunks = [Buffer.alloc(65_536, 3), Buffer.from("end")];
    const good = streamingPut(url, chunks, KEY, false);
    expect(await rawPut(url, good.headers, good.body)).toMatch(/^200 /);
    const head = await client().send(new HeadObjectCommand({ Bucket: BUCKET, Key: "streamed" }));
    expect(head.ContentLength).toBe(65_539);
    const bad = streamingPut(url, chunks, KEY, true);
    expect(await rawPut(url, bad.headers, bad.body)).toMatch(/^403 .*SignatureDoesNotMatch/s);
  });

  it("verifies the signed-trailer variant: chunk signatures, the trailer's signature and its CRC32", async () => {
    const url = new URL(`${s3.endpoint}/${BUCKET}/trailed`);
    const chunks = [Buffer.alloc(70_000, 4), Buffer.from("tail")];
    const good = streamingPut(url, chunks, KEY, false, {});
    expect(await rawPut(url, good.headers, good.body)).toMatch(/^200 /);
    expect(
      (await client().send(new HeadObjectCommand({ Bucket: BUCKET, Key: "trailed" }))).ContentLength,
    ).toBe(70_004);
    const badCrc = streamingPut(new URL(`${s3.endpoint}/${BUCKET}/trailed-bad`), chunks, KEY, false, {
      badCrc: true,
    });
    expect(
      await rawPut(new URL(`${s3.endpoint}/${BUCKET}/trailed-bad`), badCrc.headers, badCrc.body),
    ).toMatch(/^400 .*BadDigest/s);
    expect(await code(client().send(new HeadObjectCommand({ Bucket: BUCKET, Key: "trailed-bad" })))).toBe(
      "NotFound",
    );
  });

  it("presigned GET and PUT work until they expire", async () => {
    const c = client();
    const putUrl = await getSignedUrl(c, new PutObjectCommand({ Bucket: BUCKET, Key: "presigned.txt" }), {
      expiresIn: 60,
    });
    const put = await fetch(putUrl, { method: "PUT", body: "via url" });
    expect(put.status).toBe(200);
    const getUrl = await getSignedUrl(c, new GetObjectCommand({ Bucket: BUCKET, Key: "presigned.txt" }), {
      expiresIn: 60,
    });
    expect(await (await fetch(getUrl)).text()).toBe("via url");
    const tampered = getUrl.replace("presigned.txt", "other.txt");
    expect((await fetch(tampered)).status).toBe(403);
    const old = await getSignedUrl(c, new GetObjectCommand({ Bucket: BUCKET, Key: "presigned.txt" }), {
      expiresIn: 1,
      signingDate: new Date(Date.now() - 60_000),
    });
    const expired = await fetch(old);
    expect(expired.status).toBe(403);
    expect(await expired.text()).toContain("Request has expired");
  });

  it("enforces a presigned POST policy: prefix, size range, expiry, signature", async () => {
    const c = client();
    const post = async (key: string, body: Buffer, policy = {}) => {
      const form = new FormData();
      for (const [k, v] of Object.entries({ ...signedPost.fields, ...policy })) form.append(k, v);
      form.set("key", key);
      form.append("file", new Blob([body]), "f.bin");
      const res = await fetch(signedPost.url, { method: "POST", body: form });
      return `${res.status} ${await res.text()}`;
    };
    const signedPost = await createPresignedPost(c as never, {
      Bucket: BUCKET,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: S3 substitutes the file name
      Key: "runs/r1/${filename}",
      Conditions: [
        ["starts-with", "$key", "runs/r1/"],
        ["content-length-range", 0, 1024],
      ],
      Expires: 60,
    });
    expect(await post("runs/r1/ok.txt", Buffer.from("fine"))).toMatch(/^204/);
    const got = await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: "runs/r1/ok.txt" }));
    expect(await got.Body?.transformToString()).toBe("fine");
    expect(await post("runs/r2/escape.txt", Buffer.from("no"))).toMatch(/^403 .*AccessDenied.*starts-with/s);
    expect(await post("runs/r1/big.bin", Buffer.alloc(2048))).toMatch(/^400 .*EntityTooLarge/s);
    expect(await post("runs/r1/x", Buffer.from("x"), { "x-amz-signature": "0".repeat(64) })).toMatch(
      /^403 .*SignatureDoesNotMatch/s,
    );
    expect(await code(c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "runs/r2/escape.txt" })))).toBe(
      "NotFound",
    );
    const expired = await createPresignedPost(c as never, {
      Bucket: BUCKET,
      Key: "runs/r1/late",
      Expires: -10,
    });
    const form = new FormData();
    for (const [k, v] of Object.entries(expired.fields)) form.append(k, v);
    form.append("file", new Blob(["late"]), "late");
    const res = await fetch(expired.url, { method: "POST", body: form });
    expect(`${res.status} ${await res.text()}`).toMatch(/^403 .*Policy expired/s);
  });
});

// Hand-made SigV4 requests for what the SDK will not send on its own (a tampered body, a
// signed aws-chunked stream); written from the specification, independent of the emulator's code.
function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}
const sha = (d: Buffer | string) => createHash("sha256").update(d).digest("hex");

function scopeFor(now: Date) {
  const amzDate = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
  const date = amzDate.slice(0, 8);
  return { amzDate, date, scope: `${date}/us-east-1/s3/aws4_request` };
}

function sign(
  url: URL,
  headers: Record<string, string>,
  payloadHash: string,
  creds: { accessKeyId: string; secretAccessKey: string },
) {
  const { amzDate, date, scope } = scopeFor(new Date());
  const all: Record<string, string> = {
    ...headers,
    host: url.host,
    "x-amz-date": amzDate,
    "x-amz-content-sha256": payloadHash,
  };
  const names = Object.keys(all)
    .map((n) => n.toLowerCase())
    .sort();
  const lower = Object.fromEntries(Object.entries(all).map(([k, v]) => [k.toLowerCase(), v]));
  const canonical = [
    "PUT",
    url.pathname,
    "",
    names.map((n) => `${n}:${lower[n]}\n`).join(""),
    names.join(";"),
    payloadHash,
  ].join("\n");
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha(canonical)].join("\n");
  const key = hmac(hmac(hmac(hmac(`AWS4${creds.secretAccessKey}`, date), "us-east-1"), "s3"), "aws4_request");
  const signature = hmac(key, toSign).toString("hex");
  return {
    key,
    amzDate,
    scope,
    signature,
    headers: {
      ...all,
      authorization: `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}`,
    },
  };
}

function sigv4Put(url: URL, body: Buffer, creds: typeof KEY) {
  return sign(url, { "content-length": String(body.length) }, sha(body), creds);
}

/**
 * A signed aws-chunked PUT. With `trailer`, the signed-trailer variant: a CRC32 trailer and
 * its `x-amz-trailer-signature` follow the last chunk (`badCrc` sends a wrong checksum).
 */
function streamingPut(
  url: URL,
  chunks: Buffer[],
  creds: typeof KEY,
  tamper: boolean,
  trailer?: { badCrc?: boolean },
) {
  const decoded = Buffer.concat(chunks);
  const frames = [...chunks, Buffer.alloc(0)];
  const headerLen = (c: Buffer) =>
    `${c.length.toString(16)};chunk-signature=${"0".repeat(64)}\r\n`.length + c.length + 2;
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(trailer?.badCrc ? (crc32(decoded) + 1) >>> 0 : crc32(decoded));
  const trailerLine = `x-amz-checksum-crc32:${crc.toString("base64")}`;
  const trailerBytes = trailer ? `${trailerLine}\r\nx-amz-trailer-signature:${"0".repeat(64)}\r\n`.length : 0;
  // With a trailer the last chunk's CRLF is replaced by the trailer lines and their closing CRLF.
  const total = frames.reduce((n, c) => n + headerLen(c), 0) + trailerBytes;
  const signed = sign(
    url,
    {
      "content-encoding": "aws-chunked",
      "content-length": String(total),
      "x-amz-decoded-content-length": String(decoded.length),
      ...(trailer ? { "x-amz-trailer": "x-amz-checksum-crc32" } : {}),
    },
    trailer ? "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" : "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    creds,
  );
  let previous = signed.signature;
  const out: Buffer[] = [];
  for (const chunk of frames) {
    const toSign = [
      "AWS4-HMAC-SHA256-PAYLOAD",
      signed.amzDate,
      signed.scope,
      previous,
      sha(""),
      sha(chunk),
    ].join("\n");
    previous = hmac(signed.key, toSign).toString("hex");
    const data = tamper && chunk.length > 0 ? Buffer.from(chunk).fill(9, 0, 1) : chunk;
    out.push(Buffer.from(`${chunk.length.toString(16)};chunk-signature=${previous}\r\n`), data);
    if (chunk.length > 0 || !trailer) out.push(Buffer.from("\r\n"));
  }
  if (trailer) {
    const toSign = [
      "AWS4-HMAC-SHA256-TRAILER",
      signed.amzDate,
      signed.scope,
      previous,
      sha(`${trailerLine}\n`),
    ].join("\n");
    const trailerSignature = hmac(signed.key, toSign).toString("hex");
    out.push(Buffer.from(`${trailerLine}\r\nx-amz-trailer-signature:${trailerSignature}\r\n\r\n`));
  }
  return { headers: signed.headers, body: Buffer.concat(out) };
}

function rawPut(url: URL, headers: Record<string, string>, body: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: "PUT",
        headers: { ...headers, "content-length": String(body.length) },
      },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => {
          text += d.toString();
        });
        res.on("end", () => resolve(`${res.statusCode} ${text}`));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
