// provider-runpod against the RunPod GraphQL emulator, through graphql-request: the provider
// contract suite, the fallback order across GPU types and clouds, capacity with nothing left,
// ownership labels and runctl:protected, quotes from gpuTypes, auth errors that never show the
// key, and hostile names that stay variables.
import { hasErrorCode, isRunctlError, type Provider, ProviderRegistry, redactConfig } from "@runctl/core";
import { providerContractCases } from "@runctl/core/testing";
import {
  type LaunchStepEvent,
  RunpodConfig,
  type RunpodConfigInput,
  RunpodLaunchOptions,
  RunpodProvider,
  runpodDefinition,
  stepReport,
} from "@runctl/provider-runpod";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { NO_INSTANCES_MESSAGE, type RunPodEmulator, startRunPodEmulator } from "../src/runpod-emulator.ts";

let rp: RunPodEmulator;

function provider(
  events: LaunchStepEvent[] = [],
  config: RunpodConfigInput = {},
  key?: string,
): RunpodProvider {
  return new RunpodProvider({
    config: RunpodConfig.parse({ api_url: rp.url, ...config }),
    env: { RUNPOD_API_KEY: key ?? rp.apiKey, USER: "tester" },
    onLaunchStep: (e) => events.push(e),
  });
}

beforeAll(async () => {
  rp = await startRunPodEmulator({ transitionMs: 2 });
});
afterAll(async () => {
  await rp?.stop();
});
beforeEach(() => rp.cloud.clearFaults());

describe("provider-runpod: the contract suite", () => {
  const registry = new ProviderRegistry();
  registry.register(runpodDefinition, { plugin: "@runctl/provider-runpod" });
  const make = (): Promise<Provider> =>
    registry.create(
      "runpod",
      { api_url: rp.url },
      { env: { RUNPOD_API_KEY: rp.apiKey }, dataDir: "/nonexistent" },
    );
  const cases = providerContractCases(make, {
    launchSpec: { instanceType: "NVIDIA RTX A6000" },
    spotRefusedSpec: { instanceType: "NVIDIA RTX A6000", market: "spot", maxPricePerHour: 0.0001 },
    settleTimeoutMs: 10_000,
    pollMs: 5,
    launchOptionsSchema: RunpodLaunchOptions,
    createUnmanaged: async () => {
      // A pod made by hand in the console: no runctl prefix, no labels.
      const res = await fetch(rp.url, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${rp.apiKey}` },
        body: JSON.stringify({
          query:
            "mutation M($input: PodFindAndDeployOnDemandInput!) { podFindAndDeployOnDemand(input: $input) { id } }",
          variables: { input: { gpuTypeId: "NVIDIA RTX A6000", cloudType: "ALL", name: "my-notebook" } },
        }),
      });
      const body = (await res.json()) as { data: { podFindAndDeployOnDemand: { id: string } } };
      return body.data.podFindAndDeployOnDemand.id;
    },
  });
  for (const c of cases) it(c.name, c.run);
});

describe("provider-runpod: launch", () => {
  it("creates what it says: name prefix, labels, image, disks, the bootstrap as start arguments", async () => {
    const p = provider();
    const bootstrap = "#!/bin/sh\necho 'it''s' \"$HOME\"\nexec runctl-agent\n";
    const placement = await p.launch({
      instanceType: "RTX 4090",
      gpuCount: 2,
      diskGb: 80,
      runId: "run-labels",
      bootstrap,
      env: { RUNCTL_RUN_ID: "run-labels" },
      tags: { "runctl:project": "vision", "runctl:protected": "true" },
      providerOptions: { volumeGb: 20 },
    });
    expect(placement).toMatchObject({
      provider: "runpod",
      instanceType: "NVIDIA GeForce RTX 4090",
      market: "on-demand",
      pricePerHour: 1.38,
    });
    const pod = rp.cloud.pods.get(placement.resourceId);
    expect(pod).toMatchObject({
      name: "runctl-run-labels",
      gpuCount: 2,
      cloud: "SECURE",
      imageName: "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04",
      containerDiskInGb: 80,
      volumeInGb: 20,
    });
    expect(pod?.env).toMatchObject({
      RUNCTL_MANAGED: "1",
      RUNCTL_PROTECTED: "1",
      RUNCTL_RUN_ID: "run-labels",
    });
    // The container runs `bash -c <bootstrap>`: a shell reading the quoted argument gets it back.
    const { execFileSync } = await import("node:child_process");
    const echoed = execFileSync("/bin/sh", ["-c", `printf %s ${pod?.dockerArgs.replace(/^bash -c /, "")}`]);
    expect(echoed.toString()).toBe(bootstrap);
    const r = await p.status(placement.resourceId);
    expect(r.tags).toMatchObject({
      CreatedBy: "runctl",
      "runctl:project": "vision",
      "runctl:user": "tester",
      "runctl:run-id": "run-labels",
      "runctl:protected": "true",
    });
    expect(["pending", "running"]).toContain(r.state);
    await expect(p.terminate(placement.resourceId)).rejects.toSatisfy((e) => hasErrorCode(e, "protected"));
    expect(rp.cloud.pods.has(placement.resourceId)).toBe(true);
    expect((await p.terminate(placement.resourceId, { force: true })).state).toBe("terminated");
    expect(rp.cloud.pods.has(placement.resourceId)).toBe(false);
  });

  it("refuses a long-lived secret in the launch env before creating anything", async () => {
    const before = rp.cloud.pods.size;
    await expect(
      provider().launch({ instanceType: "RTX A6000", env: { RUNPOD_API_KEY: "rpa_x" } }),
    ).rejects.toSatisfy((e) => hasErrorCode(e, "invalid_spec"));
    await expect(
      provider().launch({ instanceType: "RTX A6000", env: { SOME: rp.apiKey } }),
    ).rejects.toSatisfy((e) => hasErrorCode(e, "invalid_spec"));
    expect(rp.cloud.pods.size).toBe(before);
  });

  it("follows the fallback order: each GPU type in the preferred cloud, then the other, reported per step", async () => {
    rp.cloud.refuseCapacity({ gpuTypeId: "NVIDIA RTX A6000" });
    rp.cloud.refuseCapacity({ gpuTypeId: "NVIDIA GeForce RTX 4090", cloud: "COMMUNITY" });
    const events: LaunchStepEvent[] = [];
    const p = provider(events, { cloud: "community" });
    const placement = await p.launch({
      instanceType: "RTX A6000",
      providerOptions: { gpuTypes: ["NVIDIA GeForce RTX 4090"] },
    });
    expect(placement).toMatchObject({ instanceType: "NVIDIA GeForce RTX 4090", pricePerHour: 0.69 });
    expect(rp.cloud.pods.get(placement.resourceId)?.cloud).toBe("SECURE");
    const tried = events
      .filter((e) => e.kind === "refused" || e.kind === "launched")
      .map((e) => `${e.kind} ${"step" in e ? `${e.step.gpuTypeId}/${e.step.cloud}` : ""}`);
    expect(tried).toEqual([
      "refused NVIDIA RTX A6000/community",
      "refused NVIDIA RTX A6000/secure",
      "refused NVIDIA GeForce RTX 4090/community",
      "launched NVIDIA GeForce RTX 4090/secure",
    ]);
    const lines = events.map(stepReport).filter((l) => l !== undefined);
    expect(lines[0]).toBe(
      "runctl runpod: launch order: 1. NVIDIA RTX A6000 on-demand in the community cloud, 2. NVIDIA RTX A6000 on-demand in the secure cloud, 3. NVIDIA GeForce RTX 4090 on-demand in the community cloud, 4. NVIDIA GeForce RTX 4090 on-demand in the secure cloud",
    );
    expect(lines[1]).toMatch(
      /^runctl runpod: NVIDIA RTX A6000 on-demand in the community cloud refused \(capacity\); trying/,
    );
    await p.terminate(placement.resourceId);
  });

  it("with nothing available fails with capacity, RunPod's message, and no pod left", async () => {
    rp.cloud.refuseCapacity({});
    const before = rp.cloud.pods.size;
    const error = await provider()
      .launch({ instanceType: "RTX A6000", providerOptions: { gpuTypes: ["RTX 4090"] } })
      .catch((e: unknown) => e);
    expect(hasErrorCode(error, "capacity")).toBe(true);
    expect((error as Error).message).toContain(NO_INSTANCES_MESSAGE);
    expect(rp.cloud.pods.size).toBe(before);
    const creates = rp.cloud.calls.slice(-4).map((c) => c.field);
    expect(creates).toEqual(Array(4).fill("podFindAndDeployOnDemand"));
  });

  it("a spot launch with no bid listed anywhere sends no create and never falls to on-demand", async () => {
    rp.cloud.refuseCapacity({ gpuTypeId: "NVIDIA RTX A6000", market: "spot" });
    const calls = rp.cloud.calls.length;
    const before = rp.cloud.pods.size;
    const error = await provider()
      .launch({ instanceType: "RTX A6000", market: "spot" })
      .catch((e: unknown) => e);
    expect(hasErrorCode(error, "capacity")).toBe(true);
    expect(rp.cloud.pods.size).toBe(before);
    expect(rp.cloud.calls.slice(calls).map((c) => c.field)).toEqual(["gpuTypes"]);
  });

  it("a spot pod bids the minimum by default, --bid when given; reclaimed it is stopped, and resumes with podBidResume", async () => {
    const p = provider();
    const quote = await p.quote({ instanceType: "RTX A6000", market: "spot" });
    expect(quote).toMatchObject({ available: true, market: "spot", pricePerHour: 0.45, zone: "secure" });
    const placed = await p.launch({
      instanceType: "RTX A6000",
      market: "spot",
      providerOptions: { bidPerGpu: 0.5 },
    });
    expect(placed).toMatchObject({ market: "spot", pricePerHour: 0.5 });
    expect(rp.cloud.pods.get(placed.resourceId)).toMatchObject({ podType: "INTERRUPTABLE", bidPerGpu: 0.5 });
    // Outbid: RunPod reclaims an interruptible pod by stopping it.
    rp.cloud.interrupt(placed.resourceId);
    expect((await p.status(placed.resourceId)).state).toBe("stopped");
    await p.start(placed.resourceId);
    expect(rp.cloud.calls.at(-1)).toMatchObject({
      field: "podBidResume",
      variables: { bidPerGpu: 0.5, gpuCount: 1 },
    });
    await p.terminate(placed.resourceId);
  });

  it("quotes from gpuTypes, per cloud and count, and says capacity when every step is refused", async () => {
    const p = provider();
    expect(await p.quote({ instanceType: "NVIDIA A100 80GB PCIe", gpuCount: 2 })).toMatchObject({
      available: true,
      market: "on-demand",
      zone: "secure",
      pricePerHour: 3.28,
    });
    rp.cloud.refuseCapacity({ gpuTypeId: "NVIDIA A100 80GB PCIe", cloud: "SECURE" });
    expect(await p.quote({ instanceType: "A100 80GB PCIe", gpuCount: 2 })).toMatchObject({
      available: true,
      zone: "community",
      pricePerHour: 2.38,
    });
    const none = await p.quote({ instanceType: "A100 80GB PCIe", providerOptions: { cloudFallback: false } });
    expect(none).toMatchObject({ available: false, unavailable: { code: "capacity" } });
    await expect(p.quote({ instanceType: "NVIDIA TPU v9" })).rejects.toSatisfy((e) =>
      hasErrorCode(e, "invalid_spec"),
    );
  });
});

describe("provider-runpod: the wire", () => {
  it("a wrong API key is auth (exit 2) naming RUNPOD_API_KEY and the config key, never the key itself", async () => {
    const key = "rpa_WRONGKEY_9f8e7d6c5b4a";
    const error = await provider([], {}, key)
      .list()
      .catch((e: unknown) => e);
    expect(isRunctlError(error) && error.code).toBe("auth");
    expect(isRunctlError(error) && error.exitCode).toBe(2);
    const text = JSON.stringify(isRunctlError(error) ? error.toEnvelope() : error);
    expect(text).toContain("RUNPOD_API_KEY");
    expect(text).toContain("[runpod] api_key");
    expect(text).not.toContain(key);
    expect(redactConfig({ runpod: { api_key: key, api_url: rp.url } })).toEqual({
      runpod: { api_key: "***", api_url: rp.url },
    });
  });

  it("no key at all is not_configured, so `runctl resources` passes over RunPod", async () => {
    const p = new RunpodProvider({ config: RunpodConfig.parse({ api_url: rp.url }), env: {} });
    await expect(p.list()).rejects.toSatisfy((e) => hasErrorCode(e, "not_configured"));
  });

  it("hostile GPU and pod names travel as variables: the query text never holds them", async () => {
    const p = provider();
    const hostile = 'RTX") { id } podTerminate(input: {podId: "x"}) { id } #';
    await expect(p.quote({ instanceType: hostile })).rejects.toSatisfy((e) =>
      hasErrorCode(e, "invalid_spec"),
    );
    await expect(p.status(hostile)).rejects.toSatisfy((e) => hasErrorCode(e, "not_found"));
    const call = rp.cloud.calls.at(-1);
    expect(call).toMatchObject({ field: "pod", variables: { podId: hostile } });
    expect(call?.query).not.toContain("podTerminate");
    const placed = await p.launch({ instanceType: "RTX A6000", env: { NOTE: hostile } });
    const deploy = rp.cloud.calls.at(-1);
    expect(deploy?.query).not.toContain(hostile);
    expect(rp.cloud.pods.get(placed.resourceId)?.env.NOTE).toBe(hostile);
    await p.terminate(placed.resourceId);
  });

  it("reads are asked again after a transient 5xx; mutations are not", async () => {
    rp.cloud.failNext({ field: "myself", status: 502, message: "Bad Gateway", times: 2 });
    expect(Array.isArray(await provider().list())).toBe(true);
    rp.cloud.failNext({ field: "podFindAndDeployOnDemand", status: 502, message: "Bad Gateway", times: 1 });
    const before = rp.cloud.pods.size;
    await expect(provider().launch({ instanceType: "RTX A6000" })).rejects.toSatisfy((e) =>
      hasErrorCode(e, "runpod_unavailable"),
    );
    expect(rp.cloud.pods.size).toBe(before);
  });
});
