import { Args, Flags } from "@oclif/core";
import { formatBytes } from "@runctl/core";
import { listPath } from "@runctl/s3";
import { table } from "../../output.ts";
import { S3Command, s3ConnectionFlags } from "../../s3-command.ts";

export default class S3Ls extends S3Command {
  static override summary = "List objects (and, without --recursive, the prefixes one level down).";
  static override examples = [
    "<%= config.bin %> s3 ls s3://my-bucket/runs/",
    "<%= config.bin %> s3 ls s3://my-bucket/ckpt/ --recursive --json",
  ];
  static override args = {
    url: Args.string({
      description: "s3://bucket/prefix (a string prefix, as `aws s3 ls` reads it).",
      required: true,
    }),
  };
  static override flags = {
    recursive: Flags.boolean({ char: "r", description: "Every object under the prefix.", default: false }),
    ...s3ConnectionFlags,
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(S3Ls);
    const { client } = await this.s3Client(flags);
    const listed = await this.guard("list", args.url, () => listPath(client, args.url, flags.recursive));
    const rows = [
      ...listed.prefixes.map((p) => ["", "PRE", p]),
      ...listed.objects.map((o) => [o.modified.replace("T", " ").slice(0, 19), formatBytes(o.size), o.key]),
    ];
    if (rows.length > 0) this.log(table(["MODIFIED", "SIZE", "KEY"], rows));
    const bytes = listed.objects.reduce((n, o) => n + o.size, 0);
    this.progress(
      `${listed.objects.length} object(s), ${formatBytes(bytes)}${listed.prefixes.length ? `, ${listed.prefixes.length} prefix(es)` : ""}`,
    );
    return { url: listed.url, objects: listed.objects, prefixes: listed.prefixes, totalBytes: bytes };
  }
}
