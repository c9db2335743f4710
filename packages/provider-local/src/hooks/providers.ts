/**
 * The `runctl:providers` hook of this first-party plugin: registers `local`.
 * Its configuration is core's `[local]` section.
 */
import { type LocalConfig, localSectionSchema, type ProviderDefinition } from "@runctl/core";
import { LOCAL_CAPABILITIES, LocalLaunchOptions } from "../local-options.ts";

const local: ProviderDefinition<LocalConfig> = {
  name: "local",
  description: "This machine: each run under the runctl agent",
  capabilities: LOCAL_CAPABILITIES,
  configSchema: localSectionSchema,
  launchOptionsSchema: LocalLaunchOptions,
  coreSection: true,
  async create(config, context) {
    const { createLocalProvider } = await import("../local-provider.ts");
    return createLocalProvider(config, context);
  },
};

export default async function providers(): Promise<ProviderDefinition[]> {
  return [local];
}
