/**
 * The base of runctl's own commands: @runctl/command's RunctlCommand (the one
 * plugins extend: `--json`, the envelope, exit codes, providers,
 * configuration) plus what only the CLI's commands need: run and checkpoint
 * directories, NATS settings, the job server's client, and the `--` hint for
 * commands that pass arguments on to a script.
 */
import { dirname } from "node:path";
import { RunctlCommand as BaseCommand, type JsonResult } from "@runctl/command";
import type { NatsSettings } from "@runctl/control";
import type { LoadedRunctlConfig, ProviderRegistry, RunctlError } from "@runctl/core";
import type { RunSource } from "@runctl/tracker";
import { fromOclifError } from "./fatal.ts";

// @runctl/control (NATS), @runctl/tracker and @runctl/provider-local are imported where they are
// used, not here: every command extends this class, and loading NATS's client for
// `runctl providers` or `runctl config get` would cost more than the command itself.

export type { JsonResult };

export interface RunPaths {
  projectRoot: string;
  runsDir: string;
  checkpointDir: string;
  config: LoadedRunctlConfig;
}

export abstract class RunctlCommand<T extends JsonResult | undefined = JsonResult> extends BaseCommand<T> {
  #s3Registered = false;

  /**
   * The registry, with `s3://` artifact stores (`@runctl/s3`, configured by
   * `[s3]`) opened on demand, so the AWS SDK loads only when a command opens one.
   */
  protected override async registry(): Promise<ProviderRegistry> {
    const registry = await super.registry();
    if (!this.#s3Registered) {
      this.#s3Registered = true;
      registry.registerArtifactStore("s3:", async (url) => {
        const [{ s3ArtifactStoreFactory, s3SettingsFromConfig }, { config }] = await Promise.all([
          import("@runctl/s3"),
          this.runctlConfig(),
        ]);
        return s3ArtifactStoreFactory(s3SettingsFromConfig(config.s3))(url);
      });
    }
    return registry;
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
    const [{ resolveCheckpointDir }, { resolveRunsDir }] = await Promise.all([
      import("@runctl/agent/checkpoints"),
      import("@runctl/tracker"),
    ]);
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
    const { queueClient } = await import("./queue.ts");
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
      const { ServerRunSource, StoreRunSource } = await import("@runctl/tracker");
      if (/^https?:\/\//.test(from)) return new ServerRunSource(await this.queue(from));
      return new StoreRunSource(await (await this.registry()).openArtifactStore(from));
    }
    const [{ runsDir }, { DirRunSource, ServerRunSource }] = await Promise.all([
      this.runPaths(),
      import("@runctl/tracker"),
    ]);
    const local = new DirRunSource(runsDir);
    if (runId === undefined || !/^job-\d+/.test(runId)) return local;
    try {
      await local.resolve(runId);
      return local;
    } catch (error) {
      if ((error as { code?: unknown }).code !== "run_not_found") throw error;
      return new ServerRunSource(await this.queue(undefined));
    }
  }

  protected override toRunctlError(error: unknown): RunctlError {
    return fromOclifError(error, this.id, this.argv);
  }
}
