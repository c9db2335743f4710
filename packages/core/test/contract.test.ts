// The provider contract suite, run against the third-party fixture provider the
// e2e tests publish (a real plugin's code, not a double of ours), and against
// deliberately broken variants of it to prove the suite catches violations.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  addUnmanagedResource,
  createFixtureProvider,
  // @ts-expect-error: plain JS fixture without type declarations
} from "../../../test-e2e/fixtures/runctl-provider-fixture/lib/provider.js";
import type { Provider } from "../src/mod.ts";
import { providerContractCases, runProviderContract } from "../src/testing/mod.ts";

let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "runctl-contract-"));
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const make = async (): Promise<Provider> => createFixtureProvider({}, { dataDir, env: {} }) as Provider;
const options = {
  launchSpec: { instanceType: "small" },
  settleTimeoutMs: 2000,
  pollMs: 10,
  spotRefusedSpec: { instanceType: "scarce" },
  createUnmanaged: async () => addUnmanagedResource(dataDir) as string,
};

describe("provider contract against the fixture provider", () => {
  for (const c of providerContractCases(make, options)) it(c.name, c.run);
});

describe("the contract suite fails providers that break the contract", () => {
  const broken = (patch: (p: Provider) => Partial<Provider>) => async (): Promise<Provider> => {
    const p = await make();
    return { ...p, ...patch(p) };
  };
  const failing = async (makeBroken: () => Promise<Provider>) =>
    (await runProviderContract(makeBroken, options)).filter((r) => !r.ok).map((r) => r.name);

  it("ignoring runctl:protected", async () => {
    const names = await failing(broken((p) => ({ terminate: (id) => p.terminate(id, { force: true }) })));
    expect(names).toEqual(["terminate refuses a runctl:protected resource unless forced"]);
  });

  it("ignoring tag filters", async () => {
    const names = await failing(broken((p) => ({ list: () => p.list() })));
    expect(names).toContain("list includes launched resources and honours tag filters");
  });

  it("answering with malformed resources", async () => {
    const names = await failing(
      broken((p) => ({ status: async (id) => ({ ...(await p.status(id)), state: "exploded" as never }) })),
    );
    expect(names).toContain("launch returns a placement for this provider, tagged by runctl");
  });

  it("throwing errors without the contract's codes", async () => {
    const names = await failing(
      broken(() => ({
        status: async () => {
          throw new Error("boom");
        },
      })),
    );
    expect(names).toContain("unknown resource ids give a not_found error");
  });

  it("launching on-demand when spot was asked for without fallback", async () => {
    const names = await failing(
      broken((p) => ({ launch: (spec) => p.launch({ ...spec, market: "on-demand" }) })),
    );
    expect(names).toContain("a spot launch without fallback never quietly runs on-demand");
  });

  it("refusing scarce spot with a code other than capacity", async () => {
    const names = await failing(
      broken((p) => ({
        launch: (spec) =>
          spec.instanceType === "scarce"
            ? Promise.reject(Object.assign(new Error("no"), { code: "launch_failed" }))
            : p.launch(spec),
      })),
    );
    expect(names).toEqual(["a spot launch without fallback never quietly runs on-demand"]);
  });

  it("listing unmanaged resources by default", async () => {
    const names = await failing(
      broken((p) => ({ list: (filter) => p.list({ ...filter, managedOnly: false }) })),
    );
    expect(names).toEqual(["list shows only runctl-managed resources unless asked"]);
  });

  it("a stop that is not refused when the capability is off", async () => {
    const names = await failing(
      broken((p) => ({
        capabilities: { ...p.capabilities, stopStart: false },
        stop: (id) => p.status(id),
        start: (id) => p.status(id),
      })),
    );
    expect(names).toContain("stop and start follow the declared capability");
  });

  it("quoting another price than it launches at", async () => {
    const names = await failing(
      broken((p) => ({
        quote: async (spec) => ({ ...(await p.quote(spec)), pricePerHour: 0.01 }),
      })),
    );
    expect(names).toEqual(["quote agrees with launch"]);
  });

  it("a terminate that fails during cleanup", async () => {
    const names = await failing(
      broken((p) => ({
        terminate: async (id, opts) => {
          if (opts?.force) throw Object.assign(new Error("API timeout"), { code: "throttled" });
          return p.terminate(id, opts);
        },
      })),
    );
    // Every case that launched something must report the leak, not pass.
    expect(names).toContain("launch returns a placement for this provider, tagged by runctl");
    expect(names).toContain("quote agrees with launch");
  });
});
