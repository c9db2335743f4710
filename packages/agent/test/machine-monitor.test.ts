import type { Resource } from "@runctl/core";
import { describe, expect, it } from "vitest";
import { formatUptime, machineGone, machineStateLine, runCost } from "../src/mod.ts";

const resource = (over: Partial<Resource> = {}): Resource => ({
  provider: "aws",
  id: "i-0abc",
  state: "running",
  instanceType: "g5.xlarge",
  market: "spot",
  tags: {},
  pricePerHour: 0.5,
  launchedAt: "2026-01-01T00:00:00.000Z",
  ...over,
});

describe("runCost", () => {
  it("is the price times the run's hours, to its end when it ended", () => {
    const meta = { started_at: "2026-01-01T00:00:00.000Z", finished_at: "2026-01-01T01:30:00.000Z" };
    expect(runCost(2, meta, new Date("2026-01-01T05:00:00.000Z"))).toBe(3);
  });
  it("runs to now while the run is live, and is null without a start", () => {
    expect(
      runCost(1.2, { started_at: "2026-01-01T00:00:00.000Z" }, new Date("2026-01-01T00:30:00.000Z")),
    ).toBe(0.6);
    expect(runCost(1, { started_at: "" })).toBeNull();
  });
});

describe("the machine's line", () => {
  it("says state, type, market, $/h and uptime", () => {
    expect(machineStateLine(resource(), new Date("2026-01-01T01:02:03.000Z"))).toBe(
      "i-0abc  running  g5.xlarge  spot  $0.5000/h  up 1h02m",
    );
  });
  it("leaves uptime out for a machine that is off, and says when the price is unknown", () => {
    expect(machineStateLine(resource({ state: "stopped", pricePerHour: null }))).toBe(
      "i-0abc  stopped  g5.xlarge  spot  $?/h",
    );
    expect(machineGone(resource({ state: "terminated" }))).toBe(true);
    expect(machineGone(resource())).toBe(false);
  });
  it("formats uptimes", () => {
    expect(formatUptime(42)).toBe("42s");
    expect(formatUptime(185)).toBe("3m05s");
    expect(formatUptime(7260)).toBe("2h01m");
  });
});
