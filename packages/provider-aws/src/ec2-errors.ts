/**
 * EC2's error codes in runctl's terms: the SDK turns each EC2 `<Code>` into an exception of that
 * name, and fallback, retries and exit codes branch on the PROVIDER_ERROR_CODES it maps to here.
 */
import { isRunctlError, ProviderError, type RunctlError, UserError } from "@runctl/core";

interface SdkErrorLike {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/** Refusals a different zone, type or market may not get: they move the fallback on. */
export const CAPACITY_CODES = new Set([
  "InsufficientInstanceCapacity",
  "InsufficientCapacity",
  "InsufficientHostCapacity",
  "InsufficientReservedInstanceCapacity",
  "SpotMaxPriceTooLow",
  "Unsupported",
]);
export const QUOTA_CODES = new Set([
  "InstanceLimitExceeded",
  "VcpuLimitExceeded",
  "MaxSpotInstanceCountExceeded",
  "SpotInstanceCountExceeded",
  "InsufficientFreeAddressesInSubnet",
]);
export const AUTH_CODES = new Set([
  "AuthFailure",
  "UnauthorizedOperation",
  "SignatureDoesNotMatch",
  "InvalidClientTokenId",
  "MissingAuthenticationToken",
  "RequestExpired",
  "ExpiredToken",
  "OptInRequired",
  "Blocked",
  "CredentialsProviderError",
]);
export const THROTTLE_CODES = new Set(["RequestLimitExceeded", "Throttling", "ThrottlingException"]);
const NOT_FOUND_CODES = new Set(["InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"]);
const INVALID_SPEC_CODES = new Set([
  "InvalidParameterValue",
  "InvalidParameterCombination",
  "InvalidParameter",
  "MissingParameter",
  "UnknownParameter",
  "InvalidAMIID.NotFound",
  "InvalidAMIID.Malformed",
  "InvalidGroup.NotFound",
  "InvalidSubnetID.NotFound",
  "InvalidBlockDeviceMapping",
  "IdempotentParameterMismatch",
  "InvalidInstanceType",
]);
/** Server-side failures that are safe to retry for calls that change nothing. */
export const TRANSIENT_CODES = new Set([
  "InternalError",
  "ServiceUnavailable",
  "Unavailable",
  "InternalFailure",
]);

export function awsCode(error: unknown): string | undefined {
  if (isRunctlError(error)) return undefined;
  const name = (error as SdkErrorLike | undefined)?.name;
  return typeof name === "string" ? name : undefined;
}

export interface Ec2ErrorContext {
  /** What runctl was doing: "launch g5.xlarge (spot) in us-east-1a". */
  doing: string;
  /** Where the credentials came from, for auth failures. */
  credentialSource?: string;
}

export function ec2Error(error: unknown, ctx: Ec2ErrorContext): RunctlError {
  if (isRunctlError(error)) return error;
  const e = (error ?? {}) as SdkErrorLike;
  const code = e.name ?? "Unknown";
  const message = `${ctx.doing}: ${code}: ${e.message ?? String(error)}`;
  const details = {
    awsCode: code,
    ...(e.$metadata?.httpStatusCode ? { status: e.$metadata.httpStatusCode } : {}),
  };
  if (CAPACITY_CODES.has(code)) {
    return new ProviderError(message, {
      code: "capacity",
      hint: "Try another zone (--zone), another type (providerOptions.instanceTypes), or allow on-demand with --spot-fallback.",
      details,
      cause: error,
    });
  }
  if (QUOTA_CODES.has(code)) {
    return new ProviderError(message, {
      code: "quota",
      hint: "Ask AWS for a higher limit (Service Quotas → Amazon EC2) or use a smaller type.",
      details,
      cause: error,
    });
  }
  if (AUTH_CODES.has(code)) {
    const source = ctx.credentialSource ?? "the AWS SDK's default credential chain";
    return new ProviderError(`${message} (credentials: ${source})`, {
      code: "auth",
      hint: source.includes("environment")
        ? "Fix AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or unset them to use a profile; UnauthorizedOperation means the identity lacks the ec2 permission named."
        : "Check the profile (AWS_PROFILE or [aws] profile), run `aws sso login`, or grant the ec2 permission named.",
      details: { ...details, credentials: source },
      cause: error,
    });
  }
  if (THROTTLE_CODES.has(code)) {
    return new ProviderError(message, {
      code: "throttled",
      hint: "EC2 is rate-limiting this account; wait a minute and retry, or lower the number of parallel runctl commands.",
      details,
      cause: error,
    });
  }
  if (NOT_FOUND_CODES.has(code)) {
    return new UserError(message, {
      code: "not_found",
      hint: "Check the instance id and region (`runctl aws list`); terminated instances disappear after about an hour.",
      details,
      cause: error,
    });
  }
  if (INVALID_SPEC_CODES.has(code)) {
    return new UserError(message, {
      code: "invalid_spec",
      hint: /iamInstanceProfile/i.test(e.message ?? "")
        ? "The instance profile does not exist in this account: create it with `runctl aws setup`, or fix [aws] iam_instance_profile."
        : "Fix the launch options named in the message (type, image, zone, disk, security group).",
      details,
      cause: error,
    });
  }
  if (code === "UnsupportedOperation") {
    return new UserError(message, {
      code: "unsupported",
      hint: 'One-time spot instances cannot be stopped; terminate it, or launch with interruptionBehavior "stop".',
      details,
      cause: error,
    });
  }
  if (code === "IncorrectInstanceState") {
    return new UserError(message, {
      code: "invalid_state",
      hint: "Wait for the instance to settle (`runctl aws status <id>`) and try again.",
      details,
      cause: error,
    });
  }
  return new ProviderError(message, {
    code: "provider_failed",
    hint: "EC2 failed unexpectedly; retry, and check the AWS Health Dashboard if it persists.",
    details,
    cause: error,
  });
}
