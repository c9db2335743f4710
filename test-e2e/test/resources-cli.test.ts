// `runctl resources …` across the registered providers (local and aws, the latter on the EC2
// emulator): only runctl's resources are listed and stopped, runctl:protected is left alone,
// stop-all asks first, and a provider that cannot answer does not hide the others.
import { EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { AwsConfig, AwsProvider } from "@runctl/provider-aws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Ec2Emulator, startEc2Emulator } from "../src/ec2-emulator.ts";
import { runctlJson, type Workspace, workspace } from "../src/runctl-cli.ts";

const KEY = { accessKeyId: "AKIDRESOURCES", secretAccessKey: "secret-resources" };
let ec2: Ec2Emulator;
let ws: Workspace;
const ids = { plain: "", protectedOne: "", stopped: "", foreign: "" };

interface Row {
  provider: string;
  id: string;
  state: string;
  pricePerHour: number | null;
  uptimeHours: number | null;
  costSoFar: number | null;
}

beforeAll(async () => {
  ec2 = await startEc2Emulator({ credentials: [KEY], transitionMs: 0 });
  const env = {
    AWS_ENDPOINT_URL_EC2: ec2.endpoint,
    AWS_ACCESS_KEY_ID: KEY.accessKeyId,
    AWS_SECRET_ACCESS_KEY: KEY.secretAccessKey,
  };
  ws = await workspace({ ...env, AWS_REGION: "us-east-1" });
  const aws = new AwsProvider({ config: AwsConfig.parse({}), env, region: "us-east-1" });
  ids.plain = (await aws.launch({ instanceType: "g5.xlarge" })).resourceId;
  ids.protectedOne = (
    await aws.launch({ instanceType: "t3.micro", tags: { "runctl:protected": "true" } })
  ).resourceId;
  ids.stopped = (await aws.launch({ instanceType: "t3.small" })).resourceId;
  for (const id of Object.values(ids).filter(Boolean)) await ec2.cloud.waitForState(id, "running");
  await aws.stop(ids.stopped);
  await ec2.cloud.waitForState(ids.stopped, "stopped");
  const raw = new EC2Client({ endpoint: ec2.endpoint, region: "us-east-1", credentials: KEY });
  const out = await raw.send(
    new RunInstancesCommand({
      ImageId: "ami-0c0ffee0c0ffee001",
      InstanceType: "t3.micro",
      MinCount: 1,
      MaxCount: 1,
    }),
  );
  ids.foreign = out.Instances?.[0]?.InstanceId as string;
  raw.destroy();
  aws.destroy();
});

afterAll(async () => {
  await ec2?.stop();
});

describe("runctl resources", () => {
  it("lists runctl's resources of every provider with price, uptime and cost so far, and sums them up", async () => {
    const listed = await runctlJson(["resources", "list"], ws);
    expect(listed.code).toBe(0);
    const doc = listed.doc as unknown as { resources: Row[]; failures: unknown[] };
    expect(doc.failures).toEqual([]);
    const aws = doc.resources.filter((r) => r.provider === "aws");
    expect(aws.map((r) => r.id).sort()).toEqual([ids.plain, ids.protectedOne, ids.stopped].sort());
    const plain = aws.find((r) => r.id === ids.plain);
    expect(plain).toMatchObject({ state: "running", pricePerHour: 1.006 });
    expect(plain?.uptimeHours).toBeGreaterThanOrEqual(0);
    expect(aws.find((r) => r.id === ids.stopped)?.costSoFar).toBeNull();

    const summary = await runctlJson(["resources", "summary", "--provider", "aws"], ws);
    expect(summary.doc).toMatchObject({
      providers: [{ provider: "aws", total: 3, byState: { running: 2, stopped: 1 }, burnPerHour: 1.0164 }],
      burnPerHour: 1.0164,
    });
  });

  it("stop-all previews exactly the unprotected running ones, asks, then stops them", async () => {
    const dry = await runctlJson(["resources", "stop-all", "--dry-run"], ws);
    const plan = dry.doc as unknown as { stop: Row[]; skipped: Array<{ resource: Row; reason: string }> };
    expect(plan.stop.map((r) => r.id)).toEqual([ids.plain]);
    expect(plan.skipped.map((s) => [s.resource.id, s.reason])).toEqual([
      [ids.protectedOne, "tagged runctl:protected"],
    ]);
    expect(ec2.cloud.instances.get(ids.plain)?.state).toBe("running");

    const unasked = await runctlJson(["resources", "stop-all"], ws);
    expect(unasked.code).toBe(1);
    expect(unasked.doc).toMatchObject({ success: false, error: { code: "confirmation_required" } });
    expect(ec2.cloud.instances.get(ids.plain)?.state).toBe("running");

    const done = await runctlJson(["resources", "stop-all", "--yes"], ws);
    expect(done.doc).toMatchObject({ success: true, dryRun: false, stopped: [{ id: ids.plain }] });
    await ec2.cloud.waitForState(ids.plain, "stopped");
    expect(ec2.cloud.instances.get(ids.protectedOne)?.state).toBe("running");
    expect(ec2.cloud.instances.get(ids.foreign)?.state).toBe("running");
  });

  it("reports a provider that cannot answer and still lists the others", async () => {
    const bad = await runctlJson(["resources", "list"], {
      ...ws,
      env: { ...ws.env, AWS_SECRET_ACCESS_KEY: "wrong" },
    });
    expect(bad.code).toBe(0);
    expect(bad.doc).toMatchObject({ success: true, failures: [{ provider: "aws", code: "auth" }] });
    expect(bad.stderr).toContain("Warning: aws:");
  });
});
