/** Configuration: schema, loading from files/env/flags, lookup, editing, the starter file. */
export { getConfigValue } from "./access.ts";
export { type SetConfigValueOptions, type SetConfigValueResult, setConfigValue } from "./edit.ts";
export { ENV_PREFIX, envNameToKeyPath, NON_CONFIG_ENV } from "./env.ts";
export type { ConfigIssue, SourceKind } from "./layers.ts";
export {
  type ConfigSource,
  type LoadConfigOptions,
  type LoadedConfig,
  loadConfig,
  parseConfigText,
} from "./load.ts";
export { locateKey } from "./locate.ts";
export { findProjectConfig, PROJECT_CONFIG_NAME, userConfigPath, userDataDir } from "./paths.ts";
export { REDACTED, redactConfig, redactUrlCredentials } from "./redact.ts";
export {
  type BundleConfig,
  bundleSectionSchema,
  CORE_SECTIONS,
  type ConfigSections,
  configSchemaWith,
  defaultConfig,
  type LoadedRunctlConfig,
  type LocalConfig,
  localSectionSchema,
  type NatsConfig,
  natsSectionSchema,
  type OutputConfig,
  outputSectionSchema,
  type ProjectConfig,
  projectSectionSchema,
  type RunctlConfig,
  runctlConfigSchema,
  type S3Config,
  type ServerConfig,
  s3SectionSchema,
  serverSectionSchema,
} from "./schema.ts";
export { starterConfig } from "./starter.ts";
export { parseConfigValue } from "./value.ts";
