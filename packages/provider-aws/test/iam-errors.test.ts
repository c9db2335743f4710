import { describe, expect, it } from "vitest";
import { iamError } from "../src/iam-errors.ts";
import { storeLocation, storePolicy } from "../src/instance-policy.ts";
import { policyDiff } from "../src/instance-profile-setup.ts";

/** An error shaped as the IAM SDK throws them: the name is IAM's code (+ `Exception` when modelled). */
function sdkError(name: string, status: number, message = "refused"): Error {
  return Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });
}

const ctx = {
  doing: "create role r",
  credentialSource: "access key AKID from environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
};

describe("IAM errors in runctl's terms", () => {
  it("a refused key or a missing permission is auth (exit 2), naming the credential source", () => {
    for (const [name, status] of [
      ["InvalidClientTokenId", 403],
      ["SignatureDoesNotMatch", 403],
      ["AccessDenied", 403],
    ] as const) {
      const e = iamError(sdkError(name, status), ctx);
      expect(e.code, name).toBe("auth");
      expect(e.exitCode).toBe(2);
      expect(e.message).toContain("AWS_ACCESS_KEY_ID");
    }
    expect(iamError(sdkError("AccessDenied", 403), ctx).hint).toContain("iam:CreateRole");
  });

  it("maps IAM's own codes without the SDK's Exception suffix", () => {
    expect(iamError(sdkError("NoSuchEntityException", 404), ctx).code).toBe("not_found");
    expect(iamError(sdkError("EntityAlreadyExistsException", 409), ctx).code).toBe("conflict");
    expect(iamError(sdkError("MalformedPolicyDocumentException", 400), ctx).code).toBe("invalid_spec");
    expect(iamError(sdkError("LimitExceededException", 409), ctx).code).toBe("quota");
    expect(iamError(sdkError("Throttling", 400), ctx).code).toBe("throttled");
    const other = iamError(sdkError("ServiceFailureException", 500), ctx);
    expect(other.code).toBe("provider_failed");
    expect(other.details).toMatchObject({ awsCode: "ServiceFailure", status: 500 });
  });
});

describe("policy diffs", () => {
  it("marks only what differs in meaning, current first", () => {
    const wanted = storePolicy(storeLocation("s3://b1-bucket/p"), "us-east-1");
    const same = policyDiff(JSON.parse(JSON.stringify(wanted)), wanted);
    expect(same.every((l) => l.startsWith("  "))).toBe(true);
    const other = storePolicy(storeLocation("s3://b1-bucket/q"), "us-east-1");
    const diff = policyDiff(other, wanted);
    expect(diff).toContain('-         "arn:aws:s3:::b1-bucket/q/runs/*"');
    expect(diff).toContain('+         "arn:aws:s3:::b1-bucket/p/runs/*"');
    expect(diff.filter((l) => l.startsWith("- ")).every((l) => l.includes("/q/") || l.includes('"q/'))).toBe(
      true,
    );
    // A document IAM holds that runctl cannot parse is shown as its text.
    expect(policyDiff("not json", wanted)[0]).toBe("- not json");
  });
});
