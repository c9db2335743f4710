/**
 * The shape of runctl configuration. These schemas are the single source of
 * what `.runctl.toml`, the user config file, `RUNCTL_*` variables and flags may
 * say; defaults live here too so `runctl init` and the loader cannot drift.
 */
import { z } from "zod";
import { InternalError } from "../errors.ts";

export const projectSectionSchema = z.strictObject({
  /** Project name, recorded on runs and as the `runctl:project` tag. */
  name: z.string().min(1).optional(),
  /** Who launched it, recorded as the `runctl:user` tag. */
  user: z.string().min(1).optional(),
});

export const localSectionSchema = z.strictObject({
  /** Python interpreter for local runs; unset means detect (uv, then `python3`). */
  python: z.string().min(1).optional(),
  runs_dir: z.string().min(1).default("runs"),
  checkpoint_dir: z.string().min(1).default("checkpoints"),
});

export const bundleSectionSchema = z.strictObject({
  /** Extra gitignore-style patterns left out of code bundles. */
  exclude: z.array(z.string()).default([]),
  warn_size_mb: z.number().positive().default(100),
});

export const natsSectionSchema = z.strictObject({
  url: z.string().min(1).optional(),
  token: z.string().min(1).optional(),
  user: z.string().min(1).optional(),
  password: z.string().min(1).optional(),
  /** Path to a `.creds` file (JWT + nkey seed). */
  creds: z.string().min(1).optional(),
  /** Name of a `nats` CLI context to take connection settings from. */
  context: z.string().min(1).optional(),
  /**
   * The seed of the NATS account (`SA…`) whose key signs per-run credentials
   * (`runctl nats creds`, remote runs): held by the launching side only, never
   * sent to a machine. A secret; prefer account_seed_file or RUNCTL_NATS_ACCOUNT_SEED.
   */
  account_seed: z
    .string()
    .trim()
    .regex(
      /^SA[A-Z2-7]+$/,
      "must be a NATS account seed (it starts with SA), not a public key or another kind of seed",
    )
    .optional(),
  /** A file holding the account seed (an nsc `.nk` file); not both. */
  account_seed_file: z.string().min(1).optional(),
  tls_ca: z.string().min(1).optional(),
  tls_cert: z.string().min(1).optional(),
  tls_key: z.string().min(1).optional(),
  /**
   * Prefix of this client's reply subjects (`_INBOX` by default). A run's own
   * credentials may subscribe only below `_INBOX_<run>`, so its agent sets it.
   */
  inbox_prefix: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .optional(),
  /** Subject prefix; every runctl subject lives under it. */
  // The same rule @runctl/control applies when it connects (subjects.ts), so
  // `config validate` refuses what would only fail at run time: wildcards
  // (`*`, `>`), spaces or empty tokens would subscribe to other runs' subjects.
  prefix: z
    .string()
    .min(1)
    .regex(
      /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/,
      "must be dot-separated NATS subject tokens of letters, digits, _ and - (no *, >, spaces or empty tokens), e.g. runctl or team.a",
    )
    .default("runctl"),
});

export const serverSectionSchema = z.strictObject({
  /** Where clients and workers reach the job server. */
  url: z.string().url().default("http://127.0.0.1:8080"),
  /** Bearer token; required by \`runctl server\` whenever it listens beyond loopback. */
  token: z.string().min(1).optional(),
  /** Address \`runctl server\` listens on. */
  host: z.string().min(1).default("127.0.0.1"),
  port: z.number().int().min(0).max(65_535).default(8080),
  /** The server's database and uploaded run directories; unset means $XDG_DATA_HOME/runctl/server. */
  data_dir: z.string().min(1).optional(),
  /** Lease a worker takes on a job; heartbeats renew it every third of it. */
  lease_seconds: z.number().int().min(1).max(3600).default(60),
});

export const s3SectionSchema = z.strictObject({
  /** Region of the bucket; unset means the AWS default chain (AWS_REGION, the profile), else us-east-1. */
  region: z.string().min(1).optional(),
  /** S3-compatible endpoint (R2, MinIO, B2, an emulator); AWS_ENDPOINT_URL_S3 wins over it. */
  endpoint: z.url().optional(),
  /** Path-style URLs (`endpoint/bucket/key`), which most S3-compatible stores need. */
  force_path_style: z.boolean().default(false),
  /** Named AWS profile for credentials and region; AWS_PROFILE wins over it. */
  profile: z.string().min(1).optional(),
  /** Multipart part size; S3 needs at least 5 MiB for every part but the last. */
  part_size_mb: z.number().int().min(5).max(5120).default(16),
  /** Files (and parts) transferred at once. */
  concurrency: z.number().int().min(1).max(64).default(8),
});

export const outputSectionSchema = z.strictObject({
  color: z.boolean().default(true),
});

// `prefault` (not `default`) so a missing section is parsed from `{}` and its
// keys get their own defaults; zod 4's `default` would return `{}` unparsed.
const coreShape = {
  project: projectSectionSchema.prefault({}),
  local: localSectionSchema.prefault({}),
  bundle: bundleSectionSchema.prefault({}),
  nats: natsSectionSchema.prefault({}),
  server: serverSectionSchema.prefault({}),
  s3: s3SectionSchema.prefault({}),
  output: outputSectionSchema.prefault({}),
};

/** Sections runctl itself owns; provider plugins contribute the others. */
export const CORE_SECTIONS: readonly string[] = Object.freeze(Object.keys(coreShape));

/** The core configuration (no provider sections); unknown keys are errors. */
export const runctlConfigSchema = z.strictObject(coreShape);

export type RunctlConfig = z.output<typeof runctlConfigSchema>;
export type ProjectConfig = RunctlConfig["project"];
export type LocalConfig = RunctlConfig["local"];
export type BundleConfig = RunctlConfig["bundle"];
export type NatsConfig = RunctlConfig["nats"];
export type ServerConfig = RunctlConfig["server"];
export type S3Config = RunctlConfig["s3"];
export type OutputConfig = RunctlConfig["output"];

/**
 * Provider sections by name (`aws` → its schema). Each is validated only when
 * present, because a provider nobody uses must not make its required keys
 * mandatory for everyone; a provider reads `config.<name>` and applies its own
 * defaults when the section is absent.
 */
export type ConfigSections = Readonly<Record<string, z.ZodType>>;

/** A loaded configuration: the core sections, typed, plus provider sections as parsed by their schemas. */
export type LoadedRunctlConfig = RunctlConfig & { readonly [section: string]: unknown };

/** The core schema extended with provider sections. */
export function configSchemaWith(sections: ConfigSections = {}): z.ZodType<LoadedRunctlConfig> {
  const extra: Record<string, z.ZodType> = {};
  for (const [name, schema] of Object.entries(sections)) {
    if (Object.hasOwn(coreShape, name)) {
      throw new InternalError(`Provider section [${name}] collides with a core runctl section`, {
        code: "config_section_collision",
        hint: `Rename the provider's config section; [${CORE_SECTIONS.join("], [")}] belong to runctl.`,
      });
    }
    extra[name] = schema.optional();
  }
  return z.strictObject({ ...coreShape, ...extra }) as unknown as z.ZodType<LoadedRunctlConfig>;
}

/** Every core key at its built-in default. */
export function defaultConfig(): RunctlConfig {
  return runctlConfigSchema.parse({});
}
