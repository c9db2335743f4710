/**
 * S3's refusals in runctl's terms: a ProviderError (exit 2) with a stable code, a message that
 * says which credentials were used (environment, which profile, SSO, instance metadata) and a
 * hint naming the fix. An S3 error code alone ("SignatureDoesNotMatch") tells a user nothing
 * about which of their three sets of keys is wrong.
 */
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { isRunctlError, ProviderError, type RunctlError } from "@runctl/core";

export interface S3ErrorContext {
  /** What was being done, e.g. "upload", "list". */
  operation: string;
  bucket: string;
  key?: string;
}

interface SdkErrorLike {
  name?: string;
  Code?: string;
  message?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { statusCode?: number };
}

/** Where the SDK found credentials, in words, from the provider's `$source` features. */
export async function describeCredentialSource(
  client: S3Client,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const profile = (await profileOf(client)) ?? env.AWS_PROFILE ?? "default";
  let credentials: { accessKeyId: string; $source?: Record<string, unknown> };
  try {
    credentials = await client.config.credentials();
  } catch {
    return "no credentials (none found in the environment, profiles, SSO or instance metadata)";
  }
  const features = Object.keys(credentials.$source ?? {});
  const has = (prefix: string) => features.some((f) => f.startsWith(prefix));
  const id = `access key ${credentials.accessKeyId}`;
  if (has("CREDENTIALS_ENV_VARS"))
    return `${id} from environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY`;
  if (has("CREDENTIALS_PROFILE_SSO") || has("CREDENTIALS_SSO"))
    return `${id} from the SSO session of profile "${profile}"`;
  if (has("CREDENTIALS_PROFILE_PROCESS") || has("CREDENTIALS_PROCESS")) {
    return `${id} from the credential_process of profile "${profile}"`;
  }
  if (has("CREDENTIALS_PROFILE"))
    return `${id} from profile "${profile}" (~/.aws/credentials or ~/.aws/config)`;
  if (has("CREDENTIALS_HTTP")) return `${id} from the container credentials endpoint`;
  if (has("CREDENTIALS_CODE")) return `${id} (passed explicitly to the S3 client)`;
  // The instance-metadata provider leaves no feature mark; it is the last link of the chain.
  if (features.length === 0) return `${id} from instance metadata (IMDS)`;
  return `${id} from ${features.join(", ")}`;
}

async function profileOf(client: S3Client): Promise<string | undefined> {
  const profile = (client.config as { profile?: string }).profile;
  return profile;
}

function hintForCredentials(source: string): string {
  if (source.includes("environment variables")) {
    return "Fix AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or unset them to use a profile.";
  }
  const profile = /profile "([^"]+)"/.exec(source)?.[1];
  if (profile) {
    return `Fix the keys of profile "${profile}" (\`aws configure --profile ${profile}\`), or pick another with AWS_PROFILE or [s3] profile.`;
  }
  return "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run `aws sso login`.";
}

/** Maps anything the SDK threw to a RunctlError; errors that already are one pass through. */
export async function s3Error(error: unknown, client: S3Client, ctx: S3ErrorContext): Promise<RunctlError> {
  if (isRunctlError(error)) return error;
  let e = (error ?? {}) as SdkErrorLike;
  // HEAD answers carry no body, so the SDK can only name the status ("BadRequest", "Unknown"). A one-byte
  // GET of the same key gets S3's real code (ExpiredToken, SignatureDoesNotMatch, AccessDenied).
  const bodiless = e.$metadata?.httpStatusCode;
  if (
    (bodiless === 400 || bodiless === 403) &&
    ctx.key !== undefined &&
    !KNOWN_CODES.has(e.Code ?? e.name ?? "")
  ) {
    e = (await diagnose(client, ctx.bucket, ctx.key)) ?? e;
  }
  const code = e.Code ?? e.name ?? "";
  const status = e.$metadata?.httpStatusCode ?? e.$response?.statusCode;
  const where = `s3://${ctx.bucket}/${ctx.key ?? ""}`;
  const details: Record<string, unknown> = { operation: ctx.operation, bucket: ctx.bucket, s3Code: code };
  if (ctx.key !== undefined) details.key = ctx.key;
  if (status !== undefined) details.status = status;

  if (code === "CredentialsProviderError" || /Could not load credentials/i.test(e.message ?? "")) {
    return new ProviderError(`No AWS credentials found for ${ctx.operation} of ${where}`, {
      code: "auth",
      hint: "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (or [s3] profile), or run `aws sso login`.",
      details,
      cause: error,
    });
  }
  if (["ECONNREFUSED", "ENOTFOUND", "ECONNRESET", "EAI_AGAIN"].includes(e.code ?? "")) {
    return new ProviderError(`Cannot reach the S3 endpoint for ${where}: ${e.message}`, {
      code: "unreachable",
      hint: "Check AWS_ENDPOINT_URL_S3 or [s3] endpoint, and that the store is running.",
      details,
      cause: error,
    });
  }
  const source = await describeCredentialSource(client);
  details.credentials = source;
  switch (code) {
    case "SignatureDoesNotMatch":
      return new ProviderError(
        `S3 refused the request signature for ${ctx.operation} of ${where}: the secret key does not belong to ${source}`,
        { code: "auth", hint: hintForCredentials(source), details, cause: error },
      );
    case "InvalidAccessKeyId":
      return new ProviderError(`S3 does not know the ${source} (${ctx.operation} of ${where})`, {
        code: "auth",
        hint: `${hintForCredentials(source)} Check that the key belongs to this endpoint and account.`,
        details,
        cause: error,
      });
    case "ExpiredToken":
    case "ExpiredTokenException":
    case "TokenRefreshRequired":
    case "InvalidToken":
      return new ProviderError(
        `The session token of the ${source} has expired or is invalid (${ctx.operation} of ${where})`,
        {
          code: "auth",
          hint: source.includes("SSO")
            ? "Run `aws sso login` for the profile, then retry."
            : "Get fresh temporary credentials (and AWS_SESSION_TOKEN), or use long-lived keys or a profile.",
          details,
          cause: error,
        },
      );
    case "NoSuchBucket":
      return new ProviderError(`Bucket "${ctx.bucket}" does not exist (${ctx.operation} of ${where})`, {
        code: "not_found",
        hint: "Check the bucket name, and the region ([s3] region, AWS_REGION) and endpoint it lives at; create it if it is new.",
        details,
        cause: error,
      });
    case "NoSuchKey":
    case "NotFound":
      return new ProviderError(`No object at ${where}`, {
        code: "not_found",
        hint: "List what is there with `runctl s3 ls`.",
        details,
        cause: error,
      });
    case "AccessDenied":
    case "Forbidden":
    case "AllAccessDisabled":
      return new ProviderError(`Access denied to ${where} for ${ctx.operation} with the ${source}`, {
        code: "auth",
        hint: "These credentials may not touch this bucket or prefix: use keys whose policy allows it, or a prefix they are allowed to.",
        details,
        cause: error,
      });
    case "SlowDown":
    case "ServiceUnavailable":
    case "RequestLimitExceeded":
      return new ProviderError(`S3 is throttling requests (${ctx.operation} of ${where})`, {
        code: "throttled",
        hint: "Retry later, or lower --concurrency ([s3] concurrency).",
        details,
        cause: error,
      });
    default:
      return new ProviderError(
        `S3 ${ctx.operation} of ${where} failed: ${code || "error"}${e.message ? `: ${e.message}` : ""}`,
        {
          code: "s3_error",
          hint: "Check the endpoint, region and credentials; rerun with DEBUG=runctl* for details.",
          details,
          cause: error,
        },
      );
  }
}

/** Codes that already say what went wrong; anything else from a bodiless answer is probed. */
const KNOWN_CODES = new Set([
  "SignatureDoesNotMatch",
  "InvalidAccessKeyId",
  "ExpiredToken",
  "InvalidToken",
  "AccessDenied",
  "NoSuchBucket",
  "PreconditionFailed",
]);

async function diagnose(client: S3Client, bucket: string, key: string): Promise<SdkErrorLike | undefined> {
  try {
    const probe = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: "bytes=0-0" }));
    await probe.Body?.transformToByteArray();
    return undefined;
  } catch (probeError) {
    const p = probeError as SdkErrorLike;
    return KNOWN_CODES.has(p.Code ?? p.name ?? "") ? p : undefined;
  }
}

export function isS3Code(error: unknown, ...codes: string[]): boolean {
  const e = error as SdkErrorLike | undefined;
  return codes.includes(e?.Code ?? e?.name ?? "");
}

export function httpStatus(error: unknown): number | undefined {
  return (error as SdkErrorLike | undefined)?.$metadata?.httpStatusCode;
}
