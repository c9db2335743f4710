/**
 * The flags every `runctl <cloud> train` shares, whatever the cloud: ranks, the idle stop of a
 * new machine, the store, the name and the dry run. A cloud adds its own (machine type, GPUs, bids).
 */
import { Flags } from "@oclif/core";

export function remoteTrainFlags(words: { cloud: string; machine: string }) {
  return {
    "nproc-per-node": Flags.integer({
      description: "Ranks to start (default: 1, or the GPUs of a new machine where the cloud says).",
      min: 1,
      max: 256,
    }),
    "idle-stop": Flags.integer({
      description: `Minutes without a run before a new ${words.machine} shuts itself down (0: right after the run).`,
      default: 30,
      min: 0,
    }),
    store: Flags.string({
      description: `Artifact store, s3://bucket/prefix (default: [${words.cloud}] store).`,
    }),
    name: Flags.string({ description: `Name of a new ${words.machine}.` }),
    resume: Flags.string({
      description:
        "Start from the newest checkpoint of an earlier run in the store (its id): one that was preempted, failed or stopped. The script reads it from RUNCTL_RESUME_FROM.",
    }),
    "resume-arg": Flags.boolean({
      description: "Also pass `--resume <path>` to the script.",
      dependsOn: ["resume"],
    }),
    "dry-run": Flags.boolean({
      description:
        "Build what would be sent (the bootstrap, the run); upload nothing, launch or send nothing.",
      default: false,
    }),
  };
}
