import { Args, Flags } from "@oclif/core";
import { formatBytes } from "@runctl/core";
import { isS3Url, type SyncSummary, syncDirectories } from "@runctl/s3";
import { S3Command, s3ConnectionFlags, s3TransferFlags } from "../../s3-command.ts";

export default class S3Sync extends S3Command {
  static override summary =
    "Make an S3 prefix match a local directory, or the other way round, moving only what differs.";
  static override description =
    "The direction follows the arguments: a local directory first uploads, an s3:// URL first downloads. Files are the same when their sizes match and their contents hash the same (the ETag where it is a plain MD5, else the SHA-256 runctl records as x-amz-meta-runctl-sha256). Files above [s3] part_size_mb go up as multipart uploads, which S3 shows only once complete; a killed sync is finished by running it again, which keeps the parts it had sent when they still match the file.";
  static override examples = [
    "<%= config.bin %> s3 sync runs/ s3://my-bucket/runs",
    "<%= config.bin %> s3 sync s3://my-bucket/runs ./runs --delete --dry-run",
    "<%= config.bin %> s3 sync ckpt/ s3://my-bucket/ckpt --include '*.safetensors' --exclude 'tmp/**' --json",
  ];
  static override args = {
    from: Args.string({ description: "Local directory or s3://bucket/prefix to copy from.", required: true }),
    to: Args.string({ description: "s3://bucket/prefix or local directory to copy to.", required: true }),
  };
  static override flags = {
    delete: Flags.boolean({
      description: "Delete from the destination what the source no longer has.",
      default: false,
    }),
    "dry-run": Flags.boolean({
      description: "Show what would be sent and deleted; change nothing.",
      default: false,
    }),
    include: Flags.string({
      description: "Only paths matching this glob (repeatable).",
      multiple: true,
      default: [],
    }),
    exclude: Flags.string({
      description: "Leave out paths matching this glob (repeatable).",
      multiple: true,
      default: [],
    }),
    ...s3TransferFlags,
    ...s3ConnectionFlags,
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(S3Sync);
    const { client, settings } = await this.s3Client(flags);
    const remote = isS3Url(args.from) ? args.from : args.to;
    const summary = await this.guard("sync", remote, () =>
      syncDirectories(client, args.from, args.to, {
        delete: flags.delete,
        dryRun: flags["dry-run"],
        include: flags.include,
        exclude: flags.exclude,
        concurrency: settings.concurrency,
        partSizeBytes: settings.partSizeBytes,
        progress: this.progressSink(flags.progress, "sync"),
      }),
    );
    this.report(summary);
    return { sync: summary };
  }

  private report(summary: SyncSummary): void {
    if (summary.dryRun) {
      for (const path of summary.sent)
        this.log(`would ${summary.direction === "up" ? "upload" : "download"} ${path}`);
      for (const path of summary.deleted) this.log(`would delete ${path}`);
    }
    if (summary.resumed.length > 0)
      this.log(`Finished ${summary.resumed.length} interrupted upload(s), keeping the parts sent before`);
    const verb = summary.dryRun ? "Would send" : "Sent";
    this.log(
      `${verb} ${summary.files.sent} file(s), ${formatBytes(summary.bytes.sent)}; ${summary.files.skipped} unchanged; ${
        summary.dryRun ? "would delete" : "deleted"
      } ${summary.files.deleted} (${summary.from} -> ${summary.to})`,
    );
  }
}
