import { createInterface } from "node:readline/promises";
import { Args, Flags } from "@oclif/core";
import { type CleanupPlan, cleanupCheckpoints } from "@runctl/agent/checkpoints";
import { formatBytes, UserError } from "@runctl/core";
import { RunctlCommand } from "../../command.ts";

export default class CheckpointCleanup extends RunctlCommand {
  static override summary = "Delete all but the newest N checkpoints in a directory.";
  static override description =
    "Checkpoints are ordered as `runctl checkpoint list` orders them; a subdirectory (such as a Hugging Face `checkpoint-500/`) counts as one checkpoint. Only checkpoint files are deleted, symlinks are never followed, and a file rewritten after the plan was shown is left alone. Without --yes the plan is shown and confirmed on a terminal; without a terminal, pass --yes (or --dry-run to preview).";
  static override examples = [
    "<%= config.bin %> checkpoint cleanup --keep-last-n 3 --dry-run",
    "<%= config.bin %> checkpoint cleanup checkpoints/ --keep-last-n 3",
    "<%= config.bin %> checkpoint cleanup checkpoints/ --keep-last-n 1 --yes --json",
  ];
  static override args = {
    dir: Args.string({ description: "Checkpoint directory (default: `local.checkpoint_dir`)." }),
  };
  static override flags = {
    "keep-last-n": Flags.integer({
      description: "How many of the newest checkpoints to keep (1 or more).",
      required: true,
    }),
    "dry-run": Flags.boolean({ description: "Show what would be deleted; delete nothing.", default: false }),
    yes: Flags.boolean({ char: "y", description: "Delete without asking.", default: false }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(CheckpointCleanup);
    const dir = (await this.runPaths(args.dir)).checkpointDir;
    const result = await cleanupCheckpoints(dir, {
      keepLastN: flags["keep-last-n"],
      dryRun: flags["dry-run"],
      confirm: flags.yes ? undefined : (plan) => this.confirm(plan),
    });
    if (result.cancelled) {
      throw new UserError("Cleanup cancelled; nothing was deleted", {
        code: "cleanup_cancelled",
        hint: "Rerun with --dry-run to review the plan, or with --yes to delete without the question.",
      });
    }
    const verb = result.dryRun ? "Would delete" : "Deleted";
    for (const file of result.deleted) this.log(`${verb} ${file.name} (${formatBytes(file.size)})`);
    for (const skip of result.skipped) this.progress(`Skipped ${skip.path}: ${skip.reason}`);
    this.log(
      `${verb} ${result.deleted.length} file(s), ${formatBytes(result.freedBytes)}; kept ${result.kept.length} in ${result.dir}`,
    );
    return { cleanup: result };
  }

  /** Shows the plan and asks on the terminal; refuses outright when nobody can answer. */
  private async confirm(plan: CleanupPlan): Promise<boolean> {
    if (!process.stdin.isTTY) {
      throw new UserError(
        `Refusing to delete ${plan.delete.length} checkpoint file(s) without confirmation: stdin is not a terminal`,
        {
          code: "confirmation_required",
          hint: "Pass --yes to delete, or --dry-run to see what would be deleted.",
          details: { dir: plan.dir, files: plan.delete.length, bytes: plan.bytes },
        },
      );
    }
    // The plan and question go to stderr so that stdout stays clean for --json.
    for (const file of plan.delete) this.progress(`  delete ${file.name} (${formatBytes(file.size)})`);
    for (const file of plan.keep) this.progress(`  keep   ${file.name}`);
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    // Ctrl-C or Ctrl-D at the question means no; without this the question would wait forever.
    const unanswered = new AbortController();
    rl.on("SIGINT", () => unanswered.abort());
    rl.on("close", () => unanswered.abort());
    try {
      const answer = await rl.question(
        `Delete ${plan.delete.length} file(s), ${formatBytes(plan.bytes)}, from ${plan.dir}? [y/N] `,
        { signal: unanswered.signal },
      );
      return /^y(es)?$/i.test(answer.trim());
    } catch (error) {
      if (unanswered.signal.aborted) {
        this.progress("");
        return false;
      }
      throw error;
    } finally {
      rl.close();
    }
  }
}
