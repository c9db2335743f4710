// The EC2 emulator against the unmodified AWS SDK: requests it accepts and answers as EC2 does,
// and what it refuses (wrong signature, unknown key, capacity, throttling, mismatched client
// tokens, spot stop) with the codes the SDK turns into exceptions of those names.
import { request } from "node:http";
import {
  type _InstanceType,
  CreateSecurityGroupCommand,
  CreateTagsCommand,
  DescribeAvailabilityZonesCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeInstanceTypesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSpotPriceHistoryCommand,
  DescribeTagsCommand,
  EC2Client,
  EC2ServiceException,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ec2Failure } from "../src/ec2-emulator/ec2-failure.ts";
import { formPairs, parseAction, RunInstancesParams, unflatten } from "../src/ec2-emulator/query-params.ts";
import { type Ec2Emulator, startEc2Emulator, type VirtualMachineContext } from "../src/ec2-emulator.ts";

const KEY = { accessKeyId: "AKIDEC2TEST", secretAccessKey: "secret-ec2" };
const IMAGE = "ami-0a1b2c3d4e5f60702";

let ec2: Ec2Emulator;
const booted: VirtualMachineContext[] = [];
const stopped: string[] = [];

function client(credentials = KEY): EC2Client {
  return new EC2Client({ endpoint: ec2.endpoint, region: "us-east-1", credentials, maxAttempts: 1 });
}

async function refusal(promise: Promise<unknown>): Promise<EC2ServiceException> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(EC2ServiceException);
    return error as EC2ServiceException;
  }
  throw new Error("expected the request to be refused");
}

function imds(
  endpoint: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${endpoint}${path}`, { method, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

const base: RunInstancesCommandInput = { ImageId: IMAGE, InstanceType: "t3.micro", MinCount: 1, MaxCount: 1 };

beforeAll(async () => {
  ec2 = await startEc2Emulator({
    credentials: [KEY],
    transitionMs: 0,
    machine: (vm) => {
      booted.push(vm);
      return { stop: () => void stopped.push(vm.instanceId) };
    },
  });
  ec2.iam.createInstanceProfile({ InstanceProfileName: "runctl-run" });
});

afterAll(async () => {
  await ec2?.stop();
});

describe("ec2 emulator", () => {
  it("refuses a wrong secret and an unknown key with EC2's codes", async () => {
    const wrong = await refusal(
      client({ ...KEY, secretAccessKey: "nope" }).send(new DescribeInstancesCommand({})),
    );
    expect(wrong.name).toBe("SignatureDoesNotMatch");
    expect(wrong.$metadata.httpStatusCode).toBe(403);
    const unknown = await refusal(
      client({ accessKeyId: "AKIDNOBODY", secretAccessKey: "x" }).send(new DescribeInstancesCommand({})),
    );
    expect(unknown.name).toBe("AuthFailure");
    expect(unknown.$metadata.httpStatusCode).toBe(401);
  });

  it("launches with tags, spot options and user-data, and boots the machine hook with them", async () => {
    const userData = "#!/bin/sh\necho hello from the bootstrap\n";
    const out = await client().send(
      new RunInstancesCommand({
        ...base,
        UserData: Buffer.from(userData).toString("base64"),
        Placement: { AvailabilityZone: "us-east-1b" },
        InstanceMarketOptions: {
          MarketType: "spot",
          SpotOptions: { SpotInstanceType: "one-time", InstanceInterruptionBehavior: "terminate" },
        },
        MetadataOptions: { HttpTokens: "required" },
        BlockDeviceMappings: [{ DeviceName: "/dev/sda1", Ebs: { VolumeSize: 120, VolumeType: "gp3" } }],
        IamInstanceProfile: { Name: "runctl-run" },
        TagSpecifications: [
          {
            ResourceType: "instance",
            Tags: [
              { Key: "CreatedBy", Value: "runctl" },
              { Key: "runctl:run-id", Value: "r1" },
            ],
          },
        ],
      }),
    );
    const instance = out.Instances?.[0];
    expect(instance?.State?.Name).toBe("pending");
    expect(instance?.Placement?.AvailabilityZone).toBe("us-east-1b");
    expect(instance?.InstanceLifecycle).toBe("spot");
    expect(instance?.MetadataOptions?.HttpTokens).toBe("required");
    expect(instance?.IamInstanceProfile?.Arn).toMatch(/instance-profile\/runctl-run$/);
    const id = instance?.InstanceId as string;
    await ec2.cloud.waitForState(id, "running");
    const vm = booted.find((b) => b.instanceId === id);
    expect(vm?.userData).toBe(userData);
    expect(vm?.tags["runctl:run-id"]).toBe("r1");
    const described = await client().send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: "tag:runctl:run-id", Values: ["r1"] },
          { Name: "instance-state-name", Values: ["running"] },
        ],
      }),
    );
    const found = described.Reservations?.flatMap((r) => r.Instances ?? []) ?? [];
    expect(found.map((i) => i.InstanceId)).toEqual([id]);
    expect(found[0]?.Tags).toContainEqual({ Key: "CreatedBy", Value: "runctl" });
    expect(found[0]?.BlockDeviceMappings?.[0]?.DeviceName).toBe("/dev/sda1");

    // A one-time spot instance cannot be stopped, as on EC2.
    const stop = await refusal(client().send(new StopInstancesCommand({ InstanceIds: [id] })));
    expect(stop.name).toBe("UnsupportedOperation");

    // IMDSv2: a token is required; the notice appears only once the instance is interrupted.
    const md = vm?.imdsEndpoint as string;
    expect((await imds(md, "GET", "/latest/meta-data/instance-id")).status).toBe(401);
    expect((await imds(md, "PUT", "/latest/api/token")).status).toBe(400);
    const token = await imds(md, "PUT", "/latest/api/token", {
      "X-aws-ec2-metadata-token-ttl-seconds": "60",
    });
    expect(token.status).toBe(200);
    const h = { "X-aws-ec2-metadata-token": token.body };
    expect(await imds(md, "GET", "/latest/meta-data/instance-id", h)).toEqual({ status: 200, body: id });
    expect((await imds(md, "GET", "/latest/meta-data/placement/availability-zone", h)).body).toBe(
      "us-east-1b",
    );
    expect(
      (await imds(md, "GET", "/latest/meta-data/instance-id", { "X-aws-ec2-metadata-token": "forged" }))
        .status,
    ).toBe(401);
    expect((await imds(md, "GET", "/latest/meta-data/spot/instance-action", h)).status).toBe(404);
    ec2.cloud.interruptSpot(id);
    const notice = await imds(md, "GET", "/latest/meta-data/spot/instance-action", h);
    expect(notice.status).toBe(200);
    expect(JSON.parse(notice.body)).toMatchObject({ action: "terminate" });
    await ec2.cloud.waitForState(id, "terminated");
    expect(stopped).toContain(id);
    const after = await client().send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    const gone = after.Reservations?.[0]?.Instances?.[0];
    expect(gone?.StateReason?.Code).toBe("Server.SpotInstanceTermination");
  });

  it("stops or terminates an instance that shuts itself down, per its shutdown behaviour", async () => {
    const launch = async (behavior: "stop" | "terminate") => {
      const out = await client().send(
        new RunInstancesCommand({ ...base, InstanceInitiatedShutdownBehavior: behavior }),
      );
      const id = out.Instances?.[0]?.InstanceId as string;
      await ec2.cloud.waitForState(id, "running");
      const vm = booted.find((b) => b.instanceId === id);
      vm?.shutdown();
      return id;
    };
    const stoppedId = await launch("stop");
    await ec2.cloud.waitForState(stoppedId, "stopped");
    expect(stopped).toContain(stoppedId);
    const described = await client().send(new DescribeInstancesCommand({ InstanceIds: [stoppedId] }));
    expect(described.Reservations?.[0]?.Instances?.[0]?.StateReason?.Code).toBe(
      "Client.InstanceInitiatedShutdown",
    );
    const endedId = await launch("terminate");
    await ec2.cloud.waitForState(endedId, "terminated");
  });

  it("makes one instance per client token and refuses the same token with other arguments", async () => {
    const input = { ...base, ClientToken: "token-idem-1" };
    const first = await client().send(new RunInstancesCommand(input));
    const again = await client().send(new RunInstancesCommand(input));
    expect(again.Instances?.[0]?.InstanceId).toBe(first.Instances?.[0]?.InstanceId);
    expect(again.ReservationId).toBe(first.ReservationId);
    // Two requests with one token in flight at once (driven in-process, so the interleaving is
    // certain): the second gets the first's reservation.
    const racing = RunInstancesParams.parse({
      Action: "RunInstances",
      Version: "2016-11-15",
      ImageId: IMAGE,
      InstanceType: "t3.micro",
      MinCount: "1",
      MaxCount: "1",
      ClientToken: "token-idem-race",
    });
    const [r1, r2] = await Promise.all([
      ec2.cloud.runInstances(racing, "us-east-1"),
      ec2.cloud.runInstances(racing, "us-east-1"),
    ]);
    expect(r2.instances[0]?.instanceId).toBe(r1.instances[0]?.instanceId);
    const mismatch = await refusal(
      client().send(new RunInstancesCommand({ ...input, InstanceType: "t3.small" })),
    );
    expect(mismatch.name).toBe("IdempotentParameterMismatch");
    const byToken = await client().send(
      new DescribeInstancesCommand({ Filters: [{ Name: "client-token", Values: ["token-idem-1"] }] }),
    );
    expect(byToken.Reservations?.flatMap((r) => r.Instances ?? []).length).toBe(1);
  });

  it("refuses capacity, throttles, denies and validates with EC2's errors", async () => {
    ec2.cloud.refuseCapacity({ zone: "us-east-1a", instanceType: "g5.xlarge", market: "spot" });
    const spot: RunInstancesCommandInput = {
      ...base,
      InstanceType: "g5.xlarge",
      InstanceMarketOptions: { MarketType: "spot" as const },
    };
    const refused = await refusal(
      client().send(new RunInstancesCommand({ ...spot, Placement: { AvailabilityZone: "us-east-1a" } })),
    );
    expect(refused.name).toBe("InsufficientInstanceCapacity");
    const low = await refusal(
      client().send(
        new RunInstancesCommand({
          ...spot,
          Placement: { AvailabilityZone: "us-east-1b" },
          InstanceMarketOptions: { MarketType: "spot", SpotOptions: { MaxPrice: "0.01" } },
        }),
      ),
    );
    expect(low.name).toBe("SpotMaxPriceTooLow");
    ec2.cloud.clearFaults();

    ec2.cloud.throttleNext({ calls: 2 });
    expect((await refusal(client().send(new DescribeInstancesCommand({})))).name).toBe(
      "RequestLimitExceeded",
    );
    expect((await refusal(client().send(new DescribeInstancesCommand({})))).name).toBe(
      "RequestLimitExceeded",
    );
    await client().send(new DescribeInstancesCommand({}));

    const dry = await refusal(client().send(new DescribeInstancesCommand({ DryRun: true })));
    expect(dry.name).toBe("DryRunOperation");
    const dryRun = await refusal(client().send(new RunInstancesCommand({ ...base, DryRun: true })));
    expect(dryRun.name).toBe("DryRunOperation");

    ec2.cloud.deny("TerminateInstances");
    const denied = await refusal(
      client().send(new TerminateInstancesCommand({ InstanceIds: ["i-0123456789abcdef0"] })),
    );
    expect(denied.name).toBe("UnauthorizedOperation");
    ec2.cloud.clearFaults();

    expect(
      (await refusal(client().send(new DescribeInstancesCommand({ InstanceIds: ["i-0123456789abcdef0"] }))))
        .name,
    ).toBe("InvalidInstanceID.NotFound");
    expect((await refusal(client().send(new DescribeInstancesCommand({ InstanceIds: ["nope"] })))).name).toBe(
      "InvalidInstanceID.Malformed",
    );
    expect(
      (
        await refusal(
          client().send(new RunInstancesCommand({ ...base, InstanceType: "z9.huge" as _InstanceType })),
        )
      ).name,
    ).toBe("InvalidParameterValue");
    const big = Buffer.alloc(16 * 1024 + 1, "a").toString("base64");
    expect((await refusal(client().send(new RunInstancesCommand({ ...base, UserData: big })))).name).toBe(
      "InvalidParameterValue",
    );
    expect(
      (
        await refusal(
          client().send(
            new RunInstancesCommand({
              ...base,
              InstanceMarketOptions: {
                MarketType: "spot",
                SpotOptions: { InstanceInterruptionBehavior: "stop" },
              },
            }),
          ),
        )
      ).name,
    ).toBe("InvalidParameterCombination");
    expect(
      (
        await refusal(
          client().send(new DescribeInstancesCommand({ Filters: [{ Name: "colour", Values: ["x"] }] })),
        )
      ).name,
    ).toBe("InvalidParameterValue");
  });

  it("stops and starts an on-demand instance and pages through DescribeInstances", async () => {
    const out = await client().send(
      new RunInstancesCommand({
        ...base,
        MinCount: 1,
        MaxCount: 6,
        TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "page", Value: "yes" }] }],
      }),
    );
    const ids = (out.Instances ?? []).map((i) => i.InstanceId as string);
    expect(ids.length).toBe(6);
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await client().send(
        new DescribeInstancesCommand({
          Filters: [{ Name: "tag:page", Values: ["yes"] }],
          MaxResults: 5,
          NextToken: token,
        }),
      );
      for (const r of page.Reservations ?? [])
        for (const i of r.Instances ?? []) seen.push(i.InstanceId as string);
      token = page.NextToken;
      pages += 1;
    } while (token);
    expect(pages).toBe(2);
    expect(seen.sort()).toEqual([...ids].sort());
    const id = ids[0] as string;
    await ec2.cloud.waitForState(id, "running");
    const stopping = await client().send(new StopInstancesCommand({ InstanceIds: [id] }));
    expect(stopping.StoppingInstances?.[0]?.CurrentState?.Name).toBe("stopping");
    await ec2.cloud.waitForState(id, "stopped");
    await client().send(new StartInstancesCommand({ InstanceIds: [id] }));
    await ec2.cloud.waitForState(id, "running");
    const terminating = await client().send(new TerminateInstancesCommand({ InstanceIds: ids }));
    expect(terminating.TerminatingInstances?.map((t) => t.CurrentState?.Name)).toEqual(
      ids.map(() => "shutting-down"),
    );
    await ec2.cloud.waitForState(id, "terminated");
    const restart = await refusal(client().send(new StartInstancesCommand({ InstanceIds: [id] })));
    expect(restart.name).toBe("IncorrectInstanceState");
  });

  it("finds Deep Learning AMIs, zones, spot prices, security groups and tags", async () => {
    const images = await client().send(
      new DescribeImagesCommand({
        Owners: ["amazon"],
        Filters: [
          { Name: "name", Values: ["Deep Learning OSS Nvidia Driver AMI GPU PyTorch * (Ubuntu 22.04) *"] },
          { Name: "architecture", Values: ["x86_64"] },
          { Name: "state", Values: ["available"] },
        ],
      }),
    );
    const newest = [...(images.Images ?? [])].sort((a, b) =>
      (b.CreationDate ?? "").localeCompare(a.CreationDate ?? ""),
    )[0];
    expect(newest?.ImageId).toBe(IMAGE);
    expect(images.Images?.every((i) => i.OwnerId === "898082745236")).toBe(true);
    const types = await client().send(
      new DescribeInstanceTypesCommand({ InstanceTypes: ["g5.xlarge", "t3.micro"] }),
    );
    const g5 = types.InstanceTypes?.find((t) => t.InstanceType === "g5.xlarge");
    expect(g5?.GpuInfo?.Gpus?.[0]).toMatchObject({ Count: 1, Manufacturer: "NVIDIA" });
    expect(g5?.SupportedUsageClasses).toEqual(["on-demand", "spot"]);
    expect(types.InstanceTypes?.find((t) => t.InstanceType === "t3.micro")?.GpuInfo).toBeUndefined();
    const unknownType = await refusal(
      client().send(new DescribeInstanceTypesCommand({ InstanceTypes: ["z9.huge" as _InstanceType] })),
    );
    expect(unknownType.name).toBe("InvalidInstanceType");
    const zones = await client().send(new DescribeAvailabilityZonesCommand({}));
    expect(zones.AvailabilityZones?.map((z) => z.ZoneName)).toEqual([
      "us-east-1a",
      "us-east-1b",
      "us-east-1c",
    ]);
    const prices = await client().send(
      new DescribeSpotPriceHistoryCommand({
        InstanceTypes: ["g5.xlarge"],
        ProductDescriptions: ["Linux/UNIX"],
        StartTime: new Date(),
      }),
    );
    expect(prices.SpotPriceHistory?.length).toBe(3);
    expect(Number(prices.SpotPriceHistory?.[0]?.SpotPrice)).toBeGreaterThan(0);

    const sg = await client().send(
      new CreateSecurityGroupCommand({
        GroupName: "runctl",
        Description: "runctl: no inbound",
        TagSpecifications: [
          { ResourceType: "security-group", Tags: [{ Key: "CreatedBy", Value: "runctl" }] },
        ],
      }),
    );
    expect(
      (
        await refusal(
          client().send(new CreateSecurityGroupCommand({ GroupName: "runctl", Description: "again" })),
        )
      ).name,
    ).toBe("InvalidGroup.Duplicate");
    const groups = await client().send(
      new DescribeSecurityGroupsCommand({ Filters: [{ Name: "group-name", Values: ["runctl"] }] }),
    );
    expect(groups.SecurityGroups?.[0]?.GroupId).toBe(sg.GroupId);
    expect(groups.SecurityGroups?.[0]?.IpPermissions ?? []).toEqual([]);
    await client().send(
      new CreateTagsCommand({
        Resources: [sg.GroupId as string],
        Tags: [{ Key: "runctl:project", Value: "p" }],
      }),
    );
    const tags = await client().send(
      new DescribeTagsCommand({ Filters: [{ Name: "resource-id", Values: [sg.GroupId as string] }] }),
    );
    expect(tags.Tags?.map((t) => t.Key).sort()).toEqual(["CreatedBy", "runctl:project"]);
  });

  it("takes faults over its HTTP admin endpoint, for tests that drive a CLI process", async () => {
    const res = await fetch(`${ec2.endpoint}/__emulator/faults`, {
      method: "POST",
      body: JSON.stringify({ capacity: [{ instanceType: "c5.large" }] }),
    });
    expect(res.status).toBe(200);
    expect(
      (await refusal(client().send(new RunInstancesCommand({ ...base, InstanceType: "c5.large" })))).name,
    ).toBe("InsufficientInstanceCapacity");
    const bad = await fetch(`${ec2.endpoint}/__emulator/faults`, {
      method: "POST",
      body: JSON.stringify({ capacity: "all" }),
    });
    expect(bad.status).toBe(400);
    await fetch(`${ec2.endpoint}/__emulator/faults`, {
      method: "POST",
      body: JSON.stringify({ clear: true }),
    });
    await client().send(new RunInstancesCommand({ ...base, InstanceType: "c5.large" }));
  });
});

describe("ec2 emulator: the Query protocol's parameters", () => {
  const failure = (fn: () => unknown): Ec2Failure => {
    try {
      fn();
    } catch (error) {
      expect(error).toBeInstanceOf(Ec2Failure);
      return error as Ec2Failure;
    }
    throw new Error("expected a refusal");
  };

  it("nests dotted names into lists by their 1-based indices", () => {
    const body =
      "Action=RunInstances&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.2.Key=b&TagSpecification.1.Tag.1.Key=a&TagSpecification.1.Tag.1.Value=x%2By+z";
    expect(unflatten(formPairs(body))).toEqual({
      Action: "RunInstances",
      TagSpecification: [{ ResourceType: "instance", Tag: [{ Key: "a", Value: "x+y z" }, { Key: "b" }] }],
    });
  });

  it("refuses repeated, conflicting, unknown and missing parameters with EC2's codes", () => {
    expect(failure(() => unflatten(formPairs("A=1&A=2"))).code).toBe("InvalidParameter");
    expect(failure(() => unflatten(formPairs("A.1=x&A.1.B=y"))).code).toBe("InvalidParameter");
    const base = {
      Action: "RunInstances",
      Version: "2016-11-15",
      ImageId: "ami-0a1b2c3d4e5f60702",
      MinCount: "1",
      MaxCount: "1",
    };
    expect(failure(() => parseAction(RunInstancesParams, { ...base, Colour: "blue" })).code).toBe(
      "UnknownParameter",
    );
    const { ImageId: _, ...noImage } = base;
    expect(failure(() => parseAction(RunInstancesParams, noImage)).code).toBe("MissingParameter");
    expect(failure(() => parseAction(RunInstancesParams, { ...base, MinCount: "one" })).code).toBe(
      "InvalidParameterValue",
    );
  });
});
