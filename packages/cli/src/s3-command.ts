/**
 * The base of `runctl s3 …` commands: connection flags layered over `[s3]` (and validated by
 * its schema), one S3 client, S3 failures mapped to runctl errors naming the credentials used,
 * and the transfer progress bar on stderr (for a terminal, or with --progress).
 */
import { createInterface } from "node:readline/promises";
import { Flags } from "@oclif/core";
import { UserError } from "@runctl/core";
import {
  createS3Client,
  type ProgressSink,
  parseS3Url,
  type S3Settings,
  s3Error,
  s3SettingsFromConfig,
  silentProgress,
  TerminalProgress,
} from "@runctl/s3";
import { RunctlCommand } from "./command.ts";

type S3Client = ReturnType<typeof createS3Client>;

// The SDK warns on every run under Node 20 that its 2027 releases will need Node 22. runctl
// supports Node >= 20.19 and pins the SDK through its lockfile; a user cannot act on the
// warning, and it would bury runctl's own stderr. An explicit setting by the user is kept.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

export const s3ConnectionFlags = {
  profile: Flags.string({ description: "AWS profile (over [s3] profile; AWS_PROFILE wins over both)." }),
  region: Flags.string({ description: "Region of the bucket (over [s3] region)." }),
  endpoint: Flags.string({
    description: "S3-compatible endpoint URL (over [s3] endpoint; AWS_ENDPOINT_URL_S3 wins over both).",
  }),
};

export const s3TransferFlags = {
  concurrency: Flags.integer({ description: "Files and parts in flight at once (over [s3] concurrency)." }),
  progress: Flags.boolean({
    description: "Draw the progress bar on stderr even when it is not a terminal.",
    default: false,
  }),
};

export abstract class S3Command extends RunctlCommand {
  #client: S3Client | undefined;
  protected s3Settings: S3Settings | undefined;

  /** Settings from [s3], RUNCTL_S3_* and these flags, each validated by the [s3] schema. */
  protected async s3Client(flags: {
    profile?: string | undefined;
    region?: string | undefined;
    endpoint?: string | undefined;
    concurrency?: number | undefined;
  }): Promise<{ client: S3Client; settings: S3Settings }> {
    const { config } = await this.runctlConfig({
      "s3.profile": flags.profile,
      "s3.region": flags.region,
      "s3.endpoint": flags.endpoint,
      "s3.concurrency": flags.concurrency,
    });
    const settings = s3SettingsFromConfig(config.s3, process.env);
    // A flag is an explicit choice for this command: it beats the environment too.
    if (flags.endpoint !== undefined) settings.endpoint = flags.endpoint;
    if (flags.profile !== undefined) settings.profile = flags.profile;
    this.s3Settings = settings;
    this.#client = createS3Client(settings);
    return { client: this.#client, settings };
  }

  protected progressSink(forced: boolean, label: string): ProgressSink {
    return forced || process.stderr.isTTY ? new TerminalProgress(process.stderr, label) : silentProgress;
  }

  /** Runs `body`, turning S3 failures into errors that name the operation, location and credentials. */
  protected async guard<T>(operation: string, url: string, body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      const client = this.#client;
      if (!client) throw error;
      let bucket = "";
      let key: string | undefined;
      try {
        const location = parseS3Url(url);
        bucket = location.bucket;
        key = location.prefix;
      } catch {
        // Not an S3 URL: the error is about something else and passes through unchanged below.
      }
      throw await s3Error(
        error,
        client,
        key === undefined ? { operation, bucket } : { operation, bucket, key },
      );
    }
  }

  /**
   * Asks on the terminal before deleting; without one nobody can answer, so it refuses and
   * names --yes and --dry-run. The plan and the question go to stderr, keeping stdout for --json.
   */
  protected async confirmDeletion(what: string, lines: readonly string[]): Promise<void> {
    if (!process.stdin.isTTY) {
      throw new UserError(`Refusing to delete ${what} without confirmation: stdin is not a terminal`, {
        code: "confirmation_required",
        hint: "Pass --yes to delete, or --dry-run to see what would be deleted.",
      });
    }
    for (const line of lines) this.progress(line);
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    const unanswered = new AbortController();
    rl.on("SIGINT", () => unanswered.abort());
    rl.on("close", () => unanswered.abort());
    let yes = false;
    try {
      yes = /^y(es)?$/i.test(
        (await rl.question(`Delete ${what}? [y/N] `, { signal: unanswered.signal })).trim(),
      );
    } catch (error) {
      if (!unanswered.signal.aborted) throw error;
    } finally {
      rl.close();
    }
    if (!yes) {
      throw new UserError("Cancelled; nothing was deleted", {
        code: "cleanup_cancelled",
        hint: "Rerun with --dry-run to review, or with --yes to delete without the question.",
      });
    }
  }
}
