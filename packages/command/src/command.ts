/**
 * The base of every runctl command, first- or third-party: `--json` on every
 * command, runctl's envelope on stdout (`{"success": true, …}` or
 * `{"success": false, "error": {code, message, hint}}`), errors mapped to exit
 * codes 1 (user), 2 (provider) and 3 (configuration), the registered providers
 * and the merged configuration.
 *
 * A plugin depends on this package (and on `@runctl/core`), never on the CLI
 * package `runctl`: a plugin installed with `runctl plugins install` then
 * brings no second copy of runctl.
 */
import { homedir } from "node:os";
import { dirname } from "node:path";
import { Command } from "@oclif/core";
import {
  type LoadedConfig,
  loadConfig,
  type Provider,
  type ProviderRegistry,
  type RunctlError,
} from "@runctl/core";
import { fromOclifError } from "./errors.ts";
import { note, printError } from "./output.ts";
import { loadProviders, type ProviderLoad } from "./providers.ts";

export type JsonResult = Record<string, unknown>;

export abstract class RunctlCommand<T extends JsonResult | undefined = JsonResult> extends Command {
  static override enableJsonFlag = true;

  #providers: Promise<ProviderLoad> | undefined;
  #config: Promise<LoadedConfig> | undefined;

  abstract override run(): Promise<T>;

  /** Registered providers, from every installed plugin's `runctl:providers` hook. Loaded once, on demand. */
  protected providers(): Promise<ProviderLoad> {
    this.#providers ??= loadProviders(this.config).then((load) => {
      for (const failure of load.failures) {
        this.progress(
          `Warning: plugin ${failure.plugin} failed to register its providers: ${failure.message}`,
        );
      }
      return load;
    });
    return this.#providers;
  }

  protected async registry(): Promise<ProviderRegistry> {
    return (await this.providers()).registry;
  }

  /**
   * The merged configuration, with every registered provider's section
   * validated. Loaded once per command when no flags are layered on top.
   */
  protected runctlConfig(flags: Record<string, unknown> = {}): Promise<LoadedConfig> {
    const load = async () =>
      loadConfig({
        cwd: process.cwd(),
        env: process.env,
        homedir: homedir(),
        flags,
        sections: (await this.registry()).configSections(),
      });
    if (Object.keys(flags).length > 0) return load();
    this.#config ??= load();
    return this.#config;
  }

  /**
   * The provider `name`, configured from its section of `.runctl.toml`, as the
   * registry hands it out: every answer checked against the contract's
   * schemas, errors turned into runctl's. Every launch (`runctl local`
   * included) goes through one of these. Methods a provider has beyond the
   * `Provider` contract are not reachable through it; a plugin's own commands
   * that need them build the provider from their own definition.
   */
  protected async provider(name: string): Promise<Provider> {
    const [registry, loaded] = await Promise.all([this.registry(), this.runctlConfig()]);
    const cwd = process.cwd();
    return registry.create(name, (loaded.config as Record<string, unknown>)[name], {
      env: process.env,
      dataDir: this.config.dataDir,
      cwd,
      projectRoot: loaded.projectFile ? dirname(loaded.projectFile) : cwd,
    });
  }

  /** Progress and people-facing notes: always stderr, so `--json` stdout stays parseable. */
  protected progress(message: string): void {
    note(message);
  }

  /** How a failure is reported; override to give a better hint for this command's usage errors. */
  protected toRunctlError(error: unknown): RunctlError {
    return fromOclifError(error, this.id);
  }

  protected override toSuccessJson(result: unknown): unknown {
    return { success: true, ...(result as JsonResult) };
  }

  protected override async catch(error: Error & { exitCode?: number }): Promise<unknown> {
    const err = this.toRunctlError(error);
    printError(err, this.jsonEnabled());
    process.exitCode = err.exitCode;
    return undefined;
  }
}
