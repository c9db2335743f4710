/**
 * The `runctl:providers` hook of this first-party plugin: registers `runpod` exactly as a
 * third-party plugin registers its provider. The GraphQL client is imported in `create`, never
 * here, so `runctl --help` does not load it.
 */
import type { ProviderDefinition } from "@runctl/core";
import { RUNPOD_CAPABILITIES, RunpodConfig, RunpodLaunchOptions } from "../runpod-options.ts";

export const runpodDefinition: ProviderDefinition<RunpodConfig> = {
  name: "runpod",
  description: "RunPod GPU pods over the GraphQL API: on-demand or interruptible, with capacity fallback",
  capabilities: RUNPOD_CAPABILITIES,
  configSchema: RunpodConfig,
  launchOptionsSchema: RunpodLaunchOptions,
  async create(config, context) {
    const [{ RunpodProvider }, { stepPrinter }] = await Promise.all([
      import("../runpod-provider.ts"),
      import("../step-report.ts"),
    ]);
    return new RunpodProvider({
      config,
      env: context.env,
      onLaunchStep: stepPrinter((line) => process.stderr.write(`${line}\n`)),
    });
  },
};

export default async function providers(): Promise<ProviderDefinition[]> {
  return [runpodDefinition];
}
