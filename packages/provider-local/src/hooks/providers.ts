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
    const [{ LocalProvider }, { resolveRunsDir }, { resolveCheckpointDir }] = await Promise.all([
      import("../local-provider.ts"),
      import("@runctl/tracker"),
      import("@runctl/agent/checkpoints"),
    ]);
    const cwd = context.cwd ?? process.cwd();
    const projectRoot = context.projectRoot ?? cwd;
    return new LocalProvider({
      runsDir: resolveRunsDir({ env: context.env, configRunsDir: config.runs_dir, projectRoot, cwd }),
      checkpointDir: resolveCheckpointDir({ cwd, configDir: config.checkpoint_dir, projectRoot }),
      cwd,
      env: context.env,
      configPython: config.python,
    });
  },
};

export default async function providers(): Promise<ProviderDefinition[]> {
  return [local];
}
