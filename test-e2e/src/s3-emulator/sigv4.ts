/**
 * AWS Signature Version 4 as S3 checks it, written from the specification rather than from
 * the SDK's signer: a bug shared by signer and verifier would otherwise pass unnoticed.
 * S3's quirks are kept: the path is used as sent (never normalised or re-encoded) and the
 * payload hash is whatever `x-amz-content-sha256` declares.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { S3Failure } from "./s3-failure.ts";

export const ALGORITHM = "AWS4-HMAC-SHA256";
export const EMPTY_SHA256 = createHash("sha256").update("").digest("hex");

export function sha256Hex(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac("sha256", key).update(data, "utf8").digest();
}

export function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), "aws4_request");
}

export function hexSignature(key: Buffer, stringToSign: string): string {
  return createHmac("sha256", key).update(stringToSign, "utf8").digest("hex");
}

export function sameSignature(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** RFC 3986 unreserved characters stay, everything else is %XX (upper case), as SigV4 requires. */
export function uriEncode(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

export interface Scope {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
}

/** `AKID/20260101/us-east-1/s3/aws4_request` → its parts; anything else is a malformed credential. */
export function parseCredential(credential: string): Scope {
  const parts = credential.split("/");
  if (parts.length !== 5 || parts[4] !== "aws4_request" || parts.some((p) => p === "")) {
    throw new S3Failure(400, "AuthorizationQueryParametersError", `Malformed credential: ${credential}`);
  }
  const [accessKeyId, date, region, service] = parts as [string, string, string, string];
  return { accessKeyId, date, region, service };
}

export function scopeString(scope: Scope): string {
  return `${scope.date}/${scope.region}/${scope.service}/aws4_request`;
}

/** Raw `a=1&b=2` pairs, decoded; `+` is a literal plus in S3 query strings signed by SigV4 clients. */
export function rawQueryPairs(rawQuery: string): Array<[string, string]> {
  if (rawQuery === "") return [];
  return rawQuery.split("&").map((pair) => {
    const eq = pair.indexOf("=");
    const name = eq === -1 ? pair : pair.slice(0, eq);
    const value = eq === -1 ? "" : pair.slice(eq + 1);
    return [decodeURIComponent(name), decodeURIComponent(value)];
  });
}

function canonicalQuery(pairs: Array<[string, string]>, omit?: string): string {
  return pairs
    .filter(([name]) => name !== omit)
    .map(([name, value]) => [uriEncode(name), uriEncode(value)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([n, v]) => `${n}=${v}`)
    .join("&");
}

/** Header values as signed: every occurrence, trimmed, inner runs of spaces collapsed, joined by commas. */
function canonicalHeaders(req: IncomingMessage, signed: string[]): string {
  const values = new Map<string, string[]>();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = (req.rawHeaders[i] as string).toLowerCase();
    const list = values.get(name) ?? [];
    list.push((req.rawHeaders[i + 1] as string).trim().replace(/ +/g, " "));
    values.set(name, list);
  }
  return signed
    .map((name) => {
      const list = values.get(name);
      if (list === undefined) {
        throw new S3Failure(
          403,
          "SignatureDoesNotMatch",
          `Signed header ${name} is missing from the request`,
        );
      }
      return `${name}:${list.join(",")}\n`;
    })
    .join("");
}

export interface SignedRequestParts {
  method: string;
  rawPath: string;
  queryPairs: Array<[string, string]>;
  signedHeaders: string[];
  payloadHash: string;
  amzDate: string;
  scope: Scope;
  /** Query parameter left out of the canonical query (the presigned signature itself). */
  omitQuery?: string;
}

export function stringToSign(req: IncomingMessage, parts: SignedRequestParts): string {
  const canonical = [
    parts.method,
    parts.rawPath,
    canonicalQuery(parts.queryPairs, parts.omitQuery),
    canonicalHeaders(req, parts.signedHeaders),
    parts.signedHeaders.join(";"),
    parts.payloadHash,
  ].join("\n");
  return [ALGORITHM, parts.amzDate, scopeString(parts.scope), sha256Hex(canonical)].join("\n");
}

/** `20260101T000000Z` → epoch ms; NaN when malformed. */
export function parseAmzDate(value: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return Number.NaN;
  const [, y, mo, d, h, mi, s] = m;
  return Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
}

/** The chunk signature of `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: each chains on the previous one. */
export function chunkStringToSign(
  amzDate: string,
  scope: Scope,
  previous: string,
  chunkHash: string,
): string {
  return ["AWS4-HMAC-SHA256-PAYLOAD", amzDate, scopeString(scope), previous, EMPTY_SHA256, chunkHash].join(
    "\n",
  );
}

export function trailerStringToSign(
  amzDate: string,
  scope: Scope,
  previous: string,
  trailerHash: string,
): string {
  return ["AWS4-HMAC-SHA256-TRAILER", amzDate, scopeString(scope), previous, trailerHash].join("\n");
}
