/** Hiding secrets before configuration is shown (`runctl config show`, logs, bug reports). */
import { CORE_SECTIONS } from "./schema.ts";
import { isPlainObject, type Tree } from "./tree.ts";

export const REDACTED = "***";

/** Core keys holding secrets. nats.creds, account_seed_file and tls_key are paths to secrets, not secrets, so they show. */
const CORE_SECRET_KEYS: Readonly<Record<string, readonly string[]>> = {
  nats: ["token", "password", "account_seed"],
  server: ["token"],
};

// Provider schemas are not ours to annotate, so their secrets are recognised by name.
const SECRET_NAME = /secret|token|password|api_?key/i;

/**
 * A copy of `config` with secrets replaced by "***": `nats.token`,
 * `nats.password`, `server.token`, and, in provider sections, any key whose name contains
 * `secret`, `token`, `password` or `api_key` (at any depth). Unset keys stay unset.
 */
export function redactConfig<T extends object>(config: T): T {
  const out: Tree = {};
  for (const [section, value] of Object.entries(config)) {
    const core = CORE_SECTIONS.includes(section);
    const secretKeys = CORE_SECRET_KEYS[section] ?? [];
    out[section] = redactTree(value, (key, depth) =>
      core ? depth === 0 && secretKeys.includes(key) : SECRET_NAME.test(key),
    );
  }
  // `nats://user:pass@host` carries a password in the URL itself.
  const nats = out.nats;
  if (isPlainObject(nats) && typeof nats.url === "string")
    out.nats = { ...nats, url: redactUrlCredentials(nats.url) };
  return out as T;
}

// A URL's userinfo (`scheme://user:pass@` or `scheme://token@`), in a comma-separated list too.
const URL_USERINFO = /([a-z][a-z0-9+.-]*:\/\/)([^@/,\s]*)@/gi;

/**
 * `url` (or a comma-separated list of URLs) with the secret part of any
 * userinfo replaced by "***": `nats://alice:s3cret@host` → `nats://alice:***@host`,
 * `nats://tok3n@host` → `nats://***@host`. For messages, meta.json and config show.
 */
export function redactUrlCredentials(url: string): string {
  return url.replace(URL_USERINFO, (_all, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(":");
    return colon >= 0 ? `${scheme}${userinfo.slice(0, colon)}:${REDACTED}@` : `${scheme}${REDACTED}@`;
  });
}

/** A deep copy of `value` with secret keys (as `isSecret` decides) replaced; depth 0 is the section's own keys. */
function redactTree(value: unknown, isSecret: (key: string, depth: number) => boolean, depth = 0): unknown {
  if (Array.isArray(value)) return value.map((v) => redactTree(v, isSecret, depth));
  if (!isPlainObject(value)) return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [
      k,
      isSecret(k, depth) && v != null ? REDACTED : redactTree(v, isSecret, depth + 1),
    ]),
  );
}
