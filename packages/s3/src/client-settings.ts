/**
 * How runctl reaches S3, the AWS way: credentials from the SDK's default chain (environment,
 * profiles, SSO, container and instance metadata), `AWS_PROFILE` over `[s3] profile`, region
 * from `[s3] region` else the chain, and the endpoint from `AWS_ENDPOINT_URL_S3` (read by the
 * SDK itself) else `[s3] endpoint`.
 */
import { S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import type { S3Config } from "@runctl/core";

/** Settings after config, environment and flags are merged; what `createS3Client` needs. */
export interface S3Settings {
  region?: string;
  endpoint?: string;
  forcePathStyle: boolean;
  profile?: string;
  partSizeBytes: number;
  concurrency: number;
  /** Explicit keys (tests, presigned use); unset means the default chain. */
  credentials?: S3ClientConfig["credentials"];
}

export const DEFAULT_REGION = "us-east-1";
const MIB = 1024 * 1024;

export function s3SettingsFromConfig(config: S3Config, env: NodeJS.ProcessEnv = process.env): S3Settings {
  const settings: S3Settings = {
    forcePathStyle: config.force_path_style,
    partSizeBytes: config.part_size_mb * MIB,
    concurrency: config.concurrency,
  };
  if (config.region !== undefined) settings.region = config.region;
  // The SDK reads AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL itself; passing the config value
  // only when they are unset keeps the standard variables on top.
  if (config.endpoint !== undefined && !env.AWS_ENDPOINT_URL_S3 && !env.AWS_ENDPOINT_URL) {
    settings.endpoint = config.endpoint;
  }
  if (config.profile !== undefined && !env.AWS_PROFILE) settings.profile = config.profile;
  return settings;
}

/**
 * Checksums only where S3 requires them (`WHEN_REQUIRED`). Since early 2025 the SDK adds a
 * CRC32 (and an aws-chunked trailer for streams) to every upload and validates response
 * checksums by default; R2, B2 and older MinIO reject or mishandle those headers. Integrity
 * still holds: SigV4 signs the payload hash (or chunks) and sync checks sizes and SHA-256s.
 */
export function createS3Client(settings: S3Settings): S3Client {
  const config: S3ClientConfig = {
    forcePathStyle: settings.forcePathStyle,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    region: regionProvider(settings),
    maxAttempts: 3,
    logger: sdkLogger,
  };
  if (settings.endpoint !== undefined) config.endpoint = settings.endpoint;
  if (settings.profile !== undefined) config.profile = settings.profile;
  if (settings.credentials !== undefined) config.credentials = settings.credentials;
  return new S3Client(config);
}

/**
 * The SDK's own chatter (e.g. "An error was encountered in a non-retryable streaming request",
 * printed with console.warn beside the error runctl reports anyway) only under DEBUG=runctl*.
 */
const sdkLogger = {
  debug: () => {},
  info: () => {},
  warn: (...args: unknown[]) => debugLine("warn", args),
  error: (...args: unknown[]) => debugLine("error", args),
};

function debugLine(level: string, args: unknown[]): void {
  const { DEBUG } = process.env;
  if (/runctl/.test(DEBUG ?? "")) process.stderr.write(`aws-sdk ${level}: ${args.map(String).join(" ")}\n`);
}

/** The configured region, else the SDK's chain (AWS_REGION, the profile), else us-east-1. */
function regionProvider(settings: S3Settings): () => Promise<string> {
  if (settings.region !== undefined) {
    const region = settings.region;
    return async () => region;
  }
  let resolved: Promise<string> | undefined;
  return () => {
    resolved ??= (async () => {
      const probe = new S3Client(settings.profile === undefined ? {} : { profile: settings.profile });
      try {
        return await probe.config.region();
      } catch {
        return DEFAULT_REGION;
      } finally {
        probe.destroy();
      }
    })();
    return resolved;
  };
}
