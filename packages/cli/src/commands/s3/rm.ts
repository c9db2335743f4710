import { Args, Flags } from "@oclif/core";
import { formatBytes } from "@runctl/core";
import { planRemove, removeObjects } from "@runctl/s3";
import { S3Command, s3ConnectionFlags } from "../../s3-command.ts";

export default class S3Rm extends S3Command {
  static override summary = "Delete an object, or with --recursive everything under a prefix.";
  static override description =
    "Deleting one object needs no confirmation. --recursive shows the plan and asks on a terminal; without one, pass --yes (or --dry-run to preview).";
  static override examples = [
    "<%= config.bin %> s3 rm s3://my-bucket/tmp/file.bin",
    "<%= config.bin %> s3 rm s3://my-bucket/runs/old/ --recursive --dry-run",
  ];
  static override args = {
    url: Args.string({ description: "s3://bucket/key, or a prefix with --recursive.", required: true }),
  };
  static override flags = {
    recursive: Flags.boolean({ char: "r", description: "Every object under the prefix.", default: false }),
    "dry-run": Flags.boolean({ description: "Show what would be deleted; delete nothing.", default: false }),
    yes: Flags.boolean({ char: "y", description: "Delete without asking.", default: false }),
    ...s3ConnectionFlags,
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(S3Rm);
    const { client } = await this.s3Client(flags);
    const objects = await this.guard("delete", args.url, () => planRemove(client, args.url, flags.recursive));
    const bytes = objects.reduce((n, o) => n + o.size, 0);
    if (!flags["dry-run"] && flags.recursive && !flags.yes && objects.length > 0) {
      await this.confirmDeletion(
        `${objects.length} object(s), ${formatBytes(bytes)}, under ${args.url}`,
        objects.slice(0, 20).map((o) => `  delete ${o.key} (${formatBytes(o.size)})`),
      );
    }
    if (!flags["dry-run"])
      await this.guard("delete", args.url, () => removeObjects(client, args.url, objects));
    const verb = flags["dry-run"] ? "Would delete" : "Deleted";
    for (const o of objects) this.log(`${verb} ${o.key}`);
    this.log(`${verb} ${objects.length} object(s), ${formatBytes(bytes)}`);
    return { rm: { url: args.url, dryRun: flags["dry-run"], deleted: objects.map((o) => o.key), bytes } };
  }
}
