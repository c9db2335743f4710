/**
 * Collects providers from the `runctl:providers` hook of every installed
 * plugin. Only commands that need providers call this, so `--help` and
 * `--version` never import a plugin's hook (or the SDK behind it).
 */
import type { Config } from "@oclif/core";
import { PROVIDERS_HOOK, type ProviderDefinition, ProviderRegistry, toRunctlError } from "@runctl/core";

export interface ProviderLoad {
  registry: ProviderRegistry;
  failures: { plugin: string; message: string }[];
}

export async function loadProviders(config: Config): Promise<ProviderLoad> {
  const registry = new ProviderRegistry();
  const failures: ProviderLoad["failures"] = [];
  const result = await config.runHook(PROVIDERS_HOOK, {});
  for (const { plugin, result: value } of result.successes) {
    const definitions = (Array.isArray(value) ? value : [value]) as (ProviderDefinition | undefined)[];
    for (const definition of definitions) {
      if (!definition) continue;
      try {
        registry.register(definition, { plugin: plugin.name });
      } catch (error) {
        failures.push({ plugin: plugin.name, message: toRunctlError(error).message });
      }
    }
  }
  for (const { plugin, error } of result.failures) {
    failures.push({ plugin: plugin.name, message: error.message });
  }
  return { registry, failures };
}
