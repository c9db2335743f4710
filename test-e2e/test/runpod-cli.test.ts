// `runctl runpod …` as a user runs it (the built CLI, provider-runpod loaded as a plugin) against
// the RunPod emulator, configured only through RUNPOD_API_KEY and RUNCTL_RUNPOD_API_URL: dry
// runs create nothing, the fallback order is printed, terminate asks and honours protection, a
// wrong key exits 2 without showing itself, `resources` lists pods, `config show` hides the key.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runctl, runctlJson, type Workspace, workspace } from "../src/runctl-cli.ts";
import { type RunPodEmulator, startRunPodEmulator } from "../src/runpod-emulator.ts";

let rp: RunPodEmulator;
let ws: Workspace;

beforeAll(async () => {
  rp = await startRunPodEmulator({ transitionMs: 2 });
  ws = await workspace({ RUNPOD_API_KEY: rp.apiKey, RUNCTL_RUNPOD_API_URL: rp.url });
});
afterAll(async () => {
  await rp?.stop();
});

function podId(doc: unknown): string {
  return (doc as { placement: { resourceId: string } }).placement.resourceId;
}

describe("runctl runpod", () => {
  it("create --dry-run quotes and creates nothing; create prints the fallback it walks; list shows the pod", async () => {
    const dry = await runctlJson(["runpod", "create", "--gpu", "NVIDIA RTX A6000", "--dry-run"], ws);
    expect(dry.doc).toMatchObject({
      success: true,
      dryRun: true,
      quote: {
        instanceType: "NVIDIA RTX A6000",
        market: "on-demand",
        zone: "secure",
        pricePerHour: 0.79,
        available: true,
      },
    });
    expect(rp.cloud.pods.size).toBe(0);

    rp.cloud.refuseCapacity({ gpuTypeId: "NVIDIA RTX A6000" });
    const created = await runctlJson(
      [
        "runpod",
        "create",
        "--gpu",
        "RTX A6000",
        "--gpu",
        "RTX 4090",
        "--cloud",
        "community",
        "--name",
        "cli-one",
      ],
      ws,
    );
    rp.cloud.clearFaults();
    expect(created.code, created.stderr).toBe(0);
    const id = podId(created.doc);
    expect(rp.cloud.pods.get(id)).toMatchObject({
      gpuTypeId: "NVIDIA GeForce RTX 4090",
      cloud: "COMMUNITY",
      name: "runctl-cli-one",
    });
    expect(created.stderr).toContain(
      "runctl runpod: launch order: 1. NVIDIA RTX A6000 on-demand in the community cloud",
    );
    expect(created.stderr).toContain(
      "NVIDIA RTX A6000 on-demand in the secure cloud refused (capacity); trying NVIDIA GeForce RTX 4090 on-demand in the community cloud",
    );

    const listed = await runctlJson(["runpod", "list"], ws);
    expect((listed.doc as unknown as { resources: { id: string }[] }).resources.map((r) => r.id)).toEqual([
      id,
    ]);
    const everything = await runctlJson(["resources", "list"], ws);
    // No AWS credentials here: aws reports its failure beside the pods, which are listed.
    const inventory = everything.doc as unknown as {
      resources: { provider: string; id: string }[];
      failures: { provider: string }[];
    };
    expect(inventory.resources).toContainEqual(expect.objectContaining({ provider: "runpod", id }));
    expect(inventory.failures.map((f) => f.provider)).not.toContain("runpod");
  });

  it("asks before terminating, previews with --dry-run, and refuses a protected pod without --force", async () => {
    const created = await runctlJson(["runpod", "create", "--gpu", "RTX 4090", "--spot"], ws);
    const id = podId(created.doc);
    expect(rp.cloud.pods.get(id)?.podType).toBe("INTERRUPTABLE");
    const unasked = await runctlJson(["runpod", "terminate", id], ws);
    expect(unasked.doc).toMatchObject({ success: false, error: { code: "confirmation_required" } });
    const preview = await runctl(["runpod", "terminate", id, "--dry-run"], ws);
    expect(preview.stdout).toContain(`Would terminate ${id}`);
    expect(rp.cloud.pods.has(id)).toBe(true);

    const pod = rp.cloud.pods.get(id);
    if (pod) pod.env.RUNCTL_PROTECTED = "1";
    const refused = await runctlJson(["runpod", "terminate", id, "--yes"], ws);
    expect(refused.doc).toMatchObject({ success: false, error: { code: "protected" } });
    const forced = await runctlJson(["runpod", "terminate", id, "--yes", "--force"], ws);
    expect(forced.doc).toMatchObject({
      success: true,
      dryRun: false,
      resources: [{ id, state: "terminated" }],
    });
    expect(rp.cloud.pods.has(id)).toBe(false);
  });

  it("a wrong key exits 2 naming RUNPOD_API_KEY, and neither it nor config show print the key", async () => {
    const key = "rpa_WRONG_CLI_KEY_1234567890";
    const bad = await runctlJson(["runpod", "list"], { ...ws, env: { ...ws.env, RUNPOD_API_KEY: key } });
    expect(bad.code).toBe(2);
    expect(bad.doc).toMatchObject({ success: false, error: { code: "auth" } });
    expect(JSON.stringify(bad.doc)).toContain("RUNPOD_API_KEY");
    expect(bad.stdout + bad.stderr).not.toContain(key);
    const shown = await runctl(["config", "show", "--json"], {
      ...ws,
      env: { ...ws.env, RUNCTL_RUNPOD_API_KEY: key },
    });
    expect(shown.stdout).toContain('"api_key": "***"');
    expect(shown.stdout + shown.stderr).not.toContain(key);
  });
});
