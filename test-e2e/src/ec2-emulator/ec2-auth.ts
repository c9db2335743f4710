/**
 * SigV4 as EC2 checks it: header authentication only, the payload hash computed from the form
 * body (EC2 clients send no `x-amz-content-sha256`), the credential scoped to service `ec2`.
 * The canonical-request primitives and the credential book are the S3 emulator's, so both
 * emulators refuse the same keys the same way; only the error codes are EC2's.
 */
import type { IncomingMessage } from "node:http";
import { CredentialBook } from "../s3-emulator/auth.ts";
import type { EmulatorCredential } from "../s3-emulator/credentials.ts";
import { S3Failure } from "../s3-emulator/s3-failure.ts";
import {
  ALGORITHM,
  hexSignature,
  parseAmzDate,
  parseCredential,
  type Scope,
  sameSignature,
  sha256Hex,
  signingKey,
  stringToSign,
} from "../s3-emulator/sigv4.ts";
import { Ec2Failure } from "./ec2-failure.ts";

export { CredentialBook };

const MAX_SKEW_MS = 15 * 60 * 1000;

export interface Ec2Caller {
  credential: EmulatorCredential;
  /** The region the request was signed for: EC2 endpoints are regional. */
  region: string;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(",") : v;
}

const authFailure = (message = "AWS was not able to validate the provided access credentials") =>
  new Ec2Failure(401, "AuthFailure", message);

export function authenticateEc2(
  req: IncomingMessage,
  rawPath: string,
  queryPairs: Array<[string, string]>,
  body: Buffer,
  book: CredentialBook,
  now = Date.now(),
  /** The service the credential must be scoped to (`iam` for the IAM API on this endpoint). */
  service = "ec2",
): Ec2Caller {
  const authorization = header(req, "authorization");
  if (authorization === undefined) {
    throw new Ec2Failure(401, "MissingAuthenticationToken", "Request is missing Authentication Token");
  }
  if (!authorization.startsWith(`${ALGORITHM} `)) {
    throw new Ec2Failure(400, "IncompleteSignature", "Only AWS4-HMAC-SHA256 signatures are accepted.");
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
    throw new Ec2Failure(400, "IncompleteSignature", "The authorization header is incomplete.");
  }
  let scope: Scope;
  let credential: EmulatorCredential;
  try {
    scope = parseCredential(credentialText);
    credential = book.lookup(scope.accessKeyId, header(req, "x-amz-security-token"), now);
  } catch (error) {
    if (error instanceof S3Failure && error.code === "ExpiredToken") {
      throw new Ec2Failure(400, "RequestExpired", "The security token included in the request is expired");
    }
    if (error instanceof S3Failure) throw authFailure();
    throw error;
  }
  if (scope.service !== service) {
    throw new Ec2Failure(
      403,
      "SignatureDoesNotMatch",
      `Credential should be scoped to correct service: '${service}'.`,
    );
  }
  const amzDate = header(req, "x-amz-date");
  const at = amzDate === undefined ? Number.NaN : parseAmzDate(amzDate);
  if (amzDate === undefined || Number.isNaN(at) || amzDate.slice(0, 8) !== scope.date) {
    throw authFailure(`Invalid x-amz-date for credential date ${scope.date}`);
  }
  if (Math.abs(now - at) > MAX_SKEW_MS) {
    throw new Ec2Failure(400, "RequestExpired", `Request has expired. Timestamp date is ${amzDate}`);
  }
  const signedHeaders = signedHeadersText.split(";");
  const key = signingKey(credential.secretAccessKey, scope.date, scope.region, scope.service);
  let toSign: string;
  try {
    toSign = stringToSign(req, {
      method: req.method ?? "POST",
      rawPath,
      queryPairs,
      signedHeaders,
      payloadHash: sha256Hex(body),
      amzDate,
      scope,
    });
  } catch (error) {
    if (error instanceof S3Failure) throw new Ec2Failure(403, "SignatureDoesNotMatch", error.message);
    throw error;
  }
  if (!sameSignature(hexSignature(key, toSign), signature)) {
    throw new Ec2Failure(
      403,
      "SignatureDoesNotMatch",
      "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
    );
  }
  return { credential, region: scope.region };
}
