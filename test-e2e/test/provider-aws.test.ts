// provider-aws against the EC2 emulator, through the real SDK: the provider contract suite, the
// capacity fallback order, client-token idempotency across re-runs, throttling bounds, auth
// errors naming their credential source, tags and launch settings as EC2 receives them, quotes.
import { EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { hasErrorCode, isRunctlError, type Provider, ProviderRegistry } from "@runctl/core";
import { providerContractCases } from "@runctl/core/testing";
import {
  AwsConfig,
  type AwsConfigInput,
  AwsLaunchOptions,
  AwsProvider,
  awsDefinition,
  type LaunchStepEvent,
} from "@runctl/provider-aws";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Ec2Emulator, startEc2Emulator } from "../src/ec2-emulator.ts";

const KEY = { accessKeyId: "AKIDAWSPROVIDER", secretAccessKey: "secret-aws-provider" };
const FAST: AwsConfigInput = { retry_base_ms: 1, retry_cap_ms: 4, retry_attempts: 3 };

let ec2: Ec2Emulator;

function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    AWS_ENDPOINT_URL_EC2: ec2.endpoint,
    AWS_ACCESS_KEY_ID: KEY.accessKeyId,
    AWS_SECRET_ACCESS_KEY: KEY.secretAccessKey,
    AWS_REGION: "us-east-1",
    USER: "tester",
    ...extra,
  };
}

function provider(
  events: LaunchStepEvent[] = [],
  config: AwsConfigInput = FAST,
  extraEnv: Record<string, string> = {},
): AwsProvider {
  return new AwsProvider({
    config: AwsConfig.parse(config),
    env: env(extraEnv),
    region: "us-east-1",
    onLaunchStep: (e) => events.push(e),
  });
}

function instancesTagged(key: string, value: string) {
  return [...ec2.cloud.instances.values()].filter((i) => i.tags.get(key) === value);
}

beforeAll(async () => {
  ec2 = await startEc2Emulator({ credentials: [KEY], transitionMs: 2 });
  // RunInstances refuses a profile the account lacks (what `runctl aws setup` creates).
  ec2.iam.createInstanceProfile({ InstanceProfileName: "runctl-run" });
});

afterAll(async () => {
  await ec2?.stop();
});

beforeEach(() => {
  ec2.cloud.clearFaults();
});

describe("provider-aws: the contract suite", () => {
  const registry = new ProviderRegistry();
  registry.register(awsDefinition, { plugin: "@runctl/provider-aws" });
  const make = (): Promise<Provider> => registry.create("aws", FAST, { env: env(), dataDir: "/nonexistent" });
  const cases = providerContractCases(make, {
    launchSpec: { instanceType: "t3.micro" },
    spotRefusedSpec: { instanceType: "t3.micro", market: "spot", maxPricePerHour: 0.0001 },
    settleTimeoutMs: 10_000,
    pollMs: 5,
    launchOptionsSchema: AwsLaunchOptions,
    createUnmanaged: async () => {
      const client = new EC2Client({ endpoint: ec2.endpoint, region: "us-east-1", credentials: KEY });
      const out = await client.send(
        new RunInstancesCommand({
          ImageId: "ami-0c0ffee0c0ffee001",
          InstanceType: "t3.micro",
          MinCount: 1,
          MaxCount: 1,
        }),
      );
      client.destroy();
      return out.Instances?.[0]?.InstanceId as string;
    },
  });
  for (const c of cases) it(c.name, c.run);
});

describe("provider-aws: launch", () => {
  it("launches what it says: tags, IMDSv2, security group without inbound rules, newest DLAMI, disk, bootstrap", async () => {
    const p = provider();
    const bootstrap = "#!/bin/sh\nexec runctl-agent\n";
    const placement = await p.launch({
      instanceType: "g5.xlarge",
      diskGb: 200,
      runId: "run-tags",
      bootstrap,
      tags: { "runctl:project": "vision" },
      providerOptions: { name: "trainer", iamInstanceProfile: "runctl-run" },
    });
    const i = ec2.cloud.instances.get(placement.resourceId);
    expect(i).toBeDefined();
    const tags = Object.fromEntries(i?.tags ?? []);
    expect(tags).toMatchObject({
      CreatedBy: "runctl",
      "runctl:project": "vision",
      "runctl:user": "tester",
      "runctl:run-id": "run-tags",
      Name: "trainer",
    });
    expect(Date.parse(tags["runctl:created"] ?? "")).not.toBeNaN();
    expect(i?.metadata.httpTokens).toBe("required");
    expect(i?.imageId).toBe("ami-0a1b2c3d4e5f60702");
    expect(i?.rootDevice.sizeGb).toBe(200);
    expect(i?.iamInstanceProfile?.arn).toMatch(/instance-profile\/runctl-run$/);
    expect(Buffer.from(i?.userData ?? "", "base64").toString("utf8")).toBe(bootstrap);
    const group = ec2.cloud.securityGroups.get(i?.securityGroupIds[0] ?? "");
    expect(group?.groupName).toBe("runctl");
    expect(group?.tags.get("CreatedBy")).toBe("runctl");
    // A second provider finds the group instead of making another.
    const again = await provider().launch({ instanceType: "t3.micro" });
    expect(ec2.cloud.instances.get(again.resourceId)?.securityGroupIds).toEqual(i?.securityGroupIds);
    expect([...ec2.cloud.securityGroups.values()].filter((g) => g.groupName === "runctl").length).toBe(1);
    for (const id of [placement.resourceId, again.resourceId]) await p.terminate(id);
  });

  it("falls back in the printed order: other zones, then other types; spot stays spot without fallback", async () => {
    ec2.cloud.refuseCapacity({ instanceType: "g5.xlarge", market: "spot" });
    ec2.cloud.refuseCapacity({ instanceType: "g6.xlarge", market: "spot", zone: "us-east-1a" });
    const events: LaunchStepEvent[] = [];
    const before = ec2.cloud.callCount("RunInstances");
    const placement = await provider(events).launch({
      instanceType: "g5.xlarge",
      market: "spot",
      providerOptions: { instanceTypes: ["g6.xlarge"] },
    });
    expect(placement).toMatchObject({ instanceType: "g6.xlarge", market: "spot" });
    expect(ec2.cloud.instances.get(placement.resourceId)?.zone).toBe("us-east-1b");
    const walked = events
      .filter((e) => e.kind === "refused" || e.kind === "launched")
      .map((e) => `${e.kind} ${e.step.instanceType} ${e.step.zone}`);
    expect(walked).toEqual([
      "refused g5.xlarge us-east-1a",
      "refused g5.xlarge us-east-1b",
      "refused g5.xlarge us-east-1c",
      "refused g6.xlarge us-east-1a",
      "launched g6.xlarge us-east-1b",
    ]);
    expect(ec2.cloud.callCount("RunInstances") - before).toBe(5);
    await provider().terminate(placement.resourceId);
  });

  it("fails with capacity and leaves nothing running when spot is refused and fallback is not allowed; on-demand with it", async () => {
    ec2.cloud.refuseCapacity({ instanceType: "g4dn.xlarge", market: "spot" });
    const error = await provider()
      .launch({ instanceType: "g4dn.xlarge", market: "spot", runId: "run-refused" })
      .catch((e: unknown) => e);
    expect(hasErrorCode(error, "capacity")).toBe(true);
    expect(isRunctlError(error) && error.hint).toMatch(/--spot-fallback/);
    expect(instancesTagged("runctl:run-id", "run-refused")).toEqual([]);
    const events: LaunchStepEvent[] = [];
    const placement = await provider(events).launch({
      instanceType: "g4dn.xlarge",
      market: "spot",
      spotFallback: true,
      runId: "run-fallback",
    });
    expect(placement.market).toBe("on-demand");
    expect(ec2.cloud.instances.get(placement.resourceId)?.spot).toBeUndefined();
    expect(events.filter((e) => e.kind === "refused").length).toBe(3);
    await provider().terminate(placement.resourceId);
  });

  it("makes one machine per run attempt, however often the launch is retried or re-run", async () => {
    ec2.cloud.throttleNext({ calls: 2, actions: ["RunInstances"] });
    const spec = { instanceType: "t3.micro", runId: "run-once", attempt: 1 } as const;
    const first = await provider().launch(spec);
    expect(instancesTagged("runctl:run-id", "run-once").length).toBe(1);
    // A re-run (a new process: its runctl:created differs, so EC2 sees other arguments).
    const events: LaunchStepEvent[] = [];
    const second = await provider(events).launch(spec);
    expect(second.resourceId).toBe(first.resourceId);
    expect(events.some((e) => e.kind === "launched" && e.adopted)).toBe(true);
    expect(instancesTagged("runctl:run-id", "run-once").length).toBe(1);
    // Two launches of one attempt racing: EC2's token makes one machine, both get it.
    const race = { ...spec, runId: "run-race" };
    const [a, b] = await Promise.all([provider().launch(race), provider().launch(race)]);
    expect(a.resourceId).toBe(b.resourceId);
    expect(instancesTagged("runctl:run-id", "run-race").length).toBe(1);
    await provider().terminate(a.resourceId);
    const next = await provider().launch({ ...spec, attempt: 2 });
    expect(next.resourceId).not.toBe(first.resourceId);
    for (const id of [first.resourceId, next.resourceId]) await provider().terminate(id);
  });

  it("finds a named launch's machine whichever fallback step made it, and never relaunches an ended one", async () => {
    ec2.cloud.refuseCapacity({ instanceType: "c5.large", zone: "us-east-1a" });
    const spec = { instanceType: "c5.large", runId: "run-fell-back", attempt: 1 } as const;
    const first = await provider().launch(spec);
    expect(ec2.cloud.instances.get(first.resourceId)?.zone).toBe("us-east-1b");
    // Capacity is back in us-east-1a: a re-run must not make a machine there.
    ec2.cloud.clearFaults();
    const before = ec2.cloud.callCount("RunInstances");
    const again = await provider().launch(spec);
    expect(again).toMatchObject({
      resourceId: first.resourceId,
      instanceType: "c5.large",
      market: "on-demand",
    });
    expect(ec2.cloud.callCount("RunInstances")).toBe(before);
    expect(instancesTagged("runctl:run-id", "run-fell-back").length).toBe(1);
    await provider().terminate(first.resourceId);
    await ec2.cloud.waitForState(first.resourceId, "terminated");
    const used = await provider()
      .launch(spec)
      .catch((e: unknown) => e);
    expect(hasErrorCode(used, "launch_used")).toBe(true);
    expect(instancesTagged("runctl:run-id", "run-fell-back").length).toBe(1);
  });

  it("gives up on a throttling storm after a bounded number of calls", async () => {
    const p = provider();
    const { resourceId } = await p.launch({ instanceType: "t3.micro" });
    ec2.cloud.throttleNext({ calls: 1000 });
    const before = ec2.cloud.callCount("DescribeInstances");
    const error = await p.list().catch((e: unknown) => e);
    expect(hasErrorCode(error, "throttled")).toBe(true);
    expect(ec2.cloud.callCount("DescribeInstances") - before).toBe(4);
    ec2.cloud.clearFaults();
    await p.terminate(resourceId);
  });

  it("names the credential source when EC2 refuses the key, as a provider error (exit 2)", async () => {
    const p = provider([], FAST, { AWS_SECRET_ACCESS_KEY: "wrong" });
    const error = await p.list().catch((e: unknown) => e);
    expect(hasErrorCode(error, "auth")).toBe(true);
    expect(isRunctlError(error) && error.exitCode).toBe(2);
    expect((error as Error).message).toContain("AWS_ACCESS_KEY_ID");
    ec2.cloud.deny("RunInstances");
    const denied = await provider()
      .launch({ instanceType: "t3.micro" })
      .catch((e: unknown) => e);
    expect(hasErrorCode(denied, "auth")).toBe(true);
    expect((denied as Error).message).toContain("ec2:RunInstances");
  });
});

describe("provider-aws: price, stop and interruptions", () => {
  it("quotes on-demand from the shipped table and spot from the cheapest zone's current price", async () => {
    const p = provider();
    expect(await p.quote({ instanceType: "g5.xlarge" })).toMatchObject({
      market: "on-demand",
      pricePerHour: 1.006,
      available: true,
    });
    const spot = await p.quote({ instanceType: "g5.xlarge", market: "spot" });
    expect(spot).toMatchObject({ market: "spot", zone: "us-east-1a", available: true, pricePerHour: 0.3018 });
    const capped = await p.quote({
      instanceType: "g5.xlarge",
      market: "spot",
      providerOptions: { maxPrice: 0.1 },
    });
    expect(capped).toMatchObject({ available: false, unavailable: { code: "capacity" } });
    const unknownType = await p.quote({ instanceType: "x9.unknown" }).catch((e: unknown) => e);
    expect(hasErrorCode(unknownType, "invalid_spec")).toBe(true);
    expect((unknownType as Error).message).toContain("x9.unknown");
  });

  it("refuses to stop a one-time spot instance and reports its interruption", async () => {
    const p = provider();
    const { resourceId } = await p.launch({ instanceType: "t3.micro", market: "spot" });
    await ec2.cloud.waitForState(resourceId, "running");
    const stop = await p.stop(resourceId).catch((e: unknown) => e);
    expect(hasErrorCode(stop, "unsupported")).toBe(true);
    expect(await p.interruptions([resourceId])).toEqual([]);
    ec2.cloud.interruptSpot(resourceId);
    await ec2.cloud.waitForState(resourceId, "terminated");
    const [notice] = await p.interruptions([resourceId]);
    expect(notice).toMatchObject({ resourceId, kind: "spot-termination" });
    expect(Date.parse(notice?.at ?? "")).not.toBeNaN();
    expect((await p.interruptions()).some((n) => n.resourceId === resourceId)).toBe(true);
  });

  it("keeps spot instances that stop on interruption stoppable (a persistent request)", async () => {
    const p = provider();
    const { resourceId } = await p.launch({
      instanceType: "t3.micro",
      market: "spot",
      providerOptions: { interruptionBehavior: "stop" },
    });
    expect(ec2.cloud.instances.get(resourceId)?.spot?.type).toBe("persistent");
    await ec2.cloud.waitForState(resourceId, "running");
    await p.stop(resourceId);
    await ec2.cloud.waitForState(resourceId, "stopped");
    await p.terminate(resourceId);
  });
});

describe("provider-aws: eventual consistency", () => {
  it("finds an instance it just launched even while EC2 still calls the id unknown", async () => {
    const p = provider();
    ec2.cloud.eventualConsistency = 2;
    try {
      const { resourceId } = await p.launch({ instanceType: "t3.micro" });
      const before = ec2.cloud.callCount("DescribeInstances");
      const resource = await p.status(resourceId);
      expect(resource.id).toBe(resourceId);
      expect(ec2.cloud.callCount("DescribeInstances") - before).toBe(3);
      // An id it did not launch is not waited for.
      const error = await p.status("i-0123456789abcdef0").catch((e: unknown) => e);
      expect(hasErrorCode(error, "not_found")).toBe(true);
      await p.terminate(resourceId);
    } finally {
      ec2.cloud.eventualConsistency = 0;
    }
  });
});
