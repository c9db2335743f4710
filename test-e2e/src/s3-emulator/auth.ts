/**
 * Who sent a request, and how its body is to be checked: SigV4 in the Authorization header or in
 * the query (presigned URLs), refused with the codes and statuses S3 uses.
 */
import type { IncomingMessage } from "node:http";
import type { ChunkSigning } from "./aws-chunked.ts";
import type { EmulatorCredential } from "./credentials.ts";
import { S3Failure } from "./s3-failure.ts";
import {
  ALGORITHM,
  hexSignature,
  parseAmzDate,
  parseCredential,
  type Scope,
  sameSignature,
  signingKey,
  stringToSign,
} from "./sigv4.ts";

const MAX_SKEW_MS = 15 * 60 * 1000;
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

export type PayloadCheck =
  | { kind: "unsigned" }
  | { kind: "sha256"; hex: string }
  | { kind: "chunked"; signing?: ChunkSigning; trailerNames: string[] };

export interface Authenticated {
  credential: EmulatorCredential;
  payload: PayloadCheck;
}

export interface RequestTarget {
  method: string;
  rawPath: string;
  queryPairs: Array<[string, string]>;
}

export class CredentialBook {
  private readonly byId: Map<string, EmulatorCredential>;

  constructor(credentials: readonly EmulatorCredential[]) {
    this.byId = new Map(credentials.map((c) => [c.accessKeyId, c]));
  }

  /** A known, unexpired key; the failures are the ones S3 gives for each case. */
  lookup(accessKeyId: string, sessionToken: string | undefined, now: number): EmulatorCredential {
    const credential = this.byId.get(accessKeyId);
    if (credential === undefined) {
      throw new S3Failure(
        403,
        "InvalidAccessKeyId",
        "The AWS Access Key Id you provided does not exist in our records.",
        {
          AWSAccessKeyId: accessKeyId,
        },
      );
    }
    if (credential.sessionToken !== undefined || sessionToken !== undefined) {
      if (credential.sessionToken !== sessionToken) {
        throw new S3Failure(400, "InvalidToken", "The provided token is malformed or otherwise invalid.");
      }
    }
    if (credential.expiresAt !== undefined && Date.parse(credential.expiresAt) <= now) {
      throw new S3Failure(400, "ExpiredToken", "The provided token has expired.");
    }
    return credential;
  }

  secretFor(accessKeyId: string): string | undefined {
    return this.byId.get(accessKeyId)?.secretAccessKey;
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(",") : v;
}

export function authenticate(
  req: IncomingMessage,
  target: RequestTarget,
  book: CredentialBook,
  now = Date.now(),
): Authenticated {
  const authorization = header(req, "authorization");
  const query = new Map(target.queryPairs);
  if (authorization !== undefined) return headerAuth(req, target, book, authorization, now);
  if (query.has("X-Amz-Algorithm")) return queryAuth(req, target, book, query, now);
  throw new S3Failure(403, "AccessDenied", "Anonymous access is not allowed; sign the request with SigV4.");
}

function headerAuth(
  req: IncomingMessage,
  target: RequestTarget,
  book: CredentialBook,
  authorization: string,
  now: number,
): Authenticated {
  if (!authorization.startsWith(`${ALGORITHM} `)) {
    throw new S3Failure(
      400,
      "InvalidArgument",
      "Unsupported Authorization Type; only AWS4-HMAC-SHA256 is accepted.",
    );
  }
  const fields = new Map<string, string>();
  for (const part of authorization.slice(ALGORITHM.length + 1).split(",")) {
    const eq = part.indexOf("=");
    if (eq !== -1) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credentialText = fields.get("Credential");
  const signedHeadersText = fields.get("SignedHeaders");
  const signature = fields.get("Signature");
  if (!credentialText || !signedHeadersText || !signature) {
    throw new S3Failure(400, "AuthorizationHeaderMalformed", "The authorization header is malformed.");
  }
  const scope = parseCredential(credentialText);
  const credential = book.lookup(scope.accessKeyId, header(req, "x-amz-security-token"), now);
  const amzDate = header(req, "x-amz-date");
  if (amzDate === undefined) {
    throw new S3Failure(403, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header");
  }
  checkDate(amzDate, scope, now);
  const payloadHash = header(req, "x-amz-content-sha256");
  if (payloadHash === undefined) {
    throw new S3Failure(
      400,
      "InvalidRequest",
      "Missing required header for this request: x-amz-content-sha256",
    );
  }
  const signedHeaders = signedHeadersText.split(";");
  if (!signedHeaders.includes("host")) {
    throw new S3Failure(400, "AuthorizationHeaderMalformed", "SignedHeaders must include host");
  }
  const key = signingKey(credential.secretAccessKey, scope.date, scope.region, scope.service);
  const toSign = stringToSign(req, { ...target, signedHeaders, payloadHash, amzDate, scope });
  const expected = hexSignature(key, toSign);
  if (!sameSignature(expected, signature)) throw signatureMismatch(scope.accessKeyId, toSign);
  return { credential, payload: payloadCheck(req, payloadHash, { key, amzDate, scope, seed: expected }) };
}

function queryAuth(
  req: IncomingMessage,
  target: RequestTarget,
  book: CredentialBook,
  query: Map<string, string>,
  now: number,
): Authenticated {
  if (query.get("X-Amz-Algorithm") !== ALGORITHM) {
    throw new S3Failure(
      400,
      "AuthorizationQueryParametersError",
      "X-Amz-Algorithm only supports AWS4-HMAC-SHA256",
    );
  }
  const credentialText = query.get("X-Amz-Credential");
  const amzDate = query.get("X-Amz-Date");
  const expiresText = query.get("X-Amz-Expires");
  const signedHeadersText = query.get("X-Amz-SignedHeaders");
  const signature = query.get("X-Amz-Signature");
  if (!credentialText || !amzDate || !expiresText || !signedHeadersText || !signature) {
    throw new S3Failure(
      400,
      "AuthorizationQueryParametersError",
      "Query-string authentication requires X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature.",
    );
  }
  const scope = parseCredential(credentialText);
  const credential = book.lookup(scope.accessKeyId, query.get("X-Amz-Security-Token"), now);
  const expires = Number(expiresText);
  if (!Number.isInteger(expires) || expires < 1 || expires > MAX_PRESIGN_SECONDS) {
    throw new S3Failure(
      400,
      "AuthorizationQueryParametersError",
      "X-Amz-Expires must be between 1 and 604800 seconds",
    );
  }
  const signedAt = parseAmzDate(amzDate);
  if (Number.isNaN(signedAt) || amzDate.slice(0, 8) !== scope.date) {
    throw new S3Failure(400, "AuthorizationQueryParametersError", `Invalid X-Amz-Date: ${amzDate}`);
  }
  if (now > signedAt + expires * 1000) {
    throw new S3Failure(403, "AccessDenied", "Request has expired", {
      "X-Amz-Expires": expiresText,
      Expires: new Date(signedAt + expires * 1000).toISOString(),
      ServerTime: new Date(now).toISOString(),
    });
  }
  if (signedAt > now + MAX_SKEW_MS) {
    throw new S3Failure(403, "AccessDenied", "Request is not valid yet");
  }
  const payloadHash =
    query.get("X-Amz-Content-Sha256") ?? header(req, "x-amz-content-sha256") ?? "UNSIGNED-PAYLOAD";
  const signedHeaders = signedHeadersText.split(";");
  const key = signingKey(credential.secretAccessKey, scope.date, scope.region, scope.service);
  const toSign = stringToSign(req, {
    ...target,
    signedHeaders,
    payloadHash,
    amzDate,
    scope,
    omitQuery: "X-Amz-Signature",
  });
  if (!sameSignature(hexSignature(key, toSign), signature))
    throw signatureMismatch(scope.accessKeyId, toSign);
  return { credential, payload: payloadCheck(req, payloadHash, undefined) };
}

function checkDate(amzDate: string, scope: Scope, now: number): void {
  const at = parseAmzDate(amzDate);
  if (Number.isNaN(at) || amzDate.slice(0, 8) !== scope.date) {
    throw new S3Failure(
      403,
      "AccessDenied",
      `Invalid x-amz-date ${amzDate} for credential date ${scope.date}`,
    );
  }
  if (Math.abs(now - at) > MAX_SKEW_MS) {
    throw new S3Failure(
      403,
      "RequestTimeTooSkewed",
      "The difference between the request time and the current time is too large.",
      {
        RequestTime: amzDate,
        ServerTime: new Date(now).toISOString(),
      },
    );
  }
}

function signatureMismatch(accessKeyId: string, toSign: string): S3Failure {
  return new S3Failure(
    403,
    "SignatureDoesNotMatch",
    "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
    { AWSAccessKeyId: accessKeyId, StringToSign: toSign },
  );
}

function payloadCheck(
  req: IncomingMessage,
  payloadHash: string,
  signing: ChunkSigning | undefined,
): PayloadCheck {
  const trailerNames = (header(req, "x-amz-trailer") ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "");
  switch (payloadHash) {
    case "UNSIGNED-PAYLOAD":
      return { kind: "unsigned" };
    case "STREAMING-UNSIGNED-PAYLOAD-TRAILER":
      return { kind: "chunked", trailerNames };
    case "STREAMING-AWS4-HMAC-SHA256-PAYLOAD":
    case "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER":
      if (signing === undefined) {
        throw new S3Failure(400, "InvalidRequest", "Signed streaming payloads need header authentication");
      }
      return { kind: "chunked", signing, trailerNames };
    default:
      if (!/^[0-9a-f]{64}$/.test(payloadHash)) {
        throw new S3Failure(
          400,
          "InvalidArgument",
          `x-amz-content-sha256 must be a SHA-256 or a known mode, not ${payloadHash}`,
        );
      }
      return { kind: "sha256", hex: payloadHash };
  }
}
