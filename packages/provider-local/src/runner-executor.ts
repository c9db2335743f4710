/**
 * Runner tasks on a queue worker (docs/runner.md): finds the task's runner
 * and service on the server, fetches and unpacks the runner's code bundle
 * once per bundle key, and hands the call to the service's warm processes
 * (runner-service.ts). Services of runners that were closed are stopped when
 * `reap()` finds their runner gone.
 */
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { pythonClientDir } from "@runctl/agent";
import { type ArtifactStore, extractBundle, FileArtifactStore } from "@runctl/core";
import { type JobResponse, type QueueClient, QueueServerError, type RunnerResponse } from "@runctl/tracker";
import { jobEnvFrom } from "./job-env.ts";
import { type CallOutcome, ServicePool } from "./runner-service.ts";

export interface RunnerExecutorOptions {
  client: QueueClient;
  /** Bundles unpack to `<dataDir>/runner/bundles/<key>`, executor output to `<dataDir>/runner/logs`. */
  dataDir: string;
  /** The interpreter of the warm processes; default `python3`. */
  python?: string;
  /** Opens a runner's store (file:// without it). */
  openStore?: (url: string) => Promise<ArtifactStore>;
  /** Warm processes per stateless service (the worker's slots). */
  maxProcesses: number;
  env: Readonly<Record<string, string | undefined>>;
  graceMs: number;
}

export class RunnerExecutor {
  readonly #o: RunnerExecutorOptions;
  readonly #runners = new Map<string, RunnerResponse>();
  readonly #bundles = new Map<string, Promise<string>>();
  readonly #pools = new Map<string, ServicePool>();

  constructor(options: RunnerExecutorOptions) {
    this.#o = options;
  }

  /** Services with warm processes here. */
  get pools(): number {
    return this.#pools.size;
  }

  /**
   * Runs one task. `cudaDevices` is the `CUDA_VISIBLE_DEVICES` its process gets ("" hides every GPU,
   * undefined leaves the worker's own): stateless services get a pool per GPU set; a stateful
   * instance keeps the set of its first call, since its state lives in that one process.
   */
  async execute(job: JobResponse, signal: AbortSignal, cudaDevices?: string): Promise<CallOutcome> {
    const name = job.runner;
    const serviceId = job.service;
    const method = job.command_argv[3];
    if (!name || !serviceId || !method || !job.config) {
      return { ok: false, error: `job ${job.id} is not a well-formed runner task` };
    }
    const cached = this.#runners.get(name)?.services.find((s) => s.id === serviceId);
    let key = poolKey(name, serviceId, cached?.stateful ?? false, cudaDevices);
    let pool = this.#pools.get(key);
    if (pool === undefined) {
      let runner: RunnerResponse;
      try {
        runner = await this.#runner(name, serviceId);
      } catch (error) {
        return { ok: false, error: (error as Error).message };
      }
      const service = runner.services.find((s) => s.id === serviceId);
      if (!service) return { ok: false, error: `runner ${name} has no service ${serviceId}` };
      key = poolKey(name, serviceId, service.stateful, cudaDevices);
      let cwd: string;
      try {
        cwd = await this.#bundle(runner);
      } catch (error) {
        return {
          ok: false,
          error: `could not fetch the code bundle ${runner.bundle_key}: ${(error as Error).message}`,
        };
      }
      pool = this.#pools.get(key);
      if (pool === undefined) {
        const env = jobEnvFrom(this.#o.env);
        if (cudaDevices !== undefined) env.CUDA_VISIBLE_DEVICES = cudaDevices;
        const pythonPath = [
          cwd,
          pythonClientDir(),
          ...(env.PYTHONPATH ? env.PYTHONPATH.split(delimiter) : []),
        ];
        pool = new ServicePool(
          {
            python: this.#o.python ?? "python3",
            cwd,
            env: { ...env, PYTHONPATH: pythonPath.join(delimiter) },
            storeUrl: runner.store_url,
            prefix: runner.prefix,
            target: service.target,
            stateful: service.stateful,
            logFile: join(this.#o.dataDir, "runner", "logs", `${name}.${serviceId}.log`),
            graceMs: this.#o.graceMs,
          },
          // A GPU set is one process's: two calls on the same GPUs at once would share them.
          cudaDevices ? 1 : this.#o.maxProcesses,
        );
        this.#pools.set(key, pool);
      }
    }
    return pool.call(job.id, method, job.config, signal);
  }

  async #runner(name: string, serviceId: string): Promise<RunnerResponse> {
    const cached = this.#runners.get(name);
    if (cached?.services.some((s) => s.id === serviceId)) return cached;
    const runner = await this.#o.client.getRunner(name);
    this.#runners.set(name, runner);
    return runner;
  }

  /** The unpacked bundle's directory; fetched and unpacked once per key, concurrent callers share the work. */
  #bundle(runner: RunnerResponse): Promise<string> {
    const cacheKey = `${runner.store_url}#${runner.bundle_key}`;
    let dir = this.#bundles.get(cacheKey);
    if (dir === undefined) {
      dir = this.#unpack(runner);
      this.#bundles.set(cacheKey, dir);
      dir.catch(() => this.#bundles.delete(cacheKey));
    }
    return dir;
  }

  async #unpack(runner: RunnerResponse): Promise<string> {
    const root = join(this.#o.dataDir, "runner", "bundles");
    const target = join(root, runner.bundle_key);
    if (await isDirectory(target)) return target;
    await mkdir(root, { recursive: true });
    const store = this.#o.openStore
      ? await this.#o.openStore(runner.store_url)
      : FileArtifactStore.fromUrl(new URL(runner.store_url));
    const temp = join(root, `.${runner.bundle_key}.${process.pid}.${Date.now()}`);
    const archive = `${temp}.tar.gz`;
    try {
      await store.getFile(`bundles/${runner.bundle_key}.tar.gz`, archive);
      await extractBundle(archive, temp);
      try {
        await rename(temp, target);
      } catch (error) {
        // Another worker on this data dir cannot exist (the lock), but an earlier crash may have left one.
        if (!(await isDirectory(target))) throw error;
      }
    } finally {
      await rm(archive, { force: true });
      await rm(temp, { recursive: true, force: true });
    }
    return target;
  }

  /** Stops the warm processes of runners that were closed on the server. */
  async reap(): Promise<void> {
    const names = new Set([...this.#pools.keys()].map((key) => key.split("/")[0] as string));
    for (const name of names) {
      try {
        const runner = await this.#o.client.getRunner(name, { retries: 0 });
        this.#runners.set(name, runner);
        // A runner closed and opened again under the same name has new services: the old ones' processes go.
        const live = new Set(runner.services.map((svc) => `${name}/${svc.id}`));
        await this.#closeWhere((key) => key.startsWith(`${name}/`) && !live.has(key.split("#")[0] as string));
      } catch (error) {
        if (error instanceof QueueServerError && error.code === "runner_not_found") {
          this.#runners.delete(name);
          await this.#closeWhere((key) => key.startsWith(`${name}/`));
        }
      }
    }
  }

  async close(): Promise<void> {
    await this.#closeWhere(() => true);
  }

  async #closeWhere(match: (key: string) => boolean): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const [key, pool] of this.#pools) {
      if (!match(key)) continue;
      this.#pools.delete(key);
      closing.push(pool.close());
    }
    await Promise.all(closing);
  }
}

function poolKey(
  runner: string,
  service: string,
  stateful: boolean,
  cudaDevices: string | undefined,
): string {
  return stateful ? `${runner}/${service}` : `${runner}/${service}#${cudaDevices ?? "-"}`;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
