import { Args, Flags } from "@oclif/core";
import { UserError } from "@runctl/core";
import { ExpiresInSeconds, parseS3Url, presignGetUrl, presignPostPolicy, presignPutUrl } from "@runctl/s3";
import { z } from "zod";
import { S3Command, s3ConnectionFlags } from "../../s3-command.ts";

export default class S3Presign extends S3Command {
  static override summary =
    "Print a short-lived URL (GET, or PUT with --put) or a POST policy for a prefix (--post).";
  static override description =
    "Presigned requests need no credentials from whoever holds them and stop working when they expire (7 days at most). --post prints a form policy that may write any key under the prefix, each at most --max-bytes, which is how a remote machine writes a run directory without a long-lived key.";
  static override examples = [
    "<%= config.bin %> s3 presign s3://my-bucket/models/model.safetensors --expires 600",
    "<%= config.bin %> s3 presign s3://my-bucket/uploads/x.bin --put",
    "<%= config.bin %> s3 presign s3://my-bucket/runs/abc/ --post --max-bytes 1073741824 --json",
  ];
  static override args = {
    url: Args.string({
      description: "s3://bucket/key (GET, PUT) or s3://bucket/prefix/ (POST).",
      required: true,
    }),
  };
  static override flags = {
    expires: Flags.integer({
      description: "Seconds the URL or policy stays valid (1 to 604800).",
      default: 3600,
    }),
    put: Flags.boolean({
      description: "A URL to upload with an HTTP PUT.",
      default: false,
      exclusive: ["post"],
    }),
    post: Flags.boolean({
      description: "A POST policy for keys under the prefix.",
      default: false,
      exclusive: ["put"],
    }),
    "max-bytes": Flags.integer({
      description: "With --post: the largest object allowed.",
      default: 5 * 1024 ** 3,
    }),
    ...s3ConnectionFlags,
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(S3Presign);
    const expires = ExpiresInSeconds.safeParse(flags.expires);
    if (!expires.success) {
      throw new UserError(`--expires must be between 1 and 604800 seconds, not ${flags.expires}`, {
        code: "bad_usage",
        hint: "SigV4 presigned requests last at most 7 days; e.g. --expires 3600.",
      });
    }
    const maxBytes = z.number().int().min(0).safeParse(flags["max-bytes"]);
    if (!maxBytes.success) {
      throw new UserError("--max-bytes must be 0 or more", {
        code: "bad_usage",
        hint: "e.g. --max-bytes 1073741824",
      });
    }
    const { client } = await this.s3Client(flags);
    const location = parseS3Url(args.url);
    const expiresAt = new Date(Date.now() + expires.data * 1000).toISOString();
    if (flags.post) {
      const post = await this.guard("presign", args.url, () =>
        presignPostPolicy(client, location.bucket, location.prefix, {
          expiresInSeconds: expires.data,
          maxBytes: maxBytes.data,
        }),
      );
      this.log(`POST ${post.url}`);
      for (const [name, value] of Object.entries(post.fields)) this.log(`  ${name}=${value}`);
      this.progress(`Keys must start with ${post.keyPrefix}; valid until ${post.expiresAt}.`);
      return { presign: { method: "POST", ...post } };
    }
    const method = flags.put ? "PUT" : "GET";
    const url = await this.guard("presign", args.url, () =>
      (flags.put ? presignPutUrl : presignGetUrl)(client, location.bucket, location.prefix, expires.data),
    );
    this.log(url);
    return { presign: { method, url, expiresAt } };
  }
}
