import { describe, expect, it } from "vitest";
import { backoffDelay, withRetries } from "../src/backoff.ts";
import { ec2Error } from "../src/ec2-errors.ts";
import { clientToken, launchName, launchPlan, MAX_LAUNCH_STEPS } from "../src/launch-plan.ts";
import { onDemandPrice, shippedPriceTable } from "../src/price-table.ts";
import { stepPrinter, stepReport } from "../src/step-report.ts";

describe("launch plan", () => {
  it("tries other zones, then other types, then on-demand only when spot fallback is allowed", () => {
    const input = {
      instanceType: "g5.xlarge",
      fallbackTypes: ["g6.xlarge"],
      zones: ["a", "b"],
      market: "spot" as const,
    };
    expect(
      launchPlan({ ...input, spotFallback: false }).map((s) => `${s.instanceType}/${s.zone}/${s.market}`),
    ).toEqual(["g5.xlarge/a/spot", "g5.xlarge/b/spot", "g6.xlarge/a/spot", "g6.xlarge/b/spot"]);
    const withFallback = launchPlan({ ...input, spotFallback: true });
    expect(withFallback.length).toBe(8);
    expect(withFallback.slice(4).every((s) => s.market === "on-demand")).toBe(true);
    expect(
      launchPlan({ ...input, market: "on-demand", spotFallback: true }).every(
        (s) => s.market === "on-demand",
      ),
    ).toBe(true);
  });

  it("is bounded and never repeats a type", () => {
    const steps = launchPlan({
      instanceType: "a",
      fallbackTypes: ["a", "b", "c", "d", "e", "f", "g", "h"],
      zones: ["z1", "z2", "z3", "z4"],
      market: "spot",
      spotFallback: true,
    });
    expect(steps.length).toBe(MAX_LAUNCH_STEPS);
    expect(new Set(steps.map((s) => `${s.instanceType}/${s.zone}/${s.market}`)).size).toBe(steps.length);
  });

  it("names a launch by run and attempt so its client tokens repeat, and only then", () => {
    const step = { instanceType: "t3.micro", zone: "us-east-1a", market: "on-demand" as const };
    const name = launchName({ runId: "r1", attempt: 2 });
    expect(clientToken(name, step)).toBe(clientToken(launchName({ runId: "r1", attempt: 2 }), step));
    expect(clientToken(name, step)).not.toBe(clientToken(launchName({ runId: "r1", attempt: 3 }), step));
    expect(clientToken(name, step)).not.toBe(clientToken(name, { ...step, zone: "us-east-1b" }));
    expect(clientToken(undefined, step)).not.toBe(clientToken(undefined, step));
    expect(clientToken(name, step).length).toBeLessThanOrEqual(64);
    expect(launchName({}, "my-key")).toBe("key:my-key");
  });
});

describe("backoff", () => {
  it("stays under the cap and retries a bounded number of times", async () => {
    const policy = { attempts: 3, baseMs: 100, capMs: 250 };
    expect(backoffDelay(policy, 0, () => 0.999)).toBeLessThan(100);
    expect(backoffDelay(policy, 5, () => 0.999)).toBeLessThan(250);
    let calls = 0;
    await expect(
      withRetries(
        { attempts: 3, baseMs: 0, capMs: 0 },
        async () => {
          calls++;
          throw new Error("throttled");
        },
        () => true,
      ),
    ).rejects.toThrow("throttled");
    expect(calls).toBe(4);
    calls = 0;
    await expect(
      withRetries(
        { attempts: 3, baseMs: 0, capMs: 0 },
        async () => {
          calls++;
          throw new Error("fatal");
        },
        () => false,
      ),
    ).rejects.toThrow("fatal");
    expect(calls).toBe(1);
  });
});

describe("ec2 errors", () => {
  const sdk = (name: string) =>
    Object.assign(new Error(`${name} happened`), { name, $metadata: { httpStatusCode: 400 } });
  it.each([
    ["InsufficientInstanceCapacity", "capacity"],
    ["SpotMaxPriceTooLow", "capacity"],
    ["VcpuLimitExceeded", "quota"],
    ["RequestLimitExceeded", "throttled"],
    ["InvalidInstanceID.NotFound", "not_found"],
    ["InvalidInstanceID.Malformed", "not_found"],
    ["UnauthorizedOperation", "auth"],
    ["InvalidParameterValue", "invalid_spec"],
    ["UnsupportedOperation", "unsupported"],
    ["SomethingNew", "provider_failed"],
  ])("%s becomes %s", (name, code) => {
    const e = ec2Error(sdk(name), { doing: "launch" });
    expect(e.code).toBe(code);
    expect(e.hint).toBeTruthy();
    expect(e.details?.awsCode).toBe(name);
  });

  it("names the credential source of an auth failure, and exits 2", () => {
    const e = ec2Error(sdk("AuthFailure"), {
      doing: "list instances",
      credentialSource: "access key AKID from environment variables",
    });
    expect(e.message).toContain("access key AKID from environment variables");
    expect(e.exitCode).toBe(2);
  });
});

describe("prices and reports", () => {
  it("reads the shipped, dated on-demand table and knows what it lacks", () => {
    const table = shippedPriceTable();
    expect(table.date).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(onDemandPrice(table, "us-east-1", "g5.xlarge")).toBeGreaterThan(0);
    expect(onDemandPrice(table, "us-east-1", "z9.huge")).toBeNull();
    expect(onDemandPrice(table, "mars-north-1", "g5.xlarge")).toBeNull();
  });

  it("prints refusals with the next step and says when nothing is left", () => {
    const a = { instanceType: "g5.xlarge", zone: "us-east-1a", market: "spot" as const };
    const b = { ...a, zone: "us-east-1b" };
    expect(
      stepReport({ kind: "refused", step: a, code: "InsufficientInstanceCapacity", message: "", next: b }),
    ).toBe(
      "runctl aws: g5.xlarge (spot) in us-east-1a refused (InsufficientInstanceCapacity); trying g5.xlarge (spot) in us-east-1b",
    );
    expect(
      stepReport({
        kind: "refused",
        step: b,
        code: "InsufficientInstanceCapacity",
        message: "",
        next: undefined,
      }),
    ).toMatch(/nothing left to try$/);
    expect(stepReport({ kind: "launched", step: a, instanceId: "i-1", adopted: false })).toBeUndefined();
  });
});

describe("step printer", () => {
  it("prints nothing for a first-step launch and the order once at the first refusal", () => {
    const a = { instanceType: "g5.xlarge", zone: "us-east-1a", market: "spot" as const };
    const b = { ...a, zone: "us-east-1b" };
    const quiet: string[] = [];
    const p1 = stepPrinter((l) => quiet.push(l));
    p1({ kind: "plan", steps: [a, b] });
    p1({ kind: "launched", step: a, instanceId: "i-1", adopted: false });
    expect(quiet).toEqual([]);
    const lines: string[] = [];
    const p2 = stepPrinter((l) => lines.push(l));
    p2({ kind: "plan", steps: [a, b] });
    p2({ kind: "refused", step: a, code: "InsufficientInstanceCapacity", message: "", next: b });
    p2({ kind: "launched", step: b, instanceId: "i-2", adopted: false });
    expect(lines.length).toBe(2);
    expect(lines[0]).toMatch(
      /launch order: 1\. g5\.xlarge \(spot\) in us-east-1a, 2\. g5\.xlarge \(spot\) in us-east-1b$/,
    );
  });
});
