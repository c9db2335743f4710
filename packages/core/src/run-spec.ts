/**
 * The run spec: everything the agent needs to run one attempt of a run on the
 * machine it is on. A provider turns a `LaunchSpec` into one and starts the
 * agent with it (`runctl local`, `--detach`, `LocalProvider.launch`, queue jobs
 * and, through a bootstrap, cloud machines), so there is one launch path.
 *
 * It travels as JSON (stdin of a detached agent, a file fetched by a bootstrap)
 * and may carry connection secrets (a NATS token): the agent never writes it
 * into the run directory.
 */
import { z } from "zod";
import { natsSectionSchema } from "./config/schema.ts";
import { isSafeRunId } from "./run-id.ts";

export const RUN_SPEC_VERSION = 1;

export const RunControlSpec = z.discriminatedUnion("kind", [
  /** Commands reach the ranks through the node-local file queue only (`runctl ctl` on this machine). */
  z.strictObject({ kind: z.literal("file") }),
  /** Commands arrive over NATS and are bridged into the node-local queue (docs/protocol.md). */
  z.strictObject({ kind: z.literal("nats"), nats: natsSectionSchema }),
]);
export type RunControlSpec = z.infer<typeof RunControlSpec>;

export const RunSpec = z.strictObject({
  v: z.literal(RUN_SPEC_VERSION),
  runId: z.string().refine(isSafeRunId, "not a safe run id (letters, digits, . _ -; no ..)"),
  /** Add an attempt to the existing run `runId` instead of creating it. */
  continueRun: z.boolean().default(false),
  name: z.string().min(1).optional(),
  /** The run's own labels (meta.json `tags`). */
  tags: z.array(z.string()).default([]),
  /** Cloud-style tags of the resource it runs on (`runctl:protected`, `CreatedBy`, …). */
  resourceTags: z.record(z.string(), z.string()).default({}),
  config: z.record(z.string(), z.unknown()).optional(),
  /** The argv of every rank, interpreter resolved (`python3 train.py --lr 0.1`). */
  command: z.array(z.string()).min(1),
  /** `python` and `uv` runs get their package list captured with that interpreter. */
  commandKind: z.enum(["python", "uv", "executable"]).default("executable"),
  /** Working directory of the ranks. */
  cwd: z.string().min(1),
  runsDir: z.string().min(1),
  checkpointDir: z.string().min(1),
  nprocPerNode: z.number().int().min(1).max(256).default(1),
  /** `CUDA_VISIBLE_DEVICES` for every rank, e.g. "0,1". */
  gpus: z.string().optional(),
  /** Variables added to the agent's own environment for the ranks. */
  env: z.record(z.string(), z.string()).default({}),
  resume: z
    .strictObject({
      /** The checkpoint file: the ranks get it as RUNCTL_RESUME_FROM (and `--resume <from>` with passArg). */
      from: z.string().min(1),
      passArg: z.boolean().default(false),
      /** What meta.json records as `resumed_from` when not `from`: `<run>/<file>` of a checkpoint fetched from a store. */
      source: z.string().min(1).optional(),
    })
    .optional(),
  control: RunControlSpec.default({ kind: "file" }),
  /** SIGKILL this long after SIGINT/SIGTERM. */
  graceMs: z.number().int().nonnegative().default(10_000),
  /**
   * Echo the ranks' output on the agent's own stdout and stderr besides
   * output.log: a foreground run, whose agent writes to the user's terminal.
   */
  echo: z.boolean().default(false),
  /** Stop the run when the process that started the agent goes away (a foreground CLI killed hard). */
  stopWithParent: z.boolean().default(false),
});
export type RunSpec = z.output<typeof RunSpec>;
export type RunSpecInput = z.input<typeof RunSpec>;
