/**
 * An S3 emulator on loopback that the unmodified AWS SDK talks to: SigV4 (header, presigned
 * query, aws-chunked streaming), path- and virtual-host-style addressing, ListObjectsV2,
 * multipart uploads, presigned POST policies, conditional writes, ranges and user metadata,
 * with S3's XML errors. Bodies stream to disk; nothing sleeps.
 *
 *   const s3 = await startS3Emulator({ dataDir, credentials: [{ accessKeyId, secretAccessKey }], buckets: ["b"] });
 *   // AWS_ENDPOINT_URL_S3=s3.endpoint … ; await s3.stop();
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pipeline } from "node:stream/promises";
import { z } from "zod";
import {
  type Authenticated,
  authenticate,
  CredentialBook,
  type PayloadCheck,
  type RequestTarget,
} from "./auth.ts";
import { decodeAwsChunked } from "./aws-chunked.ts";
import { DEFAULT_CREDENTIAL, type EmulatorCredential, EmulatorCredentials } from "./credentials.ts";
import { type IngestedBody, type ObjectRecord, ObjectStore, type WriteCondition } from "./object-store.ts";
import { handlePostObject } from "./post-policy.ts";
import { noSuchKey, preconditionFailed, S3Failure } from "./s3-failure.ts";
import { errorDocument, parseCompleteMultipart, parseDeleteObjects, xmlDocument } from "./s3-xml.ts";
import { rawQueryPairs } from "./sigv4.ts";

export interface S3EmulatorOptions {
  /** 0 (default) lets the kernel choose. */
  port?: number;
  host?: string;
  dataDir: string;
  credentials?: readonly EmulatorCredential[];
  /** Buckets that exist from the start (more can be made with CreateBucket). */
  buckets?: readonly string[];
  /**
   * Host names under which `<bucket>.<name>` is virtual-host-style addressing. Default
   * `localhost` and `s3.localhost`; any other Host is path-style.
   */
  virtualHostSuffixes?: readonly string[];
  /**
   * Buckets anyone may read without signing (GET and HEAD of objects), as a bucket policy
   * granting `s3:GetObject` to `"Principal": "*"` allows on S3: the bare-host harness's Node
   * mirror. Everything else on them still needs SigV4.
   */
  publicReadBuckets?: readonly string[];
}

export interface S3Emulator {
  /** `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL_S3`. */
  endpoint: string;
  port: number;
  store: ObjectStore;
  stop(): Promise<void>;
}

const MAX_XML_BODY = 2 * 1024 * 1024;

const ListParams = z.object({
  prefix: z.string().default(""),
  delimiter: z.string().default(""),
  "max-keys": z.coerce.number().int().min(0).default(1000),
  "continuation-token": z.string().optional(),
  "start-after": z.string().default(""),
  "encoding-type": z.enum(["url"]).optional(),
  "fetch-owner": z.string().optional(),
});

const PartParams = z.object({
  partNumber: z.coerce.number().int().min(1).max(10_000),
  uploadId: z.string().min(1),
});

export async function startS3Emulator(options: S3EmulatorOptions): Promise<S3Emulator> {
  const credentials = EmulatorCredentials.parse(options.credentials ?? [DEFAULT_CREDENTIAL]);
  const store = new ObjectStore(options.dataDir);
  await store.open(options.buckets ?? []);
  const emulator = new Emulator(
    store,
    new CredentialBook(credentials),
    options.virtualHostSuffixes ?? ["localhost", "s3.localhost"],
    new Set(options.publicReadBuckets ?? []),
  );
  const server = createServer((req, res) => {
    emulator.handle(req, res).catch((error: unknown) => emulator.fail(req, res, error));
  });
  // Clients keep connections alive; idle ones must not hold stop() up.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    store,
    stop: () => closeServer(server),
  };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

interface Route {
  bucket: string | undefined;
  key: string | undefined;
  target: RequestTarget;
  query: Map<string, string>;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(",") : v;
}

function httpDate(iso: string): string {
  return new Date(iso).toUTCString();
}

class Emulator {
  constructor(
    private readonly store: ObjectStore,
    private readonly book: CredentialBook,
    private readonly suffixes: readonly string[],
    private readonly publicRead: ReadonlySet<string>,
  ) {}

  private route(req: IncomingMessage): Route {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const rawPath = q === -1 ? url : url.slice(0, q);
    let queryPairs: Array<[string, string]>;
    try {
      queryPairs = rawQueryPairs(q === -1 ? "" : url.slice(q + 1));
    } catch {
      throw new S3Failure(400, "InvalidArgument", "Malformed query string");
    }
    const target: RequestTarget = { method: req.method ?? "GET", rawPath, queryPairs };
    const query = new Map(queryPairs);
    const host = (header(req, "host") ?? "").replace(/:\d+$/, "").toLowerCase();
    let path: string;
    try {
      path = decodeURIComponent(rawPath);
    } catch {
      throw new S3Failure(400, "InvalidURI", "Couldn't parse the specified URI.");
    }
    const suffix = this.suffixes.find((s) => host.endsWith(`.${s}`));
    if (suffix !== undefined) {
      const bucket = host.slice(0, -(suffix.length + 1));
      const key = path.slice(1);
      return { bucket, key: key === "" ? undefined : key, target, query };
    }
    const slash = path.indexOf("/", 1);
    const bucket = slash === -1 ? path.slice(1) : path.slice(1, slash);
    const key = slash === -1 ? "" : path.slice(slash + 1);
    return { bucket: bucket === "" ? undefined : bucket, key: key === "" ? undefined : key, target, query };
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader("x-amz-request-id", randomBytes(8).toString("hex").toUpperCase());
    res.setHeader("Server", "RunctlS3Emulator");
    const route = this.route(req);
    const method = req.method ?? "GET";
    if (
      method === "POST" &&
      route.bucket !== undefined &&
      route.key === undefined &&
      route.query.size === 0 &&
      header(req, "authorization") === undefined
    ) {
      const result = await handlePostObject(req, route.bucket, {
        store: this.store,
        book: this.book,
        checkAccess: (credential, key) => this.checkAccess(credential, key),
      });
      res.writeHead(result.successStatus, {
        ETag: result.etag,
        Location: `/${route.bucket}/${encodeURI(result.key)}`,
      });
      res.end(
        result.successStatus === 201
          ? xmlDocument("PostResponse", { Bucket: route.bucket, Key: result.key, ETag: result.etag }, false)
          : undefined,
      );
      return;
    }
    const { bucket, key, query } = route;
    if (
      (method === "GET" || method === "HEAD") &&
      bucket !== undefined &&
      key !== undefined &&
      this.publicRead.has(bucket) &&
      header(req, "authorization") === undefined &&
      !query.has("X-Amz-Algorithm") &&
      !query.has("uploadId")
    ) {
      return this.getObject(req, res, bucket, key, method === "HEAD");
    }
    const auth = authenticate(req, route.target, this.book);
    if (bucket === undefined) {
      if (method !== "GET")
        throw new S3Failure(
          405,
          "MethodNotAllowed",
          "The specified method is not allowed against this resource.",
        );
      return this.listBuckets(res);
    }
    if (key === undefined) return this.bucketOperation(req, res, auth, bucket, query);
    this.checkAccess(auth.credential, key);
    switch (method) {
      case "PUT":
        if (query.has("uploadId")) return this.uploadPart(req, res, auth, bucket, key, query);
        if (header(req, "x-amz-copy-source") !== undefined) {
          throw new S3Failure(501, "NotImplemented", "CopyObject is not implemented by this emulator.");
        }
        return this.putObject(req, res, auth, bucket, key);
      case "GET":
        if (query.has("uploadId")) return this.listParts(res, bucket, key, query.get("uploadId") as string);
        return this.getObject(req, res, bucket, key, false);
      case "HEAD":
        return this.getObject(req, res, bucket, key, true);
      case "DELETE":
        if (query.has("uploadId")) {
          await this.store.abortUpload(bucket, key, query.get("uploadId") as string);
          res.writeHead(204).end();
          return;
        }
        this.store.requireBucket(bucket);
        await this.store.delete(bucket, key);
        res.writeHead(204).end();
        return;
      case "POST":
        if (query.has("uploads")) return this.createUpload(req, res, bucket, key);
        if (query.has("uploadId"))
          return this.completeUpload(req, res, auth, bucket, key, query.get("uploadId") as string);
        throw new S3Failure(400, "InvalidRequest", "Unsupported POST on an object");
      default:
        throw new S3Failure(
          405,
          "MethodNotAllowed",
          "The specified method is not allowed against this resource.",
        );
    }
  }

  private checkAccess(credential: EmulatorCredential, key: string): void {
    if (credential.prefix !== undefined && !key.startsWith(credential.prefix)) {
      throw new S3Failure(
        403,
        "AccessDenied",
        `Access Denied: ${credential.accessKeyId} may not access ${key}`,
      );
    }
  }

  private checkListAccess(credential: EmulatorCredential, prefix: string): void {
    if (credential.prefix !== undefined && !prefix.startsWith(credential.prefix)) {
      throw new S3Failure(
        403,
        "AccessDenied",
        `Access Denied: ${credential.accessKeyId} may list only under ${credential.prefix}`,
      );
    }
  }

  fail(req: IncomingMessage, res: ServerResponse, error: unknown): void {
    const failure =
      error instanceof S3Failure
        ? error
        : new S3Failure(
            500,
            "InternalError",
            `We encountered an internal error: ${(error as Error)?.message ?? error}`,
          );
    // A client that hangs up mid-body (a killed upload) is not the emulator's fault.
    const clientGone =
      req.socket?.destroyed === true ||
      (error as NodeJS.ErrnoException)?.code === "ECONNRESET" ||
      (error as Error)?.message === "aborted";
    if (failure.status === 500 && !clientGone)
      process.stderr.write(`s3-emulator: ${(error as Error)?.stack ?? error}\n`);
    if (res.headersSent || clientGone) {
      res.destroy();
      return;
    }
    const requestId = String(res.getHeader("x-amz-request-id") ?? "");
    const body =
      req.method === "HEAD" ? "" : errorDocument(failure.code, failure.message, failure.extra, requestId);
    res.writeHead(failure.status, {
      "Content-Type": "application/xml",
      "Content-Length": Buffer.byteLength(body),
    });
    res.end(body);
    // A refused upload may still be sending; drop the rest instead of buffering it.
    if (!req.complete) req.resume();
  }

  // --- bodies ---

  private bodySource(
    req: IncomingMessage,
    payload: PayloadCheck,
    trailers: Record<string, string>,
  ): AsyncIterable<Buffer> {
    if (payload.kind !== "chunked") return req;
    if (
      !(header(req, "content-encoding") ?? "").includes("aws-chunked") &&
      header(req, "x-amz-decoded-content-length") === undefined
    ) {
      throw new S3Failure(400, "InvalidRequest", "Streaming payloads need Content-Encoding: aws-chunked");
    }
    const options = {
      trailerNames: payload.trailerNames,
      onTrailers: (t: Record<string, string>) => Object.assign(trailers, t),
      ...(payload.signing ? { signing: payload.signing } : {}),
    };
    return decodeAwsChunked(req, options);
  }

  /** Reads, stores and checks a body against every digest the request declared. */
  private async receive(
    req: IncomingMessage,
    auth: Authenticated,
  ): Promise<{ body: IngestedBody; checksums: Record<string, string> }> {
    const trailers: Record<string, string> = {};
    const body = await this.store.ingest(this.bodySource(req, auth.payload, trailers));
    try {
      const checksums = verifyBody(req, auth.payload, body, trailers);
      return { body, checksums };
    } catch (error) {
      await this.store.discard(body);
      throw error;
    }
  }

  private async receiveText(req: IncomingMessage, auth: Authenticated): Promise<string> {
    const declared = Number(header(req, "content-length") ?? "0");
    if (declared > MAX_XML_BODY)
      throw new S3Failure(400, "MaxMessageLengthExceeded", "Your request was too big.");
    const { body } = await this.receive(req, auth);
    try {
      return await readFile(body.path, "utf8");
    } finally {
      await this.store.discard(body);
    }
  }

  // --- bucket operations ---

  private listBuckets(res: ServerResponse): void {
    send(
      res,
      200,
      xmlDocument("ListAllMyBucketsResult", { Owner: { ID: "runctl", DisplayName: "runctl" }, Buckets: {} }),
    );
  }

  private async bucketOperation(
    req: IncomingMessage,
    res: ServerResponse,
    auth: Authenticated,
    bucket: string,
    query: Map<string, string>,
  ): Promise<void> {
    const method = req.method ?? "GET";
    if (method === "PUT" && query.size === 0) {
      await this.store.createBucket(bucket);
      res.writeHead(200, { Location: `/${bucket}` }).end();
      return;
    }
    if (method === "HEAD") {
      this.store.requireBucket(bucket);
      res.writeHead(200, { "x-amz-bucket-region": "us-east-1" }).end();
      return;
    }
    if (method === "GET" && query.get("list-type") === "2") return this.listObjects(res, auth, bucket, query);
    if (method === "GET" && query.has("uploads")) {
      const prefix = query.get("prefix") ?? "";
      this.checkListAccess(auth.credential, prefix);
      const uploads = this.store.listUploads(bucket, prefix);
      send(
        res,
        200,
        xmlDocument("ListMultipartUploadsResult", {
          Bucket: bucket,
          Prefix: prefix,
          MaxUploads: 1000,
          IsTruncated: false,
          Upload: uploads.map((u) => ({
            Key: u.key,
            UploadId: u.uploadId,
            Initiated: u.initiated,
            StorageClass: "STANDARD",
          })),
        }),
      );
      return;
    }
    if (method === "GET" && query.has("location")) {
      this.store.requireBucket(bucket);
      send(res, 200, xmlDocument("LocationConstraint", {}));
      return;
    }
    if (method === "POST" && query.has("delete")) return this.deleteObjects(req, res, auth, bucket);
    if (method === "GET") {
      throw new S3Failure(
        501,
        "NotImplemented",
        "Only ListObjectsV2 (list-type=2) listings are implemented by this emulator.",
      );
    }
    throw new S3Failure(
      405,
      "MethodNotAllowed",
      "The specified method is not allowed against this resource.",
    );
  }

  private listObjects(
    res: ServerResponse,
    auth: Authenticated,
    bucket: string,
    query: Map<string, string>,
  ): void {
    const parsed = ListParams.safeParse(Object.fromEntries(query));
    if (!parsed.success)
      throw new S3Failure(
        400,
        "InvalidArgument",
        `Invalid listing parameters: ${parsed.error.issues[0]?.message}`,
      );
    const p = parsed.data;
    this.checkListAccess(auth.credential, p.prefix);
    let after = p["start-after"];
    if (p["continuation-token"] !== undefined) {
      const decoded = Buffer.from(p["continuation-token"], "base64url").toString("utf8");
      if (!decoded.startsWith("k:"))
        throw new S3Failure(400, "InvalidArgument", "The continuation token provided is incorrect");
      after = decoded.slice(2);
    }
    const maxKeys = Math.min(p["max-keys"], 1000);
    const result = this.store.list(bucket, { prefix: p.prefix, delimiter: p.delimiter, after, maxKeys });
    const enc = (s: string) =>
      p["encoding-type"] === "url" ? encodeURIComponent(s).replace(/%2F/g, "/") : s;
    const doc: Record<string, unknown> = {
      Name: bucket,
      Prefix: enc(p.prefix),
      KeyCount: result.objects.length + result.prefixes.length,
      MaxKeys: maxKeys,
      IsTruncated: result.truncated,
    };
    if (p.delimiter !== "") doc.Delimiter = enc(p.delimiter);
    if (p["encoding-type"]) doc.EncodingType = "url";
    if (p["continuation-token"] !== undefined) doc.ContinuationToken = p["continuation-token"];
    if (p["start-after"] !== "") doc.StartAfter = enc(p["start-after"]);
    if (result.truncated && result.last !== undefined) {
      doc.NextContinuationToken = Buffer.from(`k:${result.last}`).toString("base64url");
    }
    doc.Contents = result.objects.map((o) => ({
      Key: enc(o.key),
      LastModified: o.lastModified,
      ETag: o.etag,
      Size: o.size,
      StorageClass: "STANDARD",
    }));
    doc.CommonPrefixes = result.prefixes.map((prefix) => ({ Prefix: enc(prefix) }));
    send(res, 200, xmlDocument("ListBucketResult", doc));
  }

  private async deleteObjects(
    req: IncomingMessage,
    res: ServerResponse,
    auth: Authenticated,
    bucket: string,
  ): Promise<void> {
    if (
      header(req, "content-md5") === undefined &&
      !Object.keys(req.headers).some((h) => h.startsWith("x-amz-checksum-")) &&
      header(req, "x-amz-trailer") === undefined
    ) {
      throw new S3Failure(400, "InvalidRequest", "Missing required header for this request: Content-MD5");
    }
    this.store.requireBucket(bucket);
    const { keys, quiet } = parseDeleteObjects(await this.receiveText(req, auth));
    const deleted: Array<{ Key: string }> = [];
    const errors: Array<{ Key: string; Code: string; Message: string }> = [];
    for (const key of keys) {
      try {
        this.checkAccess(auth.credential, key);
        await this.store.delete(bucket, key);
        if (!quiet) deleted.push({ Key: key });
      } catch (error) {
        const f = error instanceof S3Failure ? error : new S3Failure(500, "InternalError", String(error));
        errors.push({ Key: key, Code: f.code, Message: f.message });
      }
    }
    send(res, 200, xmlDocument("DeleteResult", { Deleted: deleted, Error: errors }));
  }

  // --- object operations ---

  private async putObject(
    req: IncomingMessage,
    res: ServerResponse,
    auth: Authenticated,
    bucket: string,
    key: string,
  ): Promise<void> {
    this.store.requireBucket(bucket);
    const condition = writeCondition(req);
    // Refuse before reading a body that could not be stored anyway.
    if (condition.ifNoneMatch === "*" && this.store.head(bucket, key))
      throw preconditionFailed("If-None-Match");
    const { body, checksums } = await this.receive(req, auth);
    let record: ObjectRecord;
    try {
      record = await this.store.commit(
        bucket,
        key,
        body.path,
        {
          size: body.size,
          etag: `"${body.md5.toString("hex")}"`,
          contentType: header(req, "content-type") ?? "binary/octet-stream",
          metadata: userMetadata(req),
          checksums,
        },
        condition,
      );
    } catch (error) {
      await this.store.discard(body);
      throw error;
    }
    res.writeHead(200, { ETag: record.etag, ...checksumHeaders(record.checksums) }).end();
  }

  private getObject(
    req: IncomingMessage,
    res: ServerResponse,
    bucket: string,
    key: string,
    headOnly: boolean,
  ): Promise<void> {
    const record = this.store.head(bucket, key);
    if (!record) throw noSuchKey(key);
    const ifMatch = header(req, "if-match");
    if (ifMatch !== undefined && ifMatch !== "*" && unquote(ifMatch) !== unquote(record.etag))
      throw preconditionFailed("If-Match");
    const ifNoneMatch = header(req, "if-none-match");
    if (ifNoneMatch !== undefined && (ifNoneMatch === "*" || unquote(ifNoneMatch) === unquote(record.etag))) {
      res.writeHead(304, { ETag: record.etag }).end();
      return Promise.resolve();
    }
    const headers: Record<string, string | number> = {
      ETag: record.etag,
      "Last-Modified": httpDate(record.lastModified),
      "Content-Type": record.contentType,
      "Accept-Ranges": "bytes",
    };
    for (const [name, value] of Object.entries(record.metadata)) headers[`x-amz-meta-${name}`] = value;
    const range = parseRange(header(req, "range"), record.size);
    // Stored checksums describe the whole object, so S3 returns none for a range.
    if (header(req, "x-amz-checksum-mode") === "ENABLED" && !range)
      Object.assign(headers, checksumHeaders(record.checksums));
    if (range) {
      headers["Content-Range"] = `bytes ${range.start}-${range.end}/${record.size}`;
      headers["Content-Length"] = range.end - range.start + 1;
    } else {
      headers["Content-Length"] = record.size;
    }
    res.writeHead(range ? 206 : 200, headers);
    if (headOnly || record.size === 0) {
      res.end();
      return Promise.resolve();
    }
    return pipeline(this.store.openRead(bucket, record, range), res);
  }

  private async createUpload(
    req: IncomingMessage,
    res: ServerResponse,
    bucket: string,
    key: string,
  ): Promise<void> {
    const upload = await this.store.createUpload(
      bucket,
      key,
      header(req, "content-type") ?? "binary/octet-stream",
      userMetadata(req),
    );
    req.resume();
    send(
      res,
      200,
      xmlDocument("InitiateMultipartUploadResult", { Bucket: bucket, Key: key, UploadId: upload.uploadId }),
    );
  }

  private async uploadPart(
    req: IncomingMessage,
    res: ServerResponse,
    auth: Authenticated,
    bucket: string,
    key: string,
    query: Map<string, string>,
  ): Promise<void> {
    const parsed = PartParams.safeParse(Object.fromEntries(query));
    if (!parsed.success)
      throw new S3Failure(
        400,
        "InvalidArgument",
        "Part number must be an integer between 1 and 10000, inclusive",
      );
    this.store.upload(bucket, key, parsed.data.uploadId);
    const { body, checksums } = await this.receive(req, auth);
    try {
      const part = await this.store.putPart(bucket, key, parsed.data.uploadId, parsed.data.partNumber, body);
      res.writeHead(200, { ETag: part.etag, ...checksumHeaders(checksums) }).end();
    } catch (error) {
      await this.store.discard(body);
      throw error;
    }
  }

  private listParts(res: ServerResponse, bucket: string, key: string, uploadId: string): void {
    const upload = this.store.upload(bucket, key, uploadId);
    const parts = [...upload.parts.values()].sort((a, b) => a.partNumber - b.partNumber);
    send(
      res,
      200,
      xmlDocument("ListPartsResult", {
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        MaxParts: 1000,
        IsTruncated: false,
        Part: parts.map((p) => ({
          PartNumber: p.partNumber,
          LastModified: p.lastModified,
          ETag: p.etag,
          Size: p.size,
        })),
      }),
    );
  }

  private async completeUpload(
    req: IncomingMessage,
    res: ServerResponse,
    auth: Authenticated,
    bucket: string,
    key: string,
    uploadId: string,
  ): Promise<void> {
    this.store.upload(bucket, key, uploadId);
    const parts = parseCompleteMultipart(await this.receiveText(req, auth));
    const record = await this.store.completeUpload(bucket, key, uploadId, parts, writeCondition(req));
    send(
      res,
      200,
      xmlDocument("CompleteMultipartUploadResult", {
        Location: `/${bucket}/${key}`,
        Bucket: bucket,
        Key: key,
        ETag: record.etag,
      }),
    );
  }
}

function send(res: ServerResponse, status: number, xml: string): void {
  res.writeHead(status, { "Content-Type": "application/xml", "Content-Length": Buffer.byteLength(xml) });
  res.end(xml);
}

function unquote(etag: string): string {
  return etag.trim().replace(/^W\//, "").replace(/^"|"$/g, "");
}

function writeCondition(req: IncomingMessage): WriteCondition {
  const condition: WriteCondition = {};
  const ifNoneMatch = header(req, "if-none-match");
  const ifMatch = header(req, "if-match");
  if (ifNoneMatch !== undefined) condition.ifNoneMatch = ifNoneMatch.trim();
  if (ifMatch !== undefined) condition.ifMatch = ifMatch.trim();
  return condition;
}

function userMetadata(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith("x-amz-meta-") && value !== undefined)
      out[name.slice("x-amz-meta-".length)] = String(value);
  }
  return out;
}

function checksumHeaders(checksums: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [algorithm, value] of Object.entries(checksums)) out[`x-amz-checksum-${algorithm}`] = value;
  return out;
}

/** `bytes=a-b`, `bytes=a-`, `bytes=-n`; a range past the end is S3's 416 InvalidRange. */
function parseRange(value: string | undefined, size: number): { start: number; end: number } | undefined {
  if (value === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  let start: number;
  let end: number;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) throw invalidRange(size);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== "" && Number(m[2]) < start) return undefined;
  }
  if (start >= size) throw invalidRange(size);
  return { start, end };
}

function invalidRange(size: number): S3Failure {
  return new S3Failure(416, "InvalidRange", "The requested range is not satisfiable", {
    ActualObjectSize: String(size),
  });
}

/** Every digest the request declared (payload hash, Content-MD5, flexible checksums) must match what arrived. */
function verifyBody(
  req: IncomingMessage,
  payload: PayloadCheck,
  body: IngestedBody,
  trailers: Record<string, string>,
): Record<string, string> {
  if (payload.kind === "sha256" && payload.hex !== body.sha256) {
    throw new S3Failure(
      400,
      "XAmzContentSHA256Mismatch",
      "The provided 'x-amz-content-sha256' header does not match what was computed.",
      {
        ClientComputedContentSHA256: payload.hex,
        S3ComputedContentSHA256: body.sha256,
      },
    );
  }
  if (payload.kind === "chunked") {
    const decoded = header(req, "x-amz-decoded-content-length");
    if (decoded !== undefined && Number(decoded) !== body.size) {
      throw new S3Failure(
        400,
        "IncompleteBody",
        "You did not provide the number of bytes specified by the x-amz-decoded-content-length header.",
      );
    }
  }
  const md5 = header(req, "content-md5");
  if (md5 !== undefined && md5 !== body.md5.toString("base64")) {
    throw new S3Failure(400, "BadDigest", "The Content-MD5 you specified did not match what we received.");
  }
  const declared: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (
      name.startsWith("x-amz-checksum-") &&
      name !== "x-amz-checksum-algorithm" &&
      name !== "x-amz-checksum-type" &&
      typeof value === "string"
    ) {
      declared[name.slice("x-amz-checksum-".length)] = value;
    }
  }
  for (const [name, value] of Object.entries(trailers)) {
    if (name.startsWith("x-amz-checksum-")) declared[name.slice("x-amz-checksum-".length)] = value;
  }
  const computed: Record<string, string> = {
    crc32: uint32Base64(body.crc32),
    sha256: Buffer.from(body.sha256, "hex").toString("base64"),
  };
  for (const [algorithm, value] of Object.entries(declared)) {
    const actual = computed[algorithm];
    if (actual === undefined) {
      throw new S3Failure(
        501,
        "NotImplemented",
        `This emulator checks CRC32 and SHA256 checksums, not ${algorithm.toUpperCase()}`,
      );
    }
    if (actual !== value) {
      throw new S3Failure(
        400,
        "BadDigest",
        `The ${algorithm.toUpperCase()} you specified did not match the calculated checksum.`,
      );
    }
  }
  return declared;
}

function uint32Base64(n: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b.toString("base64");
}
