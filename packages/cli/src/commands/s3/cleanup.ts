import { Args, Flags } from "@oclif/core";
import { formatBytes, UserError } from "@runctl/core";
import { applyS3Cleanup, CHECKPOINT_EXTENSIONS, parseS3Url, planS3Cleanup } from "@runctl/s3";
import { z } from "zod";
import { S3Command, s3ConnectionFlags } from "../../s3-command.ts";

export default class S3Cleanup extends S3Command {
  static override summary = "Delete all but the newest N checkpoints under an S3 prefix.";
  static override description =
    `A checkpoint is an object directly under the prefix ending in ${CHECKPOINT_EXTENSIONS.join(", ")}, or a "directory" (such as checkpoint-500/) holding at least one. Newest means the highest step number in the name when every checkpoint has one (upload order says little after a sync), else the latest upload. Other objects are never deleted. Without --yes the plan is shown and confirmed on a terminal; without a terminal, pass --yes (or --dry-run).`;
  static override examples = [
    "<%= config.bin %> s3 cleanup s3://my-bucket/ckpt/ --keep-last-n 3 --dry-run",
    "<%= config.bin %> s3 cleanup s3://my-bucket/ckpt/ --keep-last-n 1 --yes --json",
  ];
  static override args = {
    url: Args.string({ description: "s3://bucket/prefix holding the checkpoints.", required: true }),
  };
  static override flags = {
    "keep-last-n": Flags.integer({
      description: "How many of the newest checkpoints to keep (1 or more).",
      required: true,
    }),
    "dry-run": Flags.boolean({ description: "Show what would be deleted; delete nothing.", default: false }),
    yes: Flags.boolean({ char: "y", description: "Delete without asking.", default: false }),
    ...s3ConnectionFlags,
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(S3Cleanup);
    const keep = z.number().int().min(1).safeParse(flags["keep-last-n"]);
    if (!keep.success) {
      throw new UserError(`--keep-last-n must be 1 or more, not ${flags["keep-last-n"]}`, {
        code: "bad_usage",
        hint: "Keep at least the newest checkpoint, e.g. --keep-last-n 1; delete a whole prefix with `runctl s3 rm --recursive`.",
      });
    }
    const { client } = await this.s3Client(flags);
    const location = parseS3Url(args.url);
    const plan = await this.guard("cleanup", args.url, () => planS3Cleanup(client, location, keep.data));
    if (!flags["dry-run"] && !flags.yes && plan.delete.length > 0) {
      await this.confirmDeletion(
        `${plan.delete.length} checkpoint(s), ${formatBytes(plan.bytes)}, under ${args.url}`,
        [
          ...plan.delete.map((c) => `  delete ${c.name} (${formatBytes(c.bytes)})`),
          ...plan.keep.map((c) => `  keep   ${c.name}`),
        ],
      );
    }
    if (!flags["dry-run"])
      await this.guard("cleanup", args.url, () => applyS3Cleanup(client, location, plan));
    const verb = flags["dry-run"] ? "Would delete" : "Deleted";
    for (const c of plan.delete) this.log(`${verb} ${c.name} (${formatBytes(c.bytes)})`);
    this.log(
      `${verb} ${plan.delete.length} checkpoint(s), ${formatBytes(plan.bytes)}; kept ${plan.keep.length} under ${args.url}`,
    );
    return {
      cleanup: {
        url: args.url,
        dryRun: flags["dry-run"],
        deleted: plan.delete.map((c) => ({ name: c.name, bytes: c.bytes, objects: c.keys.length })),
        kept: plan.keep.map((c) => c.name),
        freedBytes: plan.bytes,
      },
    };
  }
}
