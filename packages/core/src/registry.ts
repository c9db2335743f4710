/**
 * The provider registry. Provider plugins (first- or third-party) contribute
 * definitions through the `runctl:providers` oclif hook; the CLI collects them
 * here. Creation is lazy so listing providers never loads a cloud SDK, and every
 * provider handed out is wrapped so its answers are schema-checked.
 */
import { z } from "zod";
import { type ArtifactStore, type ArtifactStoreFactory, FileArtifactStore } from "./artifacts.ts";
import { ConfigError, isRunctlError, ProviderError, type RunctlError, UserError } from "./errors.ts";
import {
  Interruption,
  LaunchSpec,
  type LaunchSpec as LaunchSpecInput,
  LogsOptions,
  Placement,
  type Provider,
  ProviderCapabilities,
  type ProviderContext,
  type ProviderDefinition,
  type ProviderInfo,
  Quote,
  Resource,
} from "./provider.ts";
import { parseAt } from "./validation.ts";

/** The oclif hook event provider plugins implement. */
export const PROVIDERS_HOOK = "runctl:providers";

/**
 * A provider plugin's hook: return the definitions to register. Plugins need no
 * oclif types for this; oclif calls the default export of the hook file.
 */
export type ProvidersHook = (
  options: Record<string, unknown>,
) => Promise<ProviderDefinition | ProviderDefinition[]>;

export const PROVIDER_NAME = /^[a-z][a-z0-9-]{0,31}$/;

interface Entry {
  definition: ProviderDefinition;
  plugin: string | undefined;
}

export class ProviderRegistry {
  readonly #providers = new Map<string, Entry>();
  readonly #stores = new Map<string, ArtifactStoreFactory>([
    ["file:", async (url) => FileArtifactStore.fromUrl(url)],
  ]);

  register(definition: ProviderDefinition, options: { plugin?: string } = {}): void {
    const from = options.plugin ? ` (from ${options.plugin})` : "";
    if (!PROVIDER_NAME.test(definition.name)) {
      throw new ProviderError(`Provider name "${definition.name}"${from} is not valid`, {
        code: "provider_bad_definition",
        hint: "Provider names are lower-case letters, digits and dashes, starting with a letter (e.g. `gcp`).",
      });
    }
    parseAt(ProviderCapabilities, definition.capabilities, {
      what: `capabilities of provider "${definition.name}"${from}`,
      kind: "provider",
      code: "provider_bad_definition",
    });
    const existing = this.#providers.get(definition.name);
    if (existing) {
      throw new ProviderError(
        `Provider "${definition.name}" is registered twice${from}${existing.plugin ? ` and by ${existing.plugin}` : ""}`,
        {
          code: "provider_conflict",
          hint: "Uninstall one of the plugins with `runctl plugins uninstall <package>`.",
        },
      );
    }
    this.#providers.set(definition.name, { definition, plugin: options.plugin });
  }

  has(name: string): boolean {
    return this.#providers.has(name);
  }

  get(name: string): ProviderDefinition {
    const entry = this.#providers.get(name);
    if (!entry) {
      const known = [...this.#providers.keys()].sort();
      throw new UserError(`Unknown provider "${name}"`, {
        code: "provider_unknown",
        hint:
          known.length > 0
            ? `Known providers: ${known.join(", ")}. To add one: \`runctl plugins install provider-${name}\`.`
            : `No providers are registered. To add one: \`runctl plugins install provider-${name}\`.`,
      });
    }
    return entry.definition;
  }

  list(): ProviderInfo[] {
    return [...this.#providers.values()]
      .map(({ definition, plugin }) => ({
        name: definition.name,
        description: definition.description,
        capabilities: definition.capabilities,
        ...(plugin ? { plugin } : {}),
      }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Each provider's config section schema, keyed by its `.runctl.toml` section name. */
  configSections(): Record<string, z.ZodType> {
    return Object.fromEntries(
      [...this.#providers]
        .filter(([, e]) => !e.definition.coreSection)
        .map(([name, e]) => [name, e.definition.configSchema]),
    );
  }

  /** Builds a provider from its config section; the result validates its own answers. */
  async create(name: string, section: unknown, context: ProviderContext): Promise<Provider> {
    const definition = this.get(name);
    const config = parseAt(definition.configSchema, section ?? {}, {
      what: `[${name}] configuration`,
      kind: "config",
      code: "config_invalid",
    });
    return validatingProvider(await definition.create(config, context), definition.launchOptionsSchema);
  }

  registerArtifactStore(protocol: string, factory: ArtifactStoreFactory): void {
    const key = protocol.endsWith(":") ? protocol : `${protocol}:`;
    this.#stores.set(key, factory);
  }

  async openArtifactStore(url: string): Promise<ArtifactStore> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigError(`Artifact store URL "${url}" is not a URL`, {
        code: "artifact_bad_url",
        hint: "Use file:///absolute/path, or s3://bucket/prefix with the AWS provider installed.",
      });
    }
    const factory = this.#stores.get(parsed.protocol);
    if (!factory) {
      throw new ConfigError(`No artifact store handles ${parsed.protocol}// URLs`, {
        code: "artifact_unknown_scheme",
        hint: `Known: ${[...this.#stores.keys()].map((p) => `${p}//`).join(", ")}. Install the provider plugin that adds it.`,
      });
    }
    return factory(parsed);
  }
}

/**
 * Wraps a provider so that whatever a plugin returns is checked against the
 * contract's schemas, and whatever it throws becomes one of our errors. Plugins
 * may carry their own copy of @runctl/core (or none), so their errors are
 * recognised by shape (`code`, `kind`, `hint`), not by class. A spec is
 * checked before it reaches the provider (`invalid_spec`), its
 * `providerOptions` against the provider's `launchOptionsSchema`.
 *
 * The wrapper has exactly the Provider methods: anything else a provider
 * class offers is not reachable through the registry.
 */
export function validatingProvider(inner: Provider, launchOptionsSchema?: z.ZodType): Provider {
  const call = async <S extends z.ZodType>(method: string, schema: S, body: () => Promise<unknown>) => {
    let value: unknown;
    try {
      value = await body();
    } catch (error) {
      throw normaliseProviderError(error, `${inner.name}.${method}`);
    }
    return parseAt(schema, value, {
      what: `answer of ${inner.name}.${method}()`,
      kind: "provider",
    }) as z.output<S>;
  };
  const checkSpec = (spec: LaunchSpecInput): LaunchSpecInput => {
    const resolved = parseAt(LaunchSpec, spec, {
      what: `launch spec for ${inner.name}`,
      kind: "user",
      code: "invalid_spec",
    });
    if (launchOptionsSchema) {
      resolved.providerOptions = parseAt(launchOptionsSchema, resolved.providerOptions, {
        what: `options for provider ${inner.name}`,
        kind: "user",
        code: "invalid_spec",
      }) as Record<string, unknown>;
    } else if (Object.keys(resolved.providerOptions).length > 0) {
      throw new UserError(`Provider ${inner.name} takes no provider options`, {
        code: "invalid_spec",
        hint: `Remove ${Object.keys(resolved.providerOptions).join(", ")} from providerOptions.`,
      });
    }
    return resolved;
  };
  const logs = inner.logs?.bind(inner);
  return {
    name: inner.name,
    capabilities: inner.capabilities,
    launch: (spec, signal) => call("launch", Placement, () => inner.launch(checkSpec(spec), signal)),
    quote: (spec) => call("quote", Quote, () => inner.quote(checkSpec(spec))),
    status: (id) => call("status", Resource, () => inner.status(id)),
    list: (filter) => call("list", z.array(Resource), () => inner.list(filter)),
    stop: (id) => call("stop", Resource, () => inner.stop(id)),
    start: (id) => call("start", Resource, () => inner.start(id)),
    terminate: (id, options) => call("terminate", Resource, () => inner.terminate(id, options)),
    interruptions: (ids) => call("interruptions", z.array(Interruption), () => inner.interruptions(ids)),
    ...(logs
      ? {
          logs: (id: string, options?: LogsOptions) =>
            call("logs", z.string(), () => logs(id, LogsOptions.parse(options ?? {}))),
        }
      : {}),
  };
}

interface ErrorShape {
  message?: unknown;
  code?: unknown;
  kind?: unknown;
  hint?: unknown;
  details?: unknown;
}

export function normaliseProviderError(error: unknown, where: string): RunctlError {
  if (isRunctlError(error)) return error;
  const shape = (typeof error === "object" && error !== null ? error : {}) as ErrorShape;
  const message = typeof shape.message === "string" ? shape.message : String(error);
  if (typeof shape.code === "string" && /^[a-z][a-z0-9_]*$/.test(shape.code)) {
    const options = {
      code: shape.code,
      ...(typeof shape.hint === "string" ? { hint: shape.hint } : {}),
      ...(typeof shape.details === "object" && shape.details !== null
        ? { details: shape.details as Record<string, unknown> }
        : {}),
      cause: error,
    };
    if (shape.kind === "user") return new UserError(message, options);
    if (shape.kind === "config") return new ConfigError(message, options);
    return new ProviderError(message, options);
  }
  return new ProviderError(`${where} failed: ${message}`, {
    code: "provider_failed",
    hint: "The provider plugin raised an unexpected error; rerun with DEBUG=* for details or report it to the plugin's authors.",
    cause: error,
  });
}
