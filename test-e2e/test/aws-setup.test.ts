// `runctl aws setup` as a user runs it (the built CLI) against the IAM emulator on the EC2
// emulator's endpoint, through the real IAM and EC2 SDK clients: a dry run writes nothing and
// prints the policy; setup creates the role, its store policy, the instance profile and the
// security group; a second run reads and writes nothing; a role whose policy or trust drifted is
// shown as a diff and changed only with --yes; a role runctl did not make is refused; a launch
// with the profile passes and one with an unknown profile fails clearly; a wrong key exits 2.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  AwsConfig,
  AwsProvider,
  decodePolicy,
  samePolicy,
  setupInstanceProfile,
  storeLocation,
  storePolicy,
  trustPolicy,
} from "@runctl/provider-aws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Ec2Emulator, startEc2Emulator } from "../src/ec2-emulator.ts";
import { runctl, runctlJson, type Workspace, workspace } from "../src/runctl-cli.ts";

const KEY = { accessKeyId: "AKIDAWSSETUP", secretAccessKey: "secret-aws-setup" };
const STORE = "s3://ml-bucket/team/runctl";
const WANTED = storePolicy(storeLocation(STORE), "us-east-1");
let ec2: Ec2Emulator;
let ws: Workspace;

interface SetupDoc {
  success: true;
  dryRun: boolean;
  steps: Array<{ resource: string; name: string; status: string; diff?: string[] }>;
  policy: unknown;
  config: { key: string; value: string; line: string };
  saved?: string;
}

const statuses = (doc: unknown) =>
  Object.fromEntries((doc as SetupDoc).steps.map((s) => [s.resource, s.status]));
const writes = () => ec2.iam.writeCalls().length + ec2.cloud.callCount("CreateSecurityGroup");

beforeAll(async () => {
  ec2 = await startEc2Emulator({ credentials: [KEY], transitionMs: 2 });
  ws = await workspace({
    AWS_ACCESS_KEY_ID: KEY.accessKeyId,
    AWS_SECRET_ACCESS_KEY: KEY.secretAccessKey,
    AWS_ENDPOINT_URL_EC2: ec2.endpoint,
    AWS_ENDPOINT_URL_IAM: ec2.endpoint,
    AWS_REGION: "us-east-1",
    RUNCTL_AWS_RETRY_BASE_MS: "1",
  });
});

afterAll(async () => {
  await ec2?.stop();
});

describe("runctl aws setup", () => {
  it("--dry-run creates nothing and prints the policy it would put", async () => {
    const dry = await runctl(["aws", "setup", "--store", STORE, "--dry-run"], ws);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain("role runctl-instance: would create");
    expect(dry.stdout).toContain("instance profile runctl-instance: would create");
    expect(dry.stdout).toContain('"arn:aws:s3:::ml-bucket/team/runctl/runs/*"');
    expect(dry.stdout).toContain('iam_instance_profile = "runctl-instance"');
    expect(writes()).toBe(0);
    expect(ec2.iam.roles.size).toBe(0);
    expect(ec2.iam.instanceProfiles.size).toBe(0);
    expect(ec2.cloud.securityGroups.size).toBe(0);
    const noStore = await runctlJson(["aws", "setup", "--dry-run"], ws);
    expect(noStore.code).toBe(3);
    expect(noStore.doc).toMatchObject({ success: false, error: { code: "store_missing" } });
  });

  it("creates the role, its store policy, the instance profile and the group; a second run writes nothing", async () => {
    const made = await runctlJson(["aws", "setup", "--store", STORE, "--yes"], ws);
    expect(made.code).toBe(0);
    expect(statuses(made.doc)).toEqual({
      role: "created",
      "trust-policy": "created",
      "store-policy": "created",
      "other-policies": "unchanged",
      "instance-profile": "created",
      "security-group": "created",
    });
    const role = ec2.iam.roles.get("runctl-instance");
    expect(role?.tags.get("CreatedBy")).toBe("runctl");
    expect(
      samePolicy(decodePolicy(role?.assumeRolePolicyDocument ?? "") ?? { Statement: [] }, trustPolicy()),
    ).toBe(true);
    expect(JSON.parse(role?.policies.get("runctl-store-access") ?? "{}")).toEqual(WANTED);
    expect([...(role?.policies.keys() ?? [])]).toEqual(["runctl-store-access"]);
    expect(ec2.iam.instanceProfiles.get("runctl-instance")?.roles).toEqual(["runctl-instance"]);
    expect([...ec2.cloud.securityGroups.values()].map((g) => g.groupName)).toEqual(["runctl"]);
    expect((made.doc as unknown as SetupDoc).policy).toEqual(WANTED);

    const before = writes();
    const callsBefore = ec2.iam.calls.length;
    const again = await runctlJson(["aws", "setup", "--store", STORE], ws);
    expect(again.code).toBe(0);
    expect(new Set(Object.values(statuses(again.doc)))).toEqual(new Set(["unchanged"]));
    expect(writes()).toBe(before);
    expect(ec2.iam.calls.slice(callsBefore).map((c) => c.action)).toEqual([
      "GetRole",
      "GetRolePolicy",
      "ListRolePolicies",
      "ListAttachedRolePolicies",
      "GetInstanceProfile",
    ]);
  });

  it("shows a drifted policy and trust as a diff, and changes them only with --yes", async () => {
    const wider = JSON.stringify({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Action: "s3:*", Resource: "arn:aws:s3:::ml-bucket/*" }],
    });
    ec2.iam.putRolePolicy("runctl-instance", "runctl-store-access", wider);
    const lambdaToo = JSON.stringify({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Principal: { Service: ["ec2.amazonaws.com", "lambda.amazonaws.com"] },
          Action: "sts:AssumeRole",
        },
      ],
    });
    ec2.iam.updateAssumeRolePolicy("runctl-instance", lambdaToo);
    // More policies on the role would widen what a machine may do: they are drift too.
    ec2.iam.putRolePolicy("runctl-instance", "debug-everything", wider);
    ec2.iam.attachRolePolicy("runctl-instance", "arn:aws:iam::aws:policy/AdministratorAccess");
    const before = writes();

    const refused = await runctlJson(["aws", "setup", "--store", STORE], ws);
    expect(refused.code).toBe(1);
    expect(refused.doc).toMatchObject({ success: false, error: { code: "confirmation_required" } });
    expect(refused.stderr).toContain('-         "s3:*"');
    expect(refused.stderr).toContain('+         "arn:aws:s3:::ml-bucket/team/runctl/runs/*"');
    expect(refused.stderr).toContain('-           "lambda.amazonaws.com"');
    expect(refused.stderr).toContain("- inline policy debug-everything");
    expect(refused.stderr).toContain("- attached policy arn:aws:iam::aws:policy/AdministratorAccess");
    expect(writes()).toBe(before);

    const dry = await runctlJson(["aws", "setup", "--store", STORE, "--dry-run"], ws);
    expect(statuses(dry.doc)).toMatchObject({
      "store-policy": "would-update",
      "trust-policy": "would-update",
      "other-policies": "would-update",
    });
    const diff =
      (dry.doc as unknown as SetupDoc).steps.find((s) => s.resource === "store-policy")?.diff ?? [];
    expect(diff).toContain('-         "arn:aws:s3:::ml-bucket/*"');
    expect(writes()).toBe(before);

    const applied = await runctlJson(["aws", "setup", "--store", STORE, "--yes"], ws);
    expect(applied.code).toBe(0);
    expect(statuses(applied.doc)).toMatchObject({
      role: "unchanged",
      "store-policy": "updated",
      "trust-policy": "updated",
      "other-policies": "updated",
      "instance-profile": "unchanged",
    });
    const role = ec2.iam.roles.get("runctl-instance");
    expect(JSON.parse(role?.policies.get("runctl-store-access") ?? "{}")).toEqual(WANTED);
    expect(role?.assumeRolePolicyDocument).not.toContain("lambda");
    expect([...(role?.policies.keys() ?? [])]).toEqual(["runctl-store-access"]);
    expect(role?.attached.size).toBe(0);
    const lastWrites = ec2.iam.writeCalls().slice(-4);
    expect(lastWrites.map((c) => c.action)).toEqual([
      "UpdateAssumeRolePolicy",
      "PutRolePolicy",
      "DeleteRolePolicy",
      "DetachRolePolicy",
    ]);
  });

  it("never changes a role runctl did not make", async () => {
    ec2.iam.createRole({
      RoleName: "team-admin",
      AssumeRolePolicyDocument: JSON.stringify(trustPolicy()),
      Tags: [{ Key: "owner", Value: "platform" }],
    });
    const before = writes();
    const refused = await runctlJson(
      ["aws", "setup", "--store", STORE, "--role-name", "team-admin", "--yes"],
      ws,
    );
    expect(refused.code).toBe(1);
    expect(refused.doc).toMatchObject({ success: false, error: { code: "role_not_runctl" } });
    expect(JSON.stringify(refused.doc)).toContain("CreatedBy=runctl");
    expect(writes()).toBe(before);
    expect(ec2.iam.roles.get("team-admin")?.policies.size).toBe(0);
    expect(ec2.iam.instanceProfiles.has("team-admin")).toBe(false);
  });

  it("--save puts the profile in .runctl.toml; launches carry it; an unknown profile fails clearly", async () => {
    const saved = await runctlJson(["aws", "setup", "--store", STORE, "--save"], ws);
    expect(saved.code).toBe(0);
    const file = join(ws.project, ".runctl.toml");
    expect((saved.doc as unknown as SetupDoc).saved).toBe(file);
    expect(await readFile(file, "utf8")).toMatch(/\[aws\][^[]*iam_instance_profile = "runctl-instance"/);

    // A profile IAM just made is refused by EC2 until it propagates: the launch asks again.
    ec2.cloud.hideInstanceProfiles(3);
    const launches = () => ec2.cloud.calls.filter((c) => c.action === "RunInstances").length;
    const before = launches();
    const launched = await runctlJson(["aws", "create", "t3.micro"], ws);
    expect(launched.code, launched.stderr).toBe(0);
    expect(launches() - before).toBe(4);
    const id = (launched.doc as unknown as { placement: { resourceId: string } }).placement.resourceId;
    expect(ec2.cloud.instances.get(id)?.iamInstanceProfile?.arn).toBe(
      ec2.iam.instanceProfiles.get("runctl-instance")?.arn,
    );

    const unknown = await runctlJson(["aws", "create", "t3.micro"], {
      ...ws,
      env: { ...ws.env, RUNCTL_AWS_IAM_INSTANCE_PROFILE: "never-set-up" },
    });
    expect(unknown.code).toBe(1);
    expect(unknown.doc).toMatchObject({ success: false, error: { code: "invalid_spec" } });
    expect(JSON.stringify(unknown.doc)).toContain("Invalid IAM Instance Profile name");
    expect(JSON.stringify(unknown.doc)).toContain("runctl aws setup");
  });

  it("exits 2 with auth, naming the credential source, when IAM refuses the key", async () => {
    const before = ec2.iam.calls.length;
    const bad = await runctlJson(["aws", "setup", "--store", STORE], {
      ...ws,
      env: { ...ws.env, AWS_SECRET_ACCESS_KEY: "wrong" },
    });
    expect(bad.code).toBe(2);
    expect(bad.doc).toMatchObject({ success: false, error: { code: "auth" } });
    expect(JSON.stringify(bad.doc)).toContain("AWS_ACCESS_KEY_ID");
    expect(JSON.stringify(bad.doc)).toContain("SignatureDoesNotMatch");
    // Refused at the signature: nothing reached the account.
    expect(ec2.iam.calls.length).toBe(before);
  });
});

describe("setupInstanceProfile from a program", () => {
  const env = () => ({
    AWS_ACCESS_KEY_ID: KEY.accessKeyId,
    AWS_SECRET_ACCESS_KEY: KEY.secretAccessKey,
    AWS_ENDPOINT_URL_EC2: ec2.endpoint,
    AWS_ENDPOINT_URL_IAM: ec2.endpoint,
  });
  const config = AwsConfig.parse({ retry_base_ms: 1, retry_cap_ms: 4 });
  const provider = () => new AwsProvider({ config, env: env(), region: "us-east-1" });
  const setup = (roleName: string, confirm: (q: string, plan: readonly string[]) => Promise<void>) => {
    const p = provider();
    return setupInstanceProfile({
      config,
      env: env(),
      region: "us-east-1",
      store: STORE,
      roleName,
      dryRun: false,
      confirm,
      securityGroup: p,
    }).finally(() => p.destroy());
  };
  const never = async () => {
    throw new Error("nothing should need confirming");
  };

  it("asks before a change, with the diff, and writes nothing when the answer is no", async () => {
    await setup("prog-role", never);
    ec2.iam.putRolePolicy(
      "prog-role",
      "runctl-store-access",
      JSON.stringify(storePolicy(storeLocation("s3://ml-bucket/other"), "us-east-1")),
    );
    const before = writes();
    const asked: string[][] = [];
    await expect(
      setup("prog-role", async (_q, plan) => {
        asked.push([...plan]);
        throw new Error("no");
      }),
    ).rejects.toThrow("no");
    expect(writes()).toBe(before);
    expect(asked[0]?.some((l) => l.includes('-         "arn:aws:s3:::ml-bucket/other/runs/*"'))).toBe(true);
    const yes = await setup("prog-role", async () => {});
    expect(yes.steps.find((s) => s.resource === "store-policy")?.status).toBe("updated");
    expect(JSON.parse(ec2.iam.roles.get("prog-role")?.policies.get("runctl-store-access") ?? "{}")).toEqual(
      WANTED,
    );
  });

  it("refuses an instance profile that holds another role, or that runctl did not make", async () => {
    ec2.iam.createRole({ RoleName: "someone", AssumeRolePolicyDocument: JSON.stringify(trustPolicy()) });
    ec2.iam.createInstanceProfile({ InstanceProfileName: "taken" });
    ec2.iam.addRoleToInstanceProfile("taken", "someone");
    ec2.iam.createInstanceProfile({ InstanceProfileName: "empty-foreign" });
    const before = writes();
    await expect(setup("taken", never)).rejects.toMatchObject({ code: "profile_conflict" });
    await expect(setup("empty-foreign", never)).rejects.toMatchObject({ code: "profile_not_runctl" });
    expect(writes()).toBe(before);
    expect(ec2.iam.roles.has("taken")).toBe(false);
  });

  it("adds the role to a runctl profile left empty", async () => {
    ec2.iam.createInstanceProfile({
      InstanceProfileName: "half-made",
      Tags: [{ Key: "CreatedBy", Value: "runctl" }],
    });
    const done = await setup("half-made", never);
    expect(done.steps.find((s) => s.resource === "instance-profile")?.status).toBe("updated");
    expect(ec2.iam.instanceProfiles.get("half-made")?.roles).toEqual(["half-made"]);
  });
});
