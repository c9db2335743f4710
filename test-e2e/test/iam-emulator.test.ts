// The IAM emulator (on the EC2 emulator's endpoint) against the unmodified AWS SDK's IAM client:
// roles, trust and inline policies answered URL-encoded as IAM answers them, tags, instance
// profiles with one role, IAM's refusals (NoSuchEntity 404, EntityAlreadyExists 409,
// MalformedPolicyDocument, AccessDenied, a wrong key), and RunInstances refusing an instance
// profile the account does not have.
import { EC2Client, EC2ServiceException, RunInstancesCommand } from "@aws-sdk/client-ec2";
import {
  AddRoleToInstanceProfileCommand,
  AttachRolePolicyCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  DeleteRolePolicyCommand,
  DetachRolePolicyCommand,
  GetInstanceProfileCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  IAMClient,
  IAMServiceException,
  ListAttachedRolePoliciesCommand,
  ListRolePoliciesCommand,
  ListRoleTagsCommand,
  PutRolePolicyCommand,
  TagRoleCommand,
  UpdateAssumeRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Ec2Emulator, startEc2Emulator } from "../src/ec2-emulator.ts";

const KEY = { accessKeyId: "AKIDIAMTEST", secretAccessKey: "secret-iam" };
const TRUST = JSON.stringify({
  Version: "2012-10-17",
  Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
});
const POLICY = JSON.stringify({
  Version: "2012-10-17",
  Statement: [{ Effect: "Allow", Action: ["s3:GetObject"], Resource: "arn:aws:s3:::b/p/runs/*" }],
});

let ec2: Ec2Emulator;

function iam(credentials = KEY): IAMClient {
  return new IAMClient({ endpoint: ec2.endpoint, region: "us-east-1", credentials, maxAttempts: 1 });
}

async function refusal(promise: Promise<unknown>): Promise<IAMServiceException> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(IAMServiceException);
    return error as IAMServiceException;
  }
  throw new Error("expected the request to be refused");
}

beforeAll(async () => {
  ec2 = await startEc2Emulator({ credentials: [KEY], transitionMs: 0 });
});

afterAll(async () => {
  await ec2?.stop();
});

describe("iam emulator", () => {
  it("creates a tagged role and answers its trust policy URL-encoded; a second create is EntityAlreadyExists", async () => {
    const client = iam();
    const created = await client.send(
      new CreateRoleCommand({
        RoleName: "r-one",
        AssumeRolePolicyDocument: TRUST,
        Description: "test",
        Tags: [{ Key: "CreatedBy", Value: "runctl" }],
      }),
    );
    expect(created.Role?.Arn).toBe("arn:aws:iam::123456789012:role/r-one");
    expect(created.Role?.RoleId).toMatch(/^AROA[A-Z2-7]{17}$/);
    const got = await client.send(new GetRoleCommand({ RoleName: "r-one" }));
    expect(got.Role?.AssumeRolePolicyDocument).toBe(encodeURIComponent(TRUST));
    expect(got.Role?.Tags).toEqual([{ Key: "CreatedBy", Value: "runctl" }]);
    expect(got.Role?.CreateDate).toBeInstanceOf(Date);
    const again = await refusal(
      client.send(new CreateRoleCommand({ RoleName: "r-one", AssumeRolePolicyDocument: TRUST })),
    );
    expect(again.name).toBe("EntityAlreadyExistsException");
    expect(again.$metadata.httpStatusCode).toBe(409);
    const missing = await refusal(client.send(new GetRoleCommand({ RoleName: "nobody" })));
    expect(missing.name).toBe("NoSuchEntityException");
    expect(missing.$metadata.httpStatusCode).toBe(404);
    expect(missing.message).toBe("The role with name nobody cannot be found.");
  });

  it("keeps inline policies and trust updates; refuses malformed documents", async () => {
    const client = iam();
    await client.send(new CreateRoleCommand({ RoleName: "r-two", AssumeRolePolicyDocument: TRUST }));
    const none = await refusal(client.send(new GetRolePolicyCommand({ RoleName: "r-two", PolicyName: "p" })));
    expect(none.name).toBe("NoSuchEntityException");
    await client.send(
      new PutRolePolicyCommand({ RoleName: "r-two", PolicyName: "p", PolicyDocument: POLICY }),
    );
    const got = await client.send(new GetRolePolicyCommand({ RoleName: "r-two", PolicyName: "p" }));
    expect(decodeURIComponent(got.PolicyDocument ?? "")).toBe(POLICY);

    const withPrincipal = JSON.stringify({
      Statement: [{ Effect: "Allow", Principal: "*", Action: "s3:GetObject", Resource: "*" }],
    });
    for (const bad of [
      "{not json",
      withPrincipal,
      JSON.stringify({ Statement: [{ Effect: "Allow", Action: "s3:GetObject" }] }),
    ]) {
      const refused = await refusal(
        client.send(new PutRolePolicyCommand({ RoleName: "r-two", PolicyName: "bad", PolicyDocument: bad })),
      );
      expect(refused.name).toBe("MalformedPolicyDocumentException");
      expect(refused.$metadata.httpStatusCode).toBe(400);
    }
    const trustWithResource = JSON.stringify({
      Statement: [
        {
          Effect: "Allow",
          Principal: { Service: "ec2.amazonaws.com" },
          Action: "sts:AssumeRole",
          Resource: "*",
        },
      ],
    });
    const badTrust = await refusal(
      client.send(
        new UpdateAssumeRolePolicyCommand({ RoleName: "r-two", PolicyDocument: trustWithResource }),
      ),
    );
    expect(badTrust.name).toBe("MalformedPolicyDocumentException");
    const lambdaToo = JSON.stringify({
      Statement: [
        {
          Effect: "Allow",
          Principal: { Service: ["ec2.amazonaws.com", "lambda.amazonaws.com"] },
          Action: "sts:AssumeRole",
        },
      ],
    });
    await client.send(new UpdateAssumeRolePolicyCommand({ RoleName: "r-two", PolicyDocument: lambdaToo }));
    expect(ec2.iam.roles.get("r-two")?.assumeRolePolicyDocument).toBe(lambdaToo);

    await client.send(
      new PutRolePolicyCommand({ RoleName: "r-two", PolicyName: "extra", PolicyDocument: POLICY }),
    );
    const inline = await client.send(new ListRolePoliciesCommand({ RoleName: "r-two" }));
    expect(inline.PolicyNames).toEqual(["extra", "p"]);
    await client.send(new DeleteRolePolicyCommand({ RoleName: "r-two", PolicyName: "extra" }));
    expect((await client.send(new ListRolePoliciesCommand({ RoleName: "r-two" }))).PolicyNames).toEqual([
      "p",
    ]);
    const admin = "arn:aws:iam::aws:policy/AdministratorAccess";
    expect(
      (await client.send(new ListAttachedRolePoliciesCommand({ RoleName: "r-two" }))).AttachedPolicies,
    ).toEqual([]);
    await client.send(new AttachRolePolicyCommand({ RoleName: "r-two", PolicyArn: admin }));
    const attached = await client.send(new ListAttachedRolePoliciesCommand({ RoleName: "r-two" }));
    expect(attached.AttachedPolicies).toEqual([{ PolicyName: "AdministratorAccess", PolicyArn: admin }]);
    await client.send(new DetachRolePolicyCommand({ RoleName: "r-two", PolicyArn: admin }));
    const gone = await refusal(
      client.send(new DetachRolePolicyCommand({ RoleName: "r-two", PolicyArn: admin })),
    );
    expect(gone.name).toBe("NoSuchEntityException");

    await client.send(new TagRoleCommand({ RoleName: "r-two", Tags: [{ Key: "team", Value: "ml" }] }));
    const tags = await client.send(new ListRoleTagsCommand({ RoleName: "r-two" }));
    expect(tags.Tags).toEqual([{ Key: "team", Value: "ml" }]);
    expect(tags.IsTruncated).toBe(false);
  });

  it("holds one role per instance profile, and RunInstances launches only with a profile that exists", async () => {
    const client = iam();
    await client.send(new CreateRoleCommand({ RoleName: "r-three", AssumeRolePolicyDocument: TRUST }));
    const made = await client.send(new CreateInstanceProfileCommand({ InstanceProfileName: "prof-three" }));
    expect(made.InstanceProfile?.Roles).toEqual([]);
    await client.send(
      new AddRoleToInstanceProfileCommand({ InstanceProfileName: "prof-three", RoleName: "r-three" }),
    );
    const got = await client.send(new GetInstanceProfileCommand({ InstanceProfileName: "prof-three" }));
    expect(got.InstanceProfile?.Roles?.map((r) => r.RoleName)).toEqual(["r-three"]);
    expect(got.InstanceProfile?.Arn).toBe("arn:aws:iam::123456789012:instance-profile/prof-three");
    const second = await refusal(
      client.send(
        new AddRoleToInstanceProfileCommand({ InstanceProfileName: "prof-three", RoleName: "r-two" }),
      ),
    );
    expect(second.name).toBe("LimitExceededException");
    const missing = await refusal(
      client.send(new GetInstanceProfileCommand({ InstanceProfileName: "nope" })),
    );
    expect(missing.name).toBe("NoSuchEntityException");

    const ec2Client = new EC2Client({
      endpoint: ec2.endpoint,
      region: "us-east-1",
      credentials: KEY,
      maxAttempts: 1,
    });
    const base = {
      ImageId: "ami-0a1b2c3d4e5f60702",
      InstanceType: "t3.micro" as const,
      MinCount: 1,
      MaxCount: 1,
    };
    const launched = await ec2Client.send(
      new RunInstancesCommand({ ...base, IamInstanceProfile: { Name: "prof-three" } }),
    );
    expect(launched.Instances?.[0]?.IamInstanceProfile?.Arn).toBe(got.InstanceProfile?.Arn);
    expect(launched.Instances?.[0]?.IamInstanceProfile?.Id).toBe(got.InstanceProfile?.InstanceProfileId);
    let refused: unknown;
    try {
      await ec2Client.send(new RunInstancesCommand({ ...base, IamInstanceProfile: { Name: "never-made" } }));
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(EC2ServiceException);
    expect((refused as EC2ServiceException).name).toBe("InvalidParameterValue");
    expect((refused as EC2ServiceException).message).toContain("Invalid IAM Instance Profile name");
    ec2Client.destroy();
  });

  it("refuses a wrong key, a wrong secret, and an action the caller may not perform, with IAM's codes", async () => {
    const unknown = await refusal(
      iam({ accessKeyId: "AKIDNOBODY", secretAccessKey: "x" }).send(
        new GetRoleCommand({ RoleName: "r-one" }),
      ),
    );
    expect(unknown.name).toBe("InvalidClientTokenId");
    expect(unknown.$metadata.httpStatusCode).toBe(403);
    const wrong = await refusal(
      iam({ ...KEY, secretAccessKey: "nope" }).send(new GetRoleCommand({ RoleName: "r-one" })),
    );
    expect(wrong.name).toBe("SignatureDoesNotMatch");
    ec2.iam.deny("CreateRole");
    try {
      const denied = await refusal(
        iam().send(new CreateRoleCommand({ RoleName: "r-denied", AssumeRolePolicyDocument: TRUST })),
      );
      expect(denied.name).toBe("AccessDenied");
      expect(denied.message).toContain("iam:CreateRole");
      expect(ec2.iam.roles.has("r-denied")).toBe(false);
    } finally {
      ec2.iam.clearFaults();
    }
    expect(ec2.iam.calls.at(-1)).toMatchObject({ action: "CreateRole", outcome: "AccessDenied" });
  });
});
