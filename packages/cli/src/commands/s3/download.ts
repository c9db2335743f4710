import { Args } from "@oclif/core";
import { formatBytes } from "@runctl/core";
import { downloadPath } from "@runctl/s3";
import { S3Command, s3ConnectionFlags, s3TransferFlags } from "../../s3-command.ts";

export default class S3Download extends S3Command {
  static override summary = "Download an object or everything under a prefix.";
  static override description =
    "An object goes to the path given (or into it, when it is a directory); a prefix goes into the directory, every object fetched (use `runctl s3 sync` to fetch only what changed). Files are written under a temporary name and renamed into place, and checked against the SHA-256 runctl recorded when there is one.";
  static override examples = [
    "<%= config.bin %> s3 download s3://my-bucket/models/model.safetensors .",
    "<%= config.bin %> s3 download s3://my-bucket/runs/abc/ ./abc --json",
  ];
  static override args = {
    source: Args.string({ description: "s3://bucket/key or s3://bucket/prefix/.", required: true }),
    dest: Args.string({ description: "Local file or directory.", default: "." }),
  };
  static override flags = { ...s3TransferFlags, ...s3ConnectionFlags };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(S3Download);
    const { client, settings } = await this.s3Client(flags);
    const summary = await this.guard("download", args.source, () =>
      downloadPath(client, args.source, args.dest, {
        concurrency: settings.concurrency,
        partSizeBytes: settings.partSizeBytes,
        progress: this.progressSink(flags.progress, "download"),
      }),
    );
    this.log(`Downloaded ${summary.files.sent} file(s), ${formatBytes(summary.bytes.sent)} to ${summary.to}`);
    return { download: summary };
  }
}
