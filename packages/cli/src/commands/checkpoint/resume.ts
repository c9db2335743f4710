import { Args } from "@oclif/core";
import Local from "../local.ts";

export default class CheckpointResume extends Local {
  static override summary = "Start a training run that resumes from a checkpoint.";
  static override description =
    "The same as `runctl local --resume <checkpoint> <script>`: the script sees RUNCTL_RESUME_FROM (and `--resume <path>` with --resume-arg). Every `runctl local` flag applies.";
  static override examples = [
    "<%= config.bin %> checkpoint resume checkpoints/epoch_0004.ckpt train.py -- --epochs 10",
    "<%= config.bin %> checkpoint resume --nproc-per-node 2 --resume-arg checkpoints/ckpt_000200.pt train.py",
  ];
  static override strict = false;
  static override args = {
    checkpoint: Args.string({ description: "Checkpoint file to resume from.", required: true }),
    target: Args.string({ description: "Script (train.py) or command to run.", required: true }),
  };

  protected override launchArgs(positional: string[]) {
    const [checkpoint, target, ...scriptArgs] = positional;
    return { target: target as string, scriptArgs, resume: checkpoint };
  }
}
