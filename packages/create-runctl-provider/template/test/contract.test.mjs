// runctl's provider contract suite (@runctl/core/testing) against the built provider, as runctl's
// registry hands it out. `npm run build` first. Point a real provider at a sandbox account or an
// emulator here: the suite launches, stops, starts and terminates a few small machines and
// terminates what it launched even when a case fails.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ProviderRegistry } from "@runctl/core";
import { runProviderContract } from "@runctl/core/testing";
import providers from "../dist/hooks/providers.js";

test("the __NAME__ provider passes runctl's provider contract", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "runctl-provider-__NAME__-"));
  try {
    const registry = new ProviderRegistry();
    for (const definition of await providers())
      registry.register(definition, { plugin: "runctl-provider-__NAME__" });
    const results = await runProviderContract(() => registry.create("__NAME__", {}, { env: {}, dataDir }), {
      launchSpec: { instanceType: "small" },
      settleTimeoutMs: 5_000,
      pollMs: 20,
    });
    for (const r of results)
      process.stdout.write(`${r.ok ? "ok  " : "FAIL"} ${r.name}${r.ok ? "" : `: ${r.error}`}\n`);
    assert.deepEqual(
      results.filter((r) => !r.ok).map((r) => r.name),
      [],
    );
    assert.ok(results.length >= 8, `only ${results.length} contract cases ran`);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
