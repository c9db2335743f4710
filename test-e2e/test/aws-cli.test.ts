// `runctl aws …` as a user runs it (the built CLI, provider-aws loaded as a plugin) against the
// EC2 emulator through the real SDK: dry runs launch nothing, fallback is printed, a killed and
// re-run create leaves one machine, destructive commands ask, honour runctl:protected, and a
// wrong key exits 2 naming where the key came from.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Ec2Emulator, startEc2Emulator } from "../src/ec2-emulator.ts";
import { runctl, runctlJson, startRunctl, type Workspace, workspace } from "../src/runctl-cli.ts";

const KEY = { accessKeyId: "AKIDAWSCLI", secretAccessKey: "secret-aws-cli" };
let ec2: Ec2Emulator;
let ws: Workspace;

beforeAll(async () => {
  ec2 = await startEc2Emulator({ credentials: [KEY], transitionMs: 2 });
  ws = await workspace({
    AWS_ACCESS_KEY_ID: KEY.accessKeyId,
    AWS_SECRET_ACCESS_KEY: KEY.secretAccessKey,
    AWS_ENDPOINT_URL_EC2: ec2.endpoint,
    AWS_REGION: "us-east-1",
    RUNCTL_AWS_RETRY_BASE_MS: "1",
  });
});

afterAll(async () => {
  await ec2?.stop();
});

function placementId(doc: unknown): string {
  return (doc as { placement: { resourceId: string } }).placement.resourceId;
}

describe("runctl aws", () => {
  it("create --dry-run quotes and launches nothing; create prints the fallback it walks", async () => {
    const dry = await runctlJson(["aws", "create", "g5.xlarge", "--spot", "--dry-run"], ws);
    expect(dry.doc).toMatchObject({
      success: true,
      dryRun: true,
      quote: { market: "spot", zone: "us-east-1a", available: true },
    });
    expect(ec2.cloud.callCount("RunInstances")).toBe(0);

    ec2.cloud.refuseCapacity({ zone: "us-east-1a", instanceType: "g5.xlarge", market: "spot" });
    const created = await runctlJson(["aws", "create", "g5.xlarge", "--spot", "--name", "cli-one"], ws);
    expect(created.code).toBe(0);
    const id = placementId(created.doc);
    expect(ec2.cloud.instances.get(id)?.zone).toBe("us-east-1b");
    expect(created.stderr).toContain(
      "launch order: 1. g5.xlarge (spot) in us-east-1a, 2. g5.xlarge (spot) in us-east-1b",
    );
    expect(created.stderr).toContain(
      "g5.xlarge (spot) in us-east-1a refused (InsufficientInstanceCapacity); trying g5.xlarge (spot) in us-east-1b",
    );
    ec2.cloud.clearFaults();

    const waited = await runctlJson(["aws", "wait", id, "--interval", "1"], ws);
    expect(waited.doc).toMatchObject({ success: true, resource: { id, state: "running" } });

    const listed = await runctlJson(["aws", "list", "--state", "pending", "--state", "running"], ws);
    const resources = (
      listed.doc as unknown as { resources: Array<{ id: string; tags: Record<string, string> }> }
    ).resources;
    expect(resources.map((r) => r.id)).toContain(id);
    expect(resources.every((r) => r.tags.CreatedBy === "runctl")).toBe(true);
  });

  it("leaves exactly one machine when create is SIGKILLed mid-launch and run again", async () => {
    const args = ["aws", "create", "t3.small", "--idempotency-key", "nightly-42", "--json"];
    const before = ec2.cloud.instances.size;
    const { child, result } = startRunctl(args, ws);
    // Killed once EC2 has accepted the launch but before the CLI hears the answer.
    const known = new Set(ec2.cloud.instances.keys());
    const killOnLaunch = (e: { instanceId: string; state: string }) => {
      if (e.state === "pending" && !known.has(e.instanceId)) {
        child.kill("SIGKILL");
        ec2.cloud.off("state", killOnLaunch);
      }
    };
    ec2.cloud.on("state", killOnLaunch);
    const killed = await result;
    expect(killed.signal).toBe("SIGKILL");
    expect(ec2.cloud.instances.size).toBe(before + 1);
    const again = await runctlJson(args.slice(0, -1), ws);
    expect(again.code).toBe(0);
    expect(ec2.cloud.instances.size).toBe(before + 1);
    expect(again.stderr).toContain("already launched by this launch");
    const id = placementId(again.doc);
    expect(ec2.cloud.instances.get(id)?.tags.get("CreatedBy")).toBe("runctl");
  });

  it("asks before terminating, previews with --dry-run, and refuses runctl:protected without --force", async () => {
    const created = await runctlJson(["aws", "create", "t3.micro"], ws);
    const id = placementId(created.doc);
    const unasked = await runctlJson(["aws", "terminate", id], ws);
    expect(unasked.code).toBe(1);
    expect(unasked.doc).toMatchObject({ success: false, error: { code: "confirmation_required" } });
    const preview = await runctl(["aws", "terminate", id, "--dry-run"], ws);
    expect(preview.stdout).toContain(`Would terminate ${id}`);
    expect(ec2.cloud.instances.get(id)?.state).not.toMatch(/shutting-down|terminated/);

    ec2.cloud.instances.get(id)?.tags.set("runctl:protected", "true");
    const refused = await runctlJson(["aws", "terminate", id, "--yes"], ws);
    expect(refused.doc).toMatchObject({ success: false, error: { code: "protected" } });
    const stopRefused = await runctlJson(["aws", "stop", id, "--yes"], ws);
    expect(stopRefused.doc).toMatchObject({ success: false, error: { code: "protected" } });
    const forced = await runctlJson(["aws", "terminate", id, "--yes", "--force"], ws);
    expect(forced.doc).toMatchObject({ success: true, dryRun: false });
    await ec2.cloud.waitForState(id, "terminated");
  });

  it("exits 2 with auth, naming the credential source, when EC2 refuses the key", async () => {
    const bad = await runctlJson(["aws", "list"], {
      ...ws,
      env: { ...ws.env, AWS_SECRET_ACCESS_KEY: "wrong" },
    });
    expect(bad.code).toBe(2);
    expect(bad.doc).toMatchObject({ success: false, error: { code: "auth" } });
    expect(JSON.stringify(bad.doc)).toContain("AWS_ACCESS_KEY_ID");
  });
});
