// The RunPod GraphQL emulator on the wire, with plain fetch: auth by Bearer header and by
// ?api_key=, GraphQL error shapes (validation, RunPod's capacity message, injected faults,
// HTTP statuses), and a pod's lifecycle (runtime null while starting, stop, resume, terminate)
// with the machine hook receiving the start arguments and env.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  NO_INSTANCES_MESSAGE,
  type PodMachineContext,
  type RunPodEmulator,
  startRunPodEmulator,
} from "../src/runpod-emulator.ts";

let rp: RunPodEmulator;
const booted: PodMachineContext[] = [];
const halted: string[] = [];

beforeAll(async () => {
  rp = await startRunPodEmulator({
    transitionMs: 5,
    machine: (pod) => {
      booted.push(pod);
      return { stop: () => void halted.push(pod.podId) };
    },
  });
});
afterAll(async () => {
  await rp?.stop();
});
beforeEach(() => rp.cloud.clearFaults());

interface GqlBody {
  data?: Record<string, unknown> | null;
  errors?: { message: string; path?: string[]; extensions?: { code?: string } }[];
}

async function gql(
  query: string,
  variables: Record<string, unknown> = {},
  auth: "bearer" | "query" | "none" | string = "bearer",
): Promise<{
  status: number;
  body: {
    data?: Record<string, unknown> | null;
    errors?: { message: string; path?: string[]; extensions?: { code?: string } }[];
  };
}> {
  const url = new URL(rp.url);
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (auth === "bearer") headers.authorization = `Bearer ${rp.apiKey}`;
  else if (auth === "query") url.searchParams.set("api_key", rp.apiKey);
  else if (auth !== "none") headers.authorization = `Bearer ${auth}`;
  const res = await fetch(url, { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  return { status: res.status, body: (await res.json()) as GqlBody };
}

const DEPLOY = `mutation D($input: PodFindAndDeployOnDemandInput!) {
  podFindAndDeployOnDemand(input: $input) { id name desiredStatus podType costPerHr env runtime { uptimeInSeconds } machine { gpuDisplayName } }
}`;
const POD =
  "query P($podId: String!) { pod(input: { podId: $podId }) { id desiredStatus runtime { uptimeInSeconds } } }";

async function waitRuntime(id: string, present: boolean): Promise<void> {
  for (;;) {
    const { body } = await gql(POD, { podId: id });
    const pod = body.data?.pod as { runtime: unknown } | null;
    if ((pod?.runtime != null) === present) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("runpod emulator: auth", () => {
  it("accepts the key as a Bearer header and as ?api_key=, refuses a wrong or missing key with 401", async () => {
    const query = "{ myself { id } }";
    expect((await gql(query, {}, "bearer")).body.data).toEqual({ myself: { id: "user_emulator" } });
    expect((await gql(query, {}, "query")).body.data).toEqual({ myself: { id: "user_emulator" } });
    for (const auth of ["none", "rpa_WRONG"]) {
      const { status, body } = await gql(query, {}, auth);
      expect(status).toBe(401);
      expect(body.errors?.[0]?.message).toMatch(/api key/i);
      expect(body.data).toBeUndefined();
    }
  });
});

describe("runpod emulator: errors", () => {
  it("refuses a field the schema lacks with a 400 validation error", async () => {
    const { status, body } = await gql("{ gpuTypes { id noSuchField } }");
    expect(status).toBe(400);
    expect(body.errors?.[0]).toMatchObject({ extensions: { code: "GRAPHQL_VALIDATION_FAILED" } });
    expect(body.errors?.[0]?.message).toMatch(/noSuchField/);
  });

  it("answers a capacity refusal as a GraphQL error with RunPod's message and a null field", async () => {
    rp.cloud.refuseCapacity({ gpuTypeId: "NVIDIA RTX A6000" });
    const { status, body } = await gql(DEPLOY, {
      input: { gpuTypeId: "NVIDIA RTX A6000", cloudType: "ALL", gpuCount: 1, name: "x", imageName: "img" },
    });
    expect(status).toBe(200);
    expect(body.data).toEqual({ podFindAndDeployOnDemand: null });
    expect(body.errors?.[0]).toMatchObject({
      message: NO_INSTANCES_MESSAGE,
      path: ["podFindAndDeployOnDemand"],
    });
    expect(rp.cloud.pods.size).toBe(0);
  });

  it("fails the next N calls of a field as injected, in-process and over HTTP, then recovers", async () => {
    rp.cloud.failNext({ field: "myself", message: "Something broke", times: 2 });
    expect((await gql("{ myself { id } }")).body.errors?.[0]?.message).toBe("Something broke");
    expect((await gql("{ myself { id } }")).body.errors?.[0]?.message).toBe("Something broke");
    expect((await gql("{ myself { id } }")).body.data).toEqual({ myself: { id: "user_emulator" } });
    const admin = new URL("/__emulator/faults", rp.url);
    const set = await fetch(admin, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ errors: [{ field: "gpuTypes", status: 503, message: "Service Unavailable" }] }),
    });
    expect(set.status).toBe(200);
    const failed = await gql("{ gpuTypes { id } }");
    expect(failed.status).toBe(503);
    expect(failed.body.errors?.[0]?.message).toBe("Service Unavailable");
    expect((await gql("{ gpuTypes { id } }")).status).toBe(200);
  });
});

describe("runpod emulator: pod lifecycle", () => {
  it("runtime is null while starting; stop, resume and terminate; the machine gets dockerArgs and env", async () => {
    const { body } = await gql(DEPLOY, {
      input: {
        gpuTypeId: "NVIDIA GeForce RTX 4090",
        cloudType: "SECURE",
        gpuCount: 2,
        name: "runctl-life",
        imageName: "runpod/pytorch:test",
        dockerArgs: "bash -c 'echo hi'",
        env: [{ key: "RUNCTL_MANAGED", value: "1" }],
      },
    });
    const pod = body.data?.podFindAndDeployOnDemand as Record<string, unknown>;
    expect(pod).toMatchObject({
      name: "runctl-life",
      desiredStatus: "RUNNING",
      podType: "RESERVED",
      costPerHr: 1.38,
      runtime: null,
      env: ["RUNCTL_MANAGED=1"],
      machine: { gpuDisplayName: "RTX 4090" },
    });
    const id = pod.id as string;
    await waitRuntime(id, true);
    expect(booted.find((b) => b.podId === id)).toMatchObject({
      dockerArgs: "bash -c 'echo hi'",
      gpuCount: 2,
      env: { RUNCTL_MANAGED: "1", RUNPOD_POD_ID: id },
    });
    const stopped = await gql(
      "mutation S($podId: String!) { podStop(input: { podId: $podId }) { desiredStatus runtime { uptimeInSeconds } } }",
      { podId: id },
    );
    expect(stopped.body.data).toEqual({ podStop: { desiredStatus: "EXITED", runtime: null } });
    await expect.poll(() => halted.includes(id)).toBe(true);
    const resumed = await gql(
      "mutation R($podId: String!) { podResume(input: { podId: $podId, gpuCount: 2 }) { desiredStatus } }",
      { podId: id },
    );
    expect(resumed.body.data).toEqual({ podResume: { desiredStatus: "RUNNING" } });
    await waitRuntime(id, true);
    const ended = await gql("mutation T($podId: String!) { podTerminate(input: { podId: $podId }) }", {
      podId: id,
    });
    expect(ended.body).toEqual({ data: { podTerminate: null } });
    expect((await gql(POD, { podId: id })).body.data).toEqual({ pod: null });
  });

  it("an interruptible pod under the minimum bid is refused; lowestPrice follows injected capacity", async () => {
    const rent = `mutation R($input: PodRentInterruptableInput!) { podRentInterruptable(input: $input) { id podType costPerHr } }`;
    const low = await gql(rent, {
      input: { gpuTypeId: "NVIDIA RTX A6000", cloudType: "SECURE", bidPerGpu: 0.01 },
    });
    expect(low.body.errors?.[0]?.message).toMatch(/no longer any instances available/);
    const ok = await gql(rent, {
      input: { gpuTypeId: "NVIDIA RTX A6000", cloudType: "SECURE", bidPerGpu: 0.5 },
    });
    expect(ok.body.data?.podRentInterruptable).toMatchObject({ podType: "INTERRUPTABLE", costPerHr: 0.5 });
    const prices = `query G($n: Int!) { gpuTypes(input: { id: "NVIDIA RTX A6000" }) { id
      s: lowestPrice(input: { gpuCount: $n, secureCloud: true }) { minimumBidPrice uninterruptablePrice }
      c: lowestPrice(input: { gpuCount: $n, secureCloud: false }) { minimumBidPrice uninterruptablePrice } } }`;
    expect((await gql(prices, { n: 1 })).body.data?.gpuTypes).toEqual([
      {
        id: "NVIDIA RTX A6000",
        s: { minimumBidPrice: 0.45, uninterruptablePrice: 0.79 },
        c: { minimumBidPrice: 0.25, uninterruptablePrice: 0.49 },
      },
    ]);
    rp.cloud.refuseCapacity({ gpuTypeId: "NVIDIA RTX A6000", cloud: "SECURE" });
    expect((await gql(prices, { n: 1 })).body.data?.gpuTypes).toEqual([
      {
        id: "NVIDIA RTX A6000",
        s: { minimumBidPrice: null, uninterruptablePrice: null },
        c: { minimumBidPrice: 0.25, uninterruptablePrice: 0.49 },
      },
    ]);
    const rented = ok.body.data?.podRentInterruptable as { id: string };
    const id = rented.id;
    await gql("mutation T($podId: String!) { podTerminate(input: { podId: $podId }) }", { podId: id });
  });
});
