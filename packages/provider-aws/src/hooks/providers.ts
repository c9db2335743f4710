/**
 * The `runctl:providers` hook of this first-party plugin: registers `aws` exactly as a
 * third-party plugin registers its provider. The SDK is imported in `create`, never here, so
 * `runctl --help` does not load it.
 */
import type { ProviderDefinition } from "@runctl/core";
import { AWS_CAPABILITIES, AwsConfig, AwsLaunchOptions } from "../aws-options.ts";

export const awsDefinition: ProviderDefinition<AwsConfig> = {
  name: "aws",
  description: "AWS EC2: spot or on-demand instances, tagged, with capacity fallback",
  capabilities: AWS_CAPABILITIES,
  configSchema: AwsConfig,
  launchOptionsSchema: AwsLaunchOptions,
  async create(config, context) {
    const [{ AwsProvider, resolveRegion }, { stepPrinter }] = await Promise.all([
      import("../aws-provider.ts"),
      import("../step-report.ts"),
    ]);
    return new AwsProvider({
      config,
      env: context.env,
      region: await resolveRegion(config, context.env),
      onLaunchStep: stepPrinter((line) => process.stderr.write(`${line}\n`)),
    });
  },
};

export default async function providers(): Promise<ProviderDefinition[]> {
  return [awsDefinition];
}
