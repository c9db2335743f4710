/**
 * The base of every runctl command (and the one third-party plugins are invited
 * to extend): `--json` on every command, runctl's envelope on stdout, errors
 * mapped to exit codes 1 (user), 2 (provider) and 3 (configuration).
 */
import { homedir } from "node:os";
import { dirname } from "node:path";
import { Command } from "@oclif/core";
import { type NatsSettings, natsSettingsFromConfig } from "@runctl/control";
import {
  type LoadedConfig,
  type LoadedRunctlConfig,
  loadConfig,
  type ProviderRegistry,
  type RunctlError,
} from "@runctl/core";
import { resolveCheckpointDir } from "@runctl/provider-local";
import { resolveRunsDir } from "@runctl/tracker";
import { fromOclifError } from "./fatal.ts";
import { note, printError } from "./output.ts";
import { loadProviders, type ProviderLoad } from "./provider-hook.ts";
import { queueClient } from "./queue.ts";

export type JsonResult = Record<string, unknown>;

export interface RunPaths {
  projectRoot: string;
  runsDir: string;
  checkpointDir: string;
  config: LoadedRunctlConfig;
}

export abstract class RunctlCommand<T extends JsonResult | undefined = JsonResult> extends Command {
  static override enableJsonFlag = true;

  #providers: Promise<ProviderLoad> | undefined;

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

  /** The merged configuration, with every registered provider's section validated. */
  protected async runctlConfig(flags: Record<string, unknown> = {}): Promise<LoadedConfig> {
    const registry = await this.registry();
    return loadConfig({
      cwd: process.cwd(),
      env: process.env,
      homedir: homedir(),
      flags,
      sections: registry.configSections(),
    });
  }

  /**
   * Where runs and checkpoints live: `local.runs_dir` and `local.checkpoint_dir`
   * are relative to the project root (the directory of `.runctl.toml`), else
   * to the working directory; `$RUNCTL_RUNS_DIR` overrides the runs dir and a
   * `checkpointDir` given on the command line (relative to the working
   * directory) overrides the configured one.
   */
  protected async runPaths(checkpointDir?: string): Promise<RunPaths> {
    const loaded = await this.runctlConfig();
    const cwd = process.cwd();
    const projectRoot = loaded.projectFile ? dirname(loaded.projectFile) : cwd;
    return {
      projectRoot,
      runsDir: resolveRunsDir({
        env: process.env,
        configRunsDir: loaded.config.local.runs_dir,
        projectRoot,
        cwd,
      }),
      checkpointDir: resolveCheckpointDir({
        cwd,
        dir: checkpointDir,
        configDir: loaded.config.local.checkpoint_dir,
        projectRoot,
      }),
      config: loaded.config,
    };
  }

  /**
   * NATS settings from `[nats]` (and RUNCTL_NATS_*), with `--nats URL` on top;
   * undefined when neither names a server: then everything stays on this machine.
   */
  protected async natsSettings(url: string | undefined): Promise<NatsSettings | undefined> {
    const { config } = await this.runctlConfig();
    const settings = natsSettingsFromConfig(config.nats);
    if (url) settings.url = url;
    return settings.url || settings.context ? settings : undefined;
  }

  /** The job server's client: `--server` over `[server] url` (RUNCTL_SERVER_URL); the token from `[server] token`. */
  protected async queue(serverUrl: string | undefined) {
    const { config } = await this.runctlConfig();
    return queueClient(serverUrl ?? config.server.url, config.server.token);
  }

  /** Progress and people-facing notes: always stderr, so `--json` stdout stays parseable. */
  protected progress(message: string): void {
    note(message);
  }

  protected override toSuccessJson(result: unknown): unknown {
    return { success: true, ...(result as JsonResult) };
  }

  protected override async catch(error: Error & { exitCode?: number }): Promise<unknown> {
    const err: RunctlError = fromOclifError(error, this.id, this.argv);
    printError(err, this.jsonEnabled());
    process.exitCode = err.exitCode;
    return undefined;
  }
}
