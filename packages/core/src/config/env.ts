/**
 * Configuration from `RUNCTL_*` environment variables.
 *
 * Mapping rule:
 * - `RUNCTL_<SECTION>_<KEY>` sets `section.key`: SECTION is the part up to the
 *   first `_`, KEY is the rest, both lower-cased. `RUNCTL_NATS_URL` → `nats.url`,
 *   `RUNCTL_BUNDLE_WARN_SIZE_MB` → `bundle.warn_size_mb`.
 * - `__` (double underscore) separates deeper levels explicitly:
 *   `RUNCTL_AWS__SPOT__MAX_PRICE` → `aws.spot.max_price` (as does
 *   `RUNCTL_AWS_SPOT__MAX_PRICE`: the first level still splits at its first `_`).
 * - Only variables whose SECTION is a known section (runctl's own, or one a
 *   loaded provider plugin contributes) are read; `RUNCTL_AWS_REGION` is
 *   ignored while no provider contributes `[aws]`.
 * - Variables runctl sets for training processes are never configuration, see
 *   {@link NON_CONFIG_ENV}.
 * - Values are read as TOML values when they parse (`100`, `true`,
 *   `["a","b"]`, `"quoted"`), else kept as strings; where the key's schema wants
 *   a string and the TOML reading is not one, the raw string is kept
 *   (`RUNCTL_NATS_TOKEN=123456` is a string).
 * - An empty variable counts as unset, as in most shells' `VAR= cmd` idiom.
 */
import { ConfigError } from "../errors.ts";
import { UNSAFE_CONFIG_KEYS } from "./tree.ts";

export const ENV_PREFIX = "RUNCTL_";

/**
 * `RUNCTL_` variables that are not configuration: the supervisor exports them
 * into training processes (run identity and directories, the resume
 * checkpoint, the path of the run's config JSON), so a nested `runctl`
 * invocation inside a run must not read them as settings.
 */
export const NON_CONFIG_ENV: readonly string[] = Object.freeze([
  "RUNCTL_RUN_ID",
  "RUNCTL_RUN_DIR",
  "RUNCTL_CHECKPOINT_DIR",
  "RUNCTL_RESUME_FROM",
  "RUNCTL_CONFIG",
  "RUNCTL_CONTROL_DIR",
  "RUNCTL_RUNS_DIR",
]);

/**
 * The config key path a variable maps to, or undefined when the variable is
 * not configuration (wrong prefix, deny-listed, unknown section, no key).
 * Throws ConfigError for a variable in a known section that cannot be mapped
 * (an empty level such as `RUNCTL_NATS__`), since silently dropping it would
 * hide a typo.
 */
export function envNameToKeyPath(name: string, knownSections: ReadonlySet<string>): string[] | undefined {
  if (!name.startsWith(ENV_PREFIX) || NON_CONFIG_ENV.includes(name)) return undefined;
  const levels = name.slice(ENV_PREFIX.length).split("__");
  const first = levels[0] ?? "";
  const split = first.indexOf("_");
  const section = (split < 0 ? first : first.slice(0, split)).toLowerCase();
  if (!knownSections.has(section)) return undefined;
  const path = [section, ...(split < 0 ? [] : [first.slice(split + 1)]), ...levels.slice(1)].map((p) =>
    p.toLowerCase(),
  );
  if (path.length < 2) return undefined;
  if (path.some((p) => UNSAFE_CONFIG_KEYS.has(p))) {
    throw new ConfigError(`Environment variable ${name}: maps to a key runctl refuses (${path.join(".")})`, {
      code: "config_unsafe_key",
      hint: `Unset ${name}: __proto__, constructor and prototype are never config keys.`,
      details: { variable: name },
    });
  }
  if (path.some((p) => p === "")) {
    throw new ConfigError(`Environment variable ${name}: cannot map to a config key (empty level)`, {
      code: "config_invalid",
      hint: `Unset ${name} or name it RUNCTL_<SECTION>_<KEY>, with \`__\` between deeper levels (RUNCTL_AWS__SPOT__MAX_PRICE).`,
      details: { variable: name },
    });
  }
  return path;
}

export interface EnvEntry {
  variable: string;
  path: string[];
  raw: string;
}

/** The configuration variables in `env`, sorted by name so results do not depend on env order. */
export function configEnvEntries(
  env: Readonly<Record<string, string | undefined>>,
  knownSections: ReadonlySet<string>,
): EnvEntry[] {
  const out: EnvEntry[] = [];
  for (const variable of Object.keys(env).sort()) {
    const raw = env[variable];
    if (raw === undefined || raw === "") continue;
    const path = envNameToKeyPath(variable, knownSections);
    if (path !== undefined) out.push({ variable, path, raw });
  }
  return out;
}
