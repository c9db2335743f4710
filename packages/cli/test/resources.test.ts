import type { ProviderInfo, Resource } from "@runctl/core";
import { describe, expect, it } from "vitest";
import { row, stopPlan, summarise } from "../src/resources.ts";

const now = new Date("2026-01-01T12:00:00Z");
const resource = (over: Partial<Resource>): Resource => ({
  provider: "aws",
  id: "i-1",
  state: "running",
  instanceType: "g5.xlarge",
  market: "on-demand",
  tags: { CreatedBy: "runctl" },
  pricePerHour: 1,
  launchedAt: "2026-01-01T10:00:00Z",
  ...over,
});
const info = (name: string, stopStart: boolean): ProviderInfo => ({
  name,
  description: name,
  capabilities: { spot: false, stopStart, gpuTypes: [], regions: [], interruptions: false },
});

describe("resources", () => {
  it("prices what runs by its uptime and leaves stopped ones unpriced", () => {
    expect(row(resource({}), now)).toMatchObject({ uptimeHours: 2, costSoFar: 2 });
    expect(row(resource({ state: "stopped" }), now)).toMatchObject({ uptimeHours: null, costSoFar: null });
    expect(row(resource({ pricePerHour: null }), now)).toMatchObject({ uptimeHours: 2, costSoFar: null });
  });

  it("sums burn per provider and counts what it cannot price", () => {
    const rows = [
      resource({ id: "a", pricePerHour: 0.5 }),
      resource({ id: "b", pricePerHour: null }),
      resource({ id: "c", state: "stopped" }),
      resource({ id: "d", provider: "local", pricePerHour: 0 }),
    ].map((r) => row(r, now));
    expect(summarise(rows)).toEqual([
      {
        provider: "aws",
        total: 3,
        byState: { running: 2, stopped: 1 },
        burnPerHour: 0.5,
        unpriced: 1,
        costSoFar: 1,
      },
      { provider: "local", total: 1, byState: { running: 1 }, burnPerHour: 0, unpriced: 0, costSoFar: 0 },
    ]);
  });

  it("plans to stop only running, runctl-launched, unprotected resources of providers that can stop", () => {
    const rows = [
      resource({ id: "stop-me" }),
      resource({ id: "protected", tags: { CreatedBy: "runctl", "runctl:protected": "true" } }),
      resource({ id: "foreign", tags: {} }),
      resource({ id: "stopped", state: "stopped" }),
      resource({ id: "run-1", provider: "local" }),
    ].map((r) => row(r, now));
    const plan = stopPlan(rows, [info("aws", true), info("local", false)]);
    expect(plan.stop.map((r) => r.id)).toEqual(["stop-me"]);
    expect(plan.skipped.map((s) => [s.resource.id, s.reason])).toEqual([
      ["protected", "tagged runctl:protected"],
      ["foreign", "not launched by runctl"],
      ["run-1", "local cannot stop and start"],
    ]);
  });
});
