import { Args, Flags } from "@oclif/core";
import { checkpointOrder, listCheckpoints } from "@runctl/agent/checkpoints";
import { formatBytes } from "@runctl/core";
import { RunctlCommand } from "../../command.ts";
import { table } from "../../output.ts";

export default class CheckpointList extends RunctlCommand {
  static override summary = "List checkpoint files in a directory, newest first.";
  static override description =
    "Finds .pt, .pth, .ckpt, .safetensors and .bin files under DIR (recursively; hidden directories and symlinks are skipped). The step is read from the name (`ckpt_000120.pt`, `epoch=3-step=1200.ckpt`, `checkpoint-500/`); files are ordered by step when every name has one, otherwise by modification time. DIR defaults to `local.checkpoint_dir`, relative to the project root.";
  static override examples = [
    "<%= config.bin %> checkpoint list",
    "<%= config.bin %> checkpoint list runs/baseline/checkpoints --limit 5",
    "<%= config.bin %> checkpoint list --json",
  ];
  static override args = {
    dir: Args.string({ description: "Checkpoint directory (default: `local.checkpoint_dir`)." }),
  };
  static override flags = {
    limit: Flags.integer({ description: "Show only the newest N.", min: 1 }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(CheckpointList);
    const dir = (await this.runPaths(args.dir)).checkpointDir;
    const all = await listCheckpoints(dir);
    const checkpoints = flags.limit === undefined ? all : all.slice(0, flags.limit);
    const sortedBy = checkpointOrder(all);
    if (all.length === 0) {
      this.log(`No checkpoints in ${dir}`);
    } else {
      this.log(
        table(
          ["STEP", "SIZE", "MODIFIED", "NAME"],
          checkpoints.map((c) => [
            c.step === null ? "-" : String(c.step),
            formatBytes(c.size),
            c.mtime,
            c.name,
          ]),
        ),
      );
      const shown =
        checkpoints.length < all.length ? `${checkpoints.length} of ${all.length}` : `${all.length}`;
      this.progress(`${shown} checkpoint(s) in ${dir}, newest first by ${sortedBy}`);
    }
    return { dir, sortedBy, total: all.length, checkpoints };
  }
}
