/**
 * `@runctl/core/testing`: the provider contract suite (and, beside it, the ArtifactStore
 * contract suite: `artifactStoreContractCases`). Any provider package,
 * first- or third-party, runs it against itself. It is runner-agnostic: it hands
 * back named async cases, so vitest, node:test or a plain script can drive it.
 *
 * ```ts
 * import { providerContractCases } from "@runctl/core/testing";
 * for (const c of providerContractCases(() => makeProvider(), { launchSpec: { instanceType: "small" } })) {
 *   it(c.name, c.run);
 * }
 * ```
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { hasErrorCode, isRunctlError } from "../errors.ts";
import {
  Interruption,
  type LaunchSpec,
  Placement,
  type Provider,
  ProviderCapabilities,
  Quote,
  Resource,
  type ResourceState,
} from "../provider.ts";
import { validatingProvider } from "../registry.ts";
import { type ContractCase, type ContractResult, runContractCases } from "./cases.ts";

export { type ContractCase, type ContractResult, runContractCases };

import { TAG_CREATED, TAG_CREATED_BY, TAG_CREATED_BY_VALUE, TAG_PROTECTED } from "../tags.ts";

export {
  type ArtifactStoreContractOptions,
  artifactStoreContractCases,
  runArtifactStoreContract,
} from "./artifact-store.ts";

export interface ContractOptions {
  /** A small, cheap spec the provider can launch several times. */
  launchSpec: LaunchSpec;
  /** How long to wait for a state change (ms). Default 30 s. */
  settleTimeoutMs?: number;
  /** Poll interval while waiting (ms). Default 100. */
  pollMs?: number;
  /**
   * A spot spec the provider's test environment refuses for lack of capacity
   * (an emulator's fault injection): launching it without fallback must fail
   * with `capacity`. Omit when the environment cannot refuse spot.
   */
  spotRefusedSpec?: LaunchSpec;
  /**
   * Makes a resource runctl did not create (no CreatedBy=runctl) and returns
   * its id, so the suite can check that `list()` leaves it out by default.
   * Without it the suite checks only what `list()` returns.
   */
  createUnmanaged?: () => Promise<string>;
  /** The provider definition's `launchOptionsSchema`, so `providerOptions` in specs are checked as the registry would. */
  launchOptionsSchema?: z.ZodType;
}

const MARK = "runctl:contract";

/**
 * The cases. `makeProvider` is called once per case so cases are independent;
 * each case terminates what it launched, even when it fails.
 */
export function providerContractCases(
  makeProvider: () => Promise<Provider>,
  options: ContractOptions,
): ContractCase[] {
  const timeout = options.settleTimeoutMs ?? 30_000;
  const pollMs = options.pollMs ?? 100;

  // Cleanup terminates what a case launched, and says so when it cannot:
  // a machine left running because a failure was swallowed keeps billing.
  const withProvider =
    (body: (p: Provider, launched: string[]) => Promise<void>) => async (): Promise<void> => {
      const provider = validatingProvider(await makeProvider(), options.launchOptionsSchema);
      const launched: string[] = [];
      let failure: unknown;
      try {
        await body(provider, launched);
      } catch (error) {
        failure = error;
      }
      const leaks: string[] = [];
      for (const id of launched) {
        try {
          await provider.terminate(id, { force: true });
        } catch (error) {
          if (!hasErrorCode(error, "not_found")) leaks.push(`${id}: ${(error as Error).message}`);
        }
      }
      if (leaks.length > 0) {
        const leak = new Error(`${provider.name}: terminate failed during cleanup (${leaks.join("; ")})`);
        throw failure === undefined ? leak : new AggregateError([failure, leak], leak.message);
      }
      if (failure !== undefined) throw failure;
    };

  const launch = async (p: Provider, launched: string[], extraTags: Record<string, string> = {}) => {
    const spec: LaunchSpec = {
      ...options.launchSpec,
      tags: { ...(options.launchSpec.tags ?? {}), [MARK]: "yes", ...extraTags },
    };
    const placement = await p.launch(spec);
    launched.push(placement.resourceId);
    return placement;
  };

  const waitForState = async (p: Provider, id: string, states: ResourceState[]): Promise<Resource> => {
    const deadline = Date.now() + timeout;
    let last = await p.status(id);
    while (!states.includes(last.state)) {
      if (Date.now() > deadline) {
        assert.fail(
          `${p.name}: resource ${id} is "${last.state}" after ${timeout} ms, expected ${states.join("|")}`,
        );
      }
      await new Promise((r) => setTimeout(r, pollMs));
      last = await p.status(id);
    }
    return last;
  };

  return [
    {
      name: "declares valid capabilities",
      run: async () => {
        const p = await makeProvider();
        assert.match(p.name, /^[a-z][a-z0-9-]*$/);
        ProviderCapabilities.parse(p.capabilities);
      },
    },
    {
      name: "launch returns a placement for this provider, tagged by runctl",
      run: withProvider(async (p, launched) => {
        const placement = Placement.parse(await launch(p, launched));
        assert.equal(placement.provider, p.name);
        const resource = await p.status(placement.resourceId);
        assert.equal(resource.id, placement.resourceId);
        assert.equal(resource.provider, p.name);
        assert.equal(
          resource.tags[TAG_CREATED_BY],
          TAG_CREATED_BY_VALUE,
          "launched resources carry CreatedBy=runctl",
        );
        assert.ok(resource.tags[TAG_CREATED], "launched resources carry runctl:created");
        assert.equal(resource.tags[MARK], "yes", "tags from the launch spec are kept");
        await waitForState(p, placement.resourceId, ["running"]);
      }),
    },
    {
      name: "list includes launched resources and honours tag filters",
      run: withProvider(async (p, launched) => {
        const { resourceId } = await launch(p, launched);
        const all = await p.list();
        z.array(Resource).parse(all);
        assert.ok(
          all.some((r) => r.id === resourceId),
          "list() includes the launched resource",
        );
        const tagged = await p.list({ tags: { [MARK]: "yes" } });
        assert.ok(tagged.some((r) => r.id === resourceId));
        const other = await p.list({ tags: { [MARK]: "no-such-value" } });
        assert.ok(!other.some((r) => r.id === resourceId), "a tag filter that does not match excludes it");
      }),
    },
    {
      name: "stop and start follow the declared capability",
      run: withProvider(async (p, launched) => {
        const { resourceId } = await launch(p, launched);
        await waitForState(p, resourceId, ["running"]);
        if (p.capabilities.stopStart) {
          await p.stop(resourceId);
          await waitForState(p, resourceId, ["stopped"]);
          await p.start(resourceId);
          await waitForState(p, resourceId, ["running"]);
        } else {
          await assert.rejects(p.stop(resourceId), (e: unknown) => hasErrorCode(e, "unsupported"));
          await assert.rejects(p.start(resourceId), (e: unknown) => hasErrorCode(e, "unsupported"));
          const still = await p.status(resourceId);
          assert.equal(still.state, "running", "a refused stop leaves the resource running");
        }
      }),
    },
    {
      name: "terminate refuses a runctl:protected resource unless forced",
      run: withProvider(async (p, launched) => {
        const { resourceId } = await launch(p, launched, { [TAG_PROTECTED]: "true" });
        await assert.rejects(
          p.terminate(resourceId),
          (e: unknown) => isRunctlError(e) && e.code === "protected",
        );
        const still = await p.status(resourceId);
        assert.notEqual(still.state, "terminated");
        await p.terminate(resourceId, { force: true });
        await waitForState(p, resourceId, ["terminated"]);
      }),
    },
    {
      name: "terminate ends a resource and list stops showing it as live",
      run: withProvider(async (p, launched) => {
        const { resourceId } = await launch(p, launched);
        await p.terminate(resourceId);
        await waitForState(p, resourceId, ["terminated"]);
        const live = await p.list({ states: ["pending", "running", "stopping", "stopped"] });
        assert.ok(!live.some((r) => r.id === resourceId));
      }),
    },
    {
      name: "unknown resource ids give a not_found error",
      run: withProvider(async (p) => {
        await assert.rejects(
          p.status("runctl-contract-does-not-exist"),
          (e: unknown) => isRunctlError(e) && e.code === "not_found",
        );
      }),
    },
    {
      name: "a spot launch without fallback never quietly runs on-demand",
      run: withProvider(async (p, launched) => {
        const spot: LaunchSpec = { ...options.launchSpec, market: "spot", spotFallback: false };
        try {
          const placement = await p.launch(spot);
          launched.push(placement.resourceId);
          assert.ok(p.capabilities.spot, "a provider without spot capability refuses market spot");
          assert.equal(placement.market, "spot", "a spot launch without fallback is spot or nothing");
        } catch (error) {
          if (error instanceof assert.AssertionError) throw error;
          const want = p.capabilities.spot ? ["capacity", "unsupported"] : ["unsupported"];
          assert.ok(hasErrorCode(error, ...want), `refused with ${want.join(" or ")}, got: ${String(error)}`);
        }
        if (options.spotRefusedSpec) {
          const refused = { ...options.spotRefusedSpec, market: "spot" as const, spotFallback: false };
          await assert.rejects(
            p.launch(refused).then((placement) => {
              launched.push(placement.resourceId);
              return placement;
            }),
            (e: unknown) => hasErrorCode(e, "capacity"),
            "spot refused by the provider fails with capacity",
          );
          const quote = await p.quote(refused);
          assert.equal(quote.available, false, "quote says a refused spot spec cannot be served");
          assert.equal(quote.unavailable?.code, "capacity");
        }
      }),
    },
    {
      name: "list shows only runctl-managed resources unless asked",
      run: withProvider(async (p, launched) => {
        const { resourceId } = await launch(p, launched);
        const unmanaged = options.createUnmanaged ? await options.createUnmanaged() : undefined;
        const managed = await p.list();
        for (const r of managed) {
          assert.equal(r.tags[TAG_CREATED_BY], TAG_CREATED_BY_VALUE, `list() by default shows ${r.id}`);
        }
        assert.ok(managed.some((r) => r.id === resourceId));
        if (unmanaged !== undefined) {
          assert.ok(!managed.some((r) => r.id === unmanaged), "list() leaves out what runctl did not create");
          const everything = await p.list({ managedOnly: false });
          assert.ok(
            everything.some((r) => r.id === unmanaged),
            "managedOnly: false shows it",
          );
        }
      }),
    },
    {
      name: "quote agrees with launch",
      run: withProvider(async (p, launched) => {
        const quote = Quote.parse(await p.quote(options.launchSpec));
        assert.equal(quote.provider, p.name);
        assert.equal(quote.available, true, "the contract's launch spec can be served");
        const placement = await launch(p, launched);
        assert.equal(placement.instanceType, quote.instanceType);
        assert.equal(placement.market, quote.market);
        assert.equal(placement.pricePerHour, quote.pricePerHour, "the quoted price is the price launched at");
      }),
    },
    {
      name: "interruptions answers with valid notices",
      run: withProvider(async (p, launched) => {
        const { resourceId } = await launch(p, launched);
        const notices = await p.interruptions([resourceId]);
        z.array(Interruption).parse(notices);
      }),
    },
  ];
}

/** Runs every case and reports, for plugins' own scripts and `runctl`'s e2e tests. */
export function runProviderContract(
  makeProvider: () => Promise<Provider>,
  options: ContractOptions,
): Promise<ContractResult[]> {
  return runContractCases(providerContractCases(makeProvider, options));
}
