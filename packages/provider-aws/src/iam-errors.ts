/**
 * IAM's error codes in runctl's terms, as ec2-errors.ts does for EC2: the SDK names each
 * exception after IAM's `<Code>` (`NoSuchEntityException`, `AccessDenied`, …), and exit codes
 * and hints branch on what they map to here. A wrong key is `auth` (exit 2) naming its source.
 */
import { isRunctlError, ProviderError, type RunctlError, UserError } from "@runctl/core";
import { AUTH_CODES, THROTTLE_CODES, TRANSIENT_CODES } from "./ec2-errors.ts";

interface SdkErrorLike {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/** IAM's code without the SDK's `Exception` suffix (`NoSuchEntityException` → `NoSuchEntity`). */
export function iamCode(error: unknown): string | undefined {
  if (isRunctlError(error)) return undefined;
  const name = (error as SdkErrorLike | undefined)?.name;
  return typeof name === "string" ? name.replace(/Exception$/, "") : undefined;
}

export const IAM_RETRYABLE = new Set([...THROTTLE_CODES, ...TRANSIENT_CODES, "ServiceFailure"]);

export interface IamErrorContext {
  /** What runctl was doing: "create role runctl-instance". */
  doing: string;
  /** Where the credentials came from, for auth failures. */
  credentialSource: string;
}

export function iamError(error: unknown, ctx: IamErrorContext): RunctlError {
  if (isRunctlError(error)) return error;
  const e = (error ?? {}) as SdkErrorLike;
  const code = iamCode(error) ?? "Unknown";
  const message = `${ctx.doing}: ${code}: ${e.message ?? String(error)}`;
  const details = {
    awsCode: code,
    ...(e.$metadata?.httpStatusCode ? { status: e.$metadata.httpStatusCode } : {}),
  };
  if (code === "AccessDenied" || AUTH_CODES.has(code)) {
    const source = ctx.credentialSource;
    return new ProviderError(`${message} (credentials: ${source})`, {
      code: "auth",
      hint:
        code === "AccessDenied" || code === "UnauthorizedOperation"
          ? "The identity lacks the iam permission named: run `runctl aws setup` as an administrator of the account (or one allowed iam:CreateRole, iam:PutRolePolicy, iam:CreateInstanceProfile, iam:AddRoleToInstanceProfile, iam:PassRole)."
          : source.includes("environment")
            ? "Fix AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or unset them to use a profile."
            : "Check the profile (AWS_PROFILE or [aws] profile), or run `aws sso login`.",
      details: { ...details, credentials: source },
      cause: error,
    });
  }
  if (code === "MalformedPolicyDocument") {
    return new UserError(message, {
      code: "invalid_spec",
      hint: "IAM refused the policy runctl built: check the store URL (--store / [aws] store) for characters IAM does not accept.",
      details,
      cause: error,
    });
  }
  if (code === "LimitExceeded") {
    return new ProviderError(message, {
      code: "quota",
      hint: "An IAM quota is reached (roles, instance profiles, policy size): remove unused ones or ask AWS for more.",
      details,
      cause: error,
    });
  }
  if (code === "EntityAlreadyExists" || code === "ConcurrentModification") {
    return new ProviderError(message, {
      code: "conflict",
      hint: "Something else changed the role or profile at the same time; run `runctl aws setup` again.",
      details,
      cause: error,
    });
  }
  if (THROTTLE_CODES.has(code)) {
    return new ProviderError(message, {
      code: "throttled",
      hint: "IAM is rate-limiting this account; wait a minute and retry.",
      details,
      cause: error,
    });
  }
  if (code === "NoSuchEntity") {
    return new UserError(message, {
      code: "not_found",
      hint: "Run `runctl aws setup` to create the role and instance profile.",
      details,
      cause: error,
    });
  }
  return new ProviderError(message, {
    code: "provider_failed",
    hint: "IAM failed unexpectedly; retry, and check the AWS Health Dashboard if it persists.",
    details,
    cause: error,
  });
}
