/**
 * The `runctl:providers` hook of this first-party plugin: registers `local`.
 * Its configuration is core's `[local]` section.
 */
import { homedir } from "node:os";
import { join } from "node:path";
import { localSectionSchema, type ProviderDefinition } from "@runctl/core";
import { LOCAL_CAPABILITIES } from "../local-provider.ts";

const local: ProviderDefinition = {
  name: "local",
  description: "This machine: runs under a detached supervisor",
  capabilities: LOCAL_CAPABILITIES,
  configSchema: localSectionSchema,
  coreSection: true,
  async create(config, context) {
    const { LocalProvider } = await import("../local-provider.ts");
    const { resolveRunsDir } = await import("@runctl/tracker");
    const section = config as { runs_dir?: string };
    return new LocalProvider({
      runsDir: resolveRunsDir({ env: context.env, configRunsDir: section.runs_dir, cwd: process.cwd() }),
      checkpointsRoot: join(context.dataDir || join(homedir(), ".local/share/runctl"), "local-checkpoints"),
      cwd: process.cwd(),
      env: context.env,
    });
  },
};

export default async function providers(): Promise<ProviderDefinition[]> {
  return [local];
}
