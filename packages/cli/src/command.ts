/**
 * The base of every runctl command (and the one third-party plugins are invited
 * to extend): `--json` on every command, runctl's envelope on stdout, errors
 * mapped to exit codes 1 (user), 2 (provider) and 3 (configuration).
 */
import { homedir } from "node:os";
import { dirname } from "node:path";
import { Command } from "@oclif/core";
import { resolveCheckpointDir } from "@runctl/agent/checkpoints";
import type { NatsSettings } from "@runctl/control";
import {
  type LoadedConfig,
  type LoadedRunctlConfig,
  loadConfig,
  type Provider,
  type ProviderRegistry,
  type RunctlError,
} from "@runctl/core";
import {
  DirRunSource,
  type RunSource,
  resolveRunsDir,
  ServerRunSource,
  StoreRunSource,
} from "@runctl/tracker";
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
   * A registered provider, built from its configuration section: every launch
   * (`runctl local` included) goes through one of these.
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
    // The NATS client is loaded only by commands that use it.
    const { natsSettingsFromConfig } = await import("@runctl/control");
    const settings = natsSettingsFromConfig(config.nats);
    if (url) settings.url = url;
    return settings.url || settings.context ? settings : undefined;
  }

  /** The job server's client: `--server` over `[server] url` (RUNCTL_SERVER_URL); the token from `[server] token`. */
  protected async queue(serverUrl: string | undefined) {
    const { config } = await this.runctlConfig();
    return queueClient(serverUrl ?? config.server.url, config.server.token);
  }

  /**
   * Where to read a run: `--from` (a job server's http(s) URL, or an artifact
   * store URL holding synced run directories under `runs/`), else this
   * machine's runs directory — and for a job's run (`job-<id>…`) that is not
   * here, the configured job server.
   */
  protected async runSource(from: string | undefined, runId?: string): Promise<RunSource> {
    if (from !== undefined) {
      if (/^https?:\/\//.test(from)) {
        const { config } = await this.runctlConfig();
        return new ServerRunSource(queueClient(from, config.server.token));
      }
      return new StoreRunSource(await (await this.registry()).openArtifactStore(from));
    }
    const { runsDir, config } = await this.runPaths();
    const local = new DirRunSource(runsDir);
    if (runId === undefined || !/^job-\d+/.test(runId)) return local;
    try {
      await local.resolve(runId);
      return local;
    } catch (error) {
      if ((error as { code?: unknown }).code !== "run_not_found") throw error;
      return new ServerRunSource(queueClient(config.server.url, config.server.token));
    }
  }

  /** Progress and people-facing notes: always stderr, so `--json` stdout stays parseable. */
  protected progress(message: string): void {
    note(message);
  }

  protected override toSuccessJson(result: unknown): unknown {
    return { success: true, ...(result as JsonResult) };
  }

  protected override async catch(error: Error & { exitCode?: number }): Promise<unknown> {
    const err: RunctlError = fromOclifError(error, this.id);
    printError(err, this.jsonEnabled());
    process.exitCode = err.exitCode;
    return undefined;
  }
}
