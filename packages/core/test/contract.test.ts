// The provider contract suite, run against the third-party fixture provider the
// e2e tests publish (a real plugin's code, not a double of ours), and against
// deliberately broken variants of it to prove the suite catches violations.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: plain JS fixture without type declarations
import { createFixtureProvider } from "../../../test-e2e/fixtures/runctl-provider-fixture/lib/provider.js";
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
const options = { launchSpec: { instanceType: "small" }, settleTimeoutMs: 2000, pollMs: 10 };

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
});
