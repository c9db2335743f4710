/**
 * runctl runs this hook (event `runctl:providers`) when a command needs providers, never for
 * `--help` or `--version`. It returns definitions only: the provider (and your cloud's SDK) is
 * imported in `create`, so listing providers stays fast whatever is installed.
 */
import type { ProviderDefinition } from "@runctl/core";
import { z } from "zod";
import { capabilities } from "../capabilities.js";

/** The [__NAME__] section of .runctl.toml (and RUNCTL_<NAME>_<KEY> variables); strict, so typos are reported. */
export const configSchema = z.object({ region: z.string().optional() }).strict();
export type __CLASS__Config = z.infer<typeof configSchema>;

export const definition: ProviderDefinition<__CLASS__Config> = {
  name: "__NAME__",
  description: "Machines on __NAME__ (simulated until src/provider.ts calls its API)",
  capabilities,
  configSchema,
  async create(config, context) {
    const { __CLASS__Provider } = await import("../provider.js");
    return new __CLASS__Provider(config, context);
  },
};

export default async function providers(): Promise<ProviderDefinition<__CLASS__Config>[]> {
  return [definition];
}
