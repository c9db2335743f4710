import { Args } from "@oclif/core";
import { formatBytes } from "@runctl/core";
import { uploadPath } from "@runctl/s3";
import { S3Command, s3ConnectionFlags, s3TransferFlags } from "../../s3-command.ts";

export default class S3Upload extends S3Command {
  static override summary = "Upload a file or a directory to S3.";
  static override description =
    "A file goes to the key given (or, for a URL ending in /, to that prefix plus its name); a directory goes under the prefix, every file sent (use `runctl s3 sync` to send only what changed). Every object carries its SHA-256 as x-amz-meta-runctl-sha256.";
  static override examples = [
    "<%= config.bin %> s3 upload model.safetensors s3://my-bucket/models/",
    "<%= config.bin %> s3 upload runs/abc s3://my-bucket/runs/abc --json",
  ];
  static override args = {
    source: Args.string({ description: "Local file or directory.", required: true }),
    dest: Args.string({ description: "s3://bucket/key or s3://bucket/prefix/.", required: true }),
  };
  static override flags = { ...s3TransferFlags, ...s3ConnectionFlags };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(S3Upload);
    const { client, settings } = await this.s3Client(flags);
    const summary = await this.guard("upload", args.dest, () =>
      uploadPath(client, args.source, args.dest, {
        concurrency: settings.concurrency,
        partSizeBytes: settings.partSizeBytes,
        progress: this.progressSink(flags.progress, "upload"),
      }),
    );
    if (summary.resumed.length > 0)
      this.log(`Finished ${summary.resumed.length} interrupted upload(s), keeping the parts sent before`);
    this.log(`Uploaded ${summary.files.sent} file(s), ${formatBytes(summary.bytes.sent)} to ${summary.to}`);
    return { upload: summary };
  }
}
