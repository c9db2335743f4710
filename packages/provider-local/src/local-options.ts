/**
 * What the local provider is and takes, without what it runs: the provider
 * hook imports this when the CLI starts, so it must stay light.
 */
import { natsSectionSchema, type ProviderCapabilities } from "@runctl/core";
import { z } from "zod";

export const LOCAL_CAPABILITIES: ProviderCapabilities = {
  spot: false,
  stopStart: false,
  gpuTypes: [],
  regions: ["local"],
  interruptions: false,
};

/** `LaunchSpec.providerOptions` of the local provider: what `runctl local` says besides the command. */
export const LocalLaunchOptions = z.strictObject({
  /** Working directory of the ranks (default: the provider's). */
  cwd: z.string().min(1).optional(),
  nprocPerNode: z.number().int().min(1).max(256).default(1),
  /** `CUDA_VISIBLE_DEVICES`, e.g. "0,1". */
  gpus: z.string().optional(),
  /** Interpreter for a `.py` target (`--python`). */
  python: z.string().min(1).optional(),
  /** Run the target as given, choosing no interpreter (`runctl exec`). */
  raw: z.boolean().default(false),
  name: z.string().min(1).optional(),
  /** The run's own labels (`--tag`); `LaunchSpec.tags` are the resource's. */
  runTags: z.array(z.string()).default([]),
  config: z.record(z.string(), z.unknown()).optional(),
  resume: z.strictObject({ from: z.string().min(1), passArg: z.boolean().default(false) }).optional(),
  /** Checkpoint directory; `{run}` in it becomes the run id. Default: `local.checkpoint_dir`. */
  checkpointDir: z.string().min(1).optional(),
  /** Add an attempt to the existing run `LaunchSpec.runId`. */
  continueRun: z.boolean().default(false),
  graceMs: z.number().int().nonnegative().optional(),
  /** Runtime control over NATS (the `[nats]` section, `--nats` applied). */
  nats: natsSectionSchema.optional(),
  /**
   * A foreground run: the agent writes the ranks' output to this process's
   * stdout and stderr (`"stderr"`: both to stderr, for `--json`; `"quiet"`:
   * nowhere but output.log) and stops the run if this process dies.
   */
  attach: z.enum(["stdout", "stderr", "quiet"]).optional(),
});
export type LocalLaunchOptions = z.input<typeof LocalLaunchOptions>;
