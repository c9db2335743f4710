/**
 * `Content-Encoding: aws-chunked` bodies: `hex-size[;chunk-signature=sig]\r\n data \r\n …`,
 * ending with a zero-size chunk and, in the trailer variants, `name:value` trailer lines
 * (a flexible checksum, and in the signed variant `x-amz-trailer-signature`). Signed chunks are
 * verified as they stream, each chained on the previous signature, so a tampered chunk fails
 * before the object is committed.
 */
import { createHash } from "node:crypto";
import { S3Failure } from "./s3-failure.ts";
import { chunkStringToSign, hexSignature, type Scope, sameSignature, trailerStringToSign } from "./sigv4.ts";

export interface ChunkSigning {
  key: Buffer;
  amzDate: string;
  scope: Scope;
  /** The request's own signature: the first chunk chains on it. */
  seed: string;
}

export interface ChunkedOptions {
  signing?: ChunkSigning;
  /** Trailer header names announced in `x-amz-trailer`. */
  trailerNames: string[];
  /** Receives the trailers once the body has been read. */
  onTrailers: (trailers: Record<string, string>) => void;
}

const MAX_LINE = 8192;

class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private readonly it: AsyncIterator<Buffer>;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<void> {
    const next = await this.it.next();
    if (next.done)
      throw new S3Failure(400, "IncompleteBody", "The request body ended inside an aws-chunked frame");
    this.buf = this.buf.length === 0 ? next.value : Buffer.concat([this.buf, next.value]);
  }

  async line(): Promise<string> {
    for (;;) {
      const at = this.buf.indexOf("\r\n");
      if (at !== -1) {
        const text = this.buf.subarray(0, at).toString("latin1");
        this.buf = this.buf.subarray(at + 2);
        return text;
      }
      if (this.buf.length > MAX_LINE)
        throw new S3Failure(400, "InvalidChunkSizeError", "Chunk header too long");
      await this.fill();
    }
  }

  async *exact(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0) await this.fill();
      const take = Math.min(left, this.buf.length);
      yield this.buf.subarray(0, take);
      this.buf = this.buf.subarray(take);
      left -= take;
    }
  }

  async crlf(): Promise<void> {
    const rest = await this.line();
    if (rest !== "")
      throw new S3Failure(400, "InvalidChunkSizeError", "Chunk data is longer than its declared size");
  }
}

export async function* decodeAwsChunked(
  source: AsyncIterable<Buffer>,
  options: ChunkedOptions,
): AsyncGenerator<Buffer> {
  const reader = new ByteReader(source);
  let previous = options.signing?.seed ?? "";
  for (;;) {
    const header = await reader.line();
    const [sizeText, ...extensions] = header.split(";");
    if (!sizeText || !/^[0-9a-fA-F]+$/.test(sizeText)) {
      throw new S3Failure(400, "InvalidChunkSizeError", `Malformed chunk header: ${header.slice(0, 80)}`);
    }
    const size = Number.parseInt(sizeText, 16);
    const declared = extensions
      .find((e) => e.startsWith("chunk-signature="))
      ?.slice("chunk-signature=".length);
    if (options.signing && declared === undefined) {
      throw new S3Failure(
        403,
        "SignatureDoesNotMatch",
        "A signed aws-chunked body has a chunk without a signature",
      );
    }
    const hash = createHash("sha256");
    for await (const piece of reader.exact(size)) {
      if (options.signing) hash.update(piece);
      if (size > 0) yield piece;
    }
    if (options.signing && declared !== undefined) {
      const expected = hexSignature(
        options.signing.key,
        chunkStringToSign(options.signing.amzDate, options.signing.scope, previous, hash.digest("hex")),
      );
      if (!sameSignature(expected, declared)) {
        throw new S3Failure(
          403,
          "SignatureDoesNotMatch",
          "The chunk signature we calculated does not match the signature you provided.",
        );
      }
      previous = expected;
    }
    if (size === 0) break;
    await reader.crlf();
  }
  const trailers: Record<string, string> = {};
  let trailerText = "";
  let trailerSignature: string | undefined;
  for (;;) {
    const line = await reader.line();
    if (line === "") break;
    const colon = line.indexOf(":");
    if (colon === -1)
      throw new S3Failure(400, "MalformedTrailerError", `Malformed trailer: ${line.slice(0, 80)}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "x-amz-trailer-signature") trailerSignature = value;
    else {
      trailers[name] = value;
      trailerText += `${name}:${value}\n`;
    }
  }
  for (const name of options.trailerNames) {
    if (trailers[name] === undefined) {
      throw new S3Failure(400, "MalformedTrailerError", `The announced trailer ${name} is missing`);
    }
  }
  if (options.signing && options.trailerNames.length > 0) {
    if (trailerSignature === undefined) {
      throw new S3Failure(
        403,
        "SignatureDoesNotMatch",
        "The trailer of a signed aws-chunked body is not signed",
      );
    }
    const expected = hexSignature(
      options.signing.key,
      trailerStringToSign(
        options.signing.amzDate,
        options.signing.scope,
        previous,
        createHash("sha256").update(trailerText).digest("hex"),
      ),
    );
    if (!sameSignature(expected, trailerSignature)) {
      throw new S3Failure(403, "SignatureDoesNotMatch", "The trailer signature does not match");
    }
  }
  options.onTrailers(trailers);
}
