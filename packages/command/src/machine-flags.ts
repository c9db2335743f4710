/**
 * The flags of the commands that read a cloud machine's run (`<cloud> monitor|processes|logs`),
 * worded for the cloud and its machines.
 */
import { Flags } from "@oclif/core";

/** `--store`: where the machine's runs sync to, over the cloud's `[<cloud>] store`. */
export function machineStoreFlag(words: { cloud: string }) {
  return Flags.string({
    description: `Artifact store the run syncs to, s3://bucket/prefix (default: [${words.cloud}] store).`,
  });
}

export function monitorFlags(words: { cloud: string }) {
  return {
    follow: Flags.boolean({ char: "f", description: "Follow the run until it ends.", default: false }),
    tail: Flags.integer({
      char: "n",
      description: "Only the last N lines of what is there (without --follow).",
      min: 0,
    }),
    store: machineStoreFlag(words),
  };
}
