/**
 * NATS connection settings the way NATS tools take them: a server URL (or a
 * comma-separated list), a token, a user and password, a `.creds` file, TLS
 * files, or the name of a `nats` CLI context that holds any of those.
 * Settings given explicitly win over the context's.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { ConfigError, type NatsConfig } from "@runctl/core";
import { z } from "zod";
import { DEFAULT_PREFIX, validatePrefix } from "./subjects.ts";

export const NatsTlsSettings = z.strictObject({
  /** PEM file of the CA that signed the server's certificate. */
  ca: z.string().min(1).optional(),
  /** PEM client certificate (mutual TLS), with `key`. */
  cert: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
});
export type NatsTlsSettings = z.infer<typeof NatsTlsSettings>;

export const NatsSettings = z.strictObject({
  /** `nats://host:4222`, `tls://host:4222`, or several comma-separated; default `nats://127.0.0.1:4222`. */
  url: z.string().min(1).optional(),
  token: z.string().min(1).optional(),
  user: z.string().min(1).optional(),
  pass: z.string().optional(),
  /** A `.creds` file (user JWT and NKey seed). */
  credsFile: z.string().min(1).optional(),
  /**
   * The text of a `.creds` file (a run's minted credentials, held in memory
   * rather than written to disk); wins over `credsFile`.
   */
  credsText: z.string().min(1).optional(),
  tls: NatsTlsSettings.optional(),
  /** A `nats` CLI context to start from; `""`/unset means none (not the CLI's selected one). */
  context: z.string().optional(),
  /** Subject prefix (default `runctl`). */
  prefix: z.string().min(1).default(DEFAULT_PREFIX),
  /** Prefix of reply inboxes, for accounts that may only subscribe below it. */
  inboxPrefix: z.string().min(1).optional(),
  /** JetStream domain, or the API prefix of an imported JetStream (not both). */
  jsDomain: z.string().min(1).optional(),
  jsApiPrefix: z.string().min(1).optional(),
  /** Connection name shown by the server's monitoring. */
  name: z.string().min(1).optional(),
});
export type NatsSettings = z.input<typeof NatsSettings>;
export type ParsedNatsSettings = z.output<typeof NatsSettings>;

/** `[nats]` of runctl's configuration as settings. */
export function natsSettingsFromConfig(config: NatsConfig): NatsSettings {
  const tls: NatsTlsSettings = {};
  if (config.tls_ca !== undefined) tls.ca = config.tls_ca;
  if (config.tls_cert !== undefined) tls.cert = config.tls_cert;
  if (config.tls_key !== undefined) tls.key = config.tls_key;
  return dropUndefined({
    url: config.url,
    token: config.token,
    user: config.user,
    pass: config.password,
    credsFile: config.creds,
    tls: Object.keys(tls).length > 0 ? tls : undefined,
    context: config.context,
    prefix: config.prefix,
    inboxPrefix: config.inbox_prefix,
  });
}

/**
 * A saved context of the `nats` CLI (`nats context save`). Only the fields
 * runctl uses are checked; the CLI writes more (description, nsc, colors …).
 */
export const NatsContextFile = z
  .object({
    url: z.string().optional(),
    token: z.string().optional(),
    user: z.string().optional(),
    password: z.string().optional(),
    creds: z.string().optional(),
    ca: z.string().optional(),
    cert: z.string().optional(),
    key: z.string().optional(),
    inbox_prefix: z.string().optional(),
    jetstream_domain: z.string().optional(),
    jetstream_api_prefix: z.string().optional(),
  })
  .loose();
export type NatsContextFile = z.infer<typeof NatsContextFile>;

export interface NatsContext extends NatsContextFile {
  name: string;
  /** The file it was read from. */
  path: string;
}

export interface NatsContextOptions {
  /** Instead of `$XDG_CONFIG_HOME` (default `~/.config`). */
  configHome?: string;
}

const CONTEXT_NAME = /^[A-Za-z0-9_.@-]+$/;

/** `<config home>/nats`, where the `nats` CLI keeps `context.txt` and `context/<name>.json`. */
export function natsConfigDir(options: NatsContextOptions = {}): string {
  const xdg = process.env.XDG_CONFIG_HOME;
  const home = options.configHome ?? (xdg !== undefined && xdg !== "" ? xdg : join(homedir(), ".config"));
  return join(home, "nats");
}

/**
 * Reads the `nats` CLI context `name`, or the selected one (`context.txt`)
 * when no name is given. Paths in it (`creds`, `ca`, `cert`, `key`) may start
 * with `~/`, as the CLI allows.
 */
export function loadNatsContext(name?: string, options: NatsContextOptions = {}): NatsContext {
  const dir = natsConfigDir(options);
  let selected = name;
  if (selected === undefined || selected === "") {
    selected = readOptional(join(dir, "context.txt"))?.trim();
    if (selected === undefined || selected === "") {
      throw new ConfigError(`no nats context is selected (${join(dir, "context.txt")})`, {
        code: "nats_context_missing",
        hint: "Name one (`nats.context` in the runctl config) or select one with `nats context select NAME`.",
      });
    }
  }
  if (!CONTEXT_NAME.test(selected) || selected.includes("..")) {
    throw new ConfigError(`${JSON.stringify(selected)} is not a nats context name`, {
      code: "nats_context_invalid",
    });
  }
  const path = join(dir, "context", `${selected}.json`);
  const text = readOptional(path);
  if (text === undefined) {
    throw new ConfigError(`nats context ${selected} does not exist (${path})`, {
      code: "nats_context_missing",
      hint: "List the saved ones with `nats context ls`, or create it with `nats context save`.",
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${path} is not JSON: ${error instanceof Error ? error.message : String(error)}`, {
      code: "nats_context_invalid",
    });
  }
  const parsed = NatsContextFile.safeParse(json);
  if (!parsed.success) {
    throw new ConfigError(`${path} is not a nats context: ${z.prettifyError(parsed.error)}`, {
      code: "nats_context_invalid",
      hint: "Fix or re-save it with `nats context save`.",
    });
  }
  const data = parsed.data;
  return {
    ...data,
    creds: expandHome(data.creds),
    ca: expandHome(data.ca),
    cert: expandHome(data.cert),
    key: expandHome(data.key),
    name: selected,
    path,
  };
}

/** Settings with the context (when named) filled in under the explicit ones; validated. */
export function resolveNatsSettings(
  settings: NatsSettings,
  options: NatsContextOptions = {},
): ParsedNatsSettings {
  const parsed = NatsSettings.safeParse(settings);
  if (!parsed.success) {
    throw new ConfigError(`NATS settings are not valid: ${z.prettifyError(parsed.error)}`, {
      code: "nats_settings_invalid",
    });
  }
  const own = parsed.data;
  validatePrefix(own.prefix);
  if (own.context === undefined || own.context === "") return own;
  const ctx = loadNatsContext(own.context, options);
  const fromContext: ParsedNatsSettings = dropUndefined({
    url: emptyToUndefined(ctx.url),
    token: emptyToUndefined(ctx.token),
    user: emptyToUndefined(ctx.user),
    pass: ctx.password,
    credsFile: emptyToUndefined(ctx.creds),
    inboxPrefix: emptyToUndefined(ctx.inbox_prefix),
    jsDomain: emptyToUndefined(ctx.jetstream_domain),
    jsApiPrefix: emptyToUndefined(ctx.jetstream_api_prefix),
    prefix: own.prefix,
  });
  const ctxTls = dropUndefined({
    ca: emptyToUndefined(ctx.ca),
    cert: emptyToUndefined(ctx.cert),
    key: emptyToUndefined(ctx.key),
  });
  const tls = { ...ctxTls, ...own.tls };
  const merged: ParsedNatsSettings = { ...fromContext, ...dropUndefined(own) };
  if (Object.keys(tls).length > 0) merged.tls = tls;
  return merged;
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if (error instanceof Error && (error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

function expandHome(path: string | undefined): string | undefined {
  if (path === undefined || path === "") return undefined;
  if (path === "~") return homedir();
  return path.startsWith("~/") ? join(homedir(), path.slice(2)) : path;
}

function emptyToUndefined(value: string | undefined): string | undefined {
  return value === "" ? undefined : value;
}

function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
