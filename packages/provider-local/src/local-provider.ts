/**
 * This machine as a Provider. A launched "resource" is a run: a detached
 * supervisor (agent-main) running the spec's command, identified by its run
 * id. Nothing to stop and start again (stopStart: false), nothing to preempt;
 * `terminate` stops the run, and honours `runctl:protected`.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  isProtected,
  type LaunchSpec,
  type Placement,
  type Provider,
  type ProviderCapabilities,
  ProviderError,
  type Resource,
  type ResourceFilter,
  type ResourceState,
  type RunMeta,
  runctlTags,
  TAG_CREATED_BY,
  TAG_CREATED_BY_VALUE,
  UserError,
} from "@runctl/core";
import { effectiveStatus, isPidAlive, listRuns, newRunId, readMeta, runDirOf } from "@runctl/tracker";

export const LOCAL_CAPABILITIES: ProviderCapabilities = {
  spot: false,
  stopStart: false,
  gpuTypes: [],
  regions: ["local"],
  interruptions: false,
};

export interface LocalProviderOptions {
  runsDir: string;
  checkpointsRoot: string;
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
}

// Built, the agent is this module's sibling; tests import the .ts sources and run the built agent.
const AGENT = fileURLToPath(
  new URL(import.meta.url.endsWith(".ts") ? "../dist/agent-main.js" : "./agent-main.js", import.meta.url),
);

function stateOf(meta: RunMeta): ResourceState {
  const status = effectiveStatus(meta).status;
  if (status === "running") return "running";
  if (status === "pending" || status === "provisioning") return "pending";
  return "terminated";
}

function resourceOf(meta: RunMeta): Resource {
  const tags = (meta.resource_tags ?? {}) as Record<string, string>;
  return {
    provider: "local",
    id: meta.id,
    name: meta.name,
    state: stateOf(meta),
    instanceType: "local",
    market: "on-demand",
    region: "local",
    tags,
    pricePerHour: 0,
    launchedAt: meta.started_at,
  };
}

export class LocalProvider implements Provider {
  readonly name = "local";
  readonly capabilities = LOCAL_CAPABILITIES;
  readonly #o: LocalProviderOptions;

  constructor(options: LocalProviderOptions) {
    this.#o = options;
  }

  async launch(spec: LaunchSpec): Promise<Placement> {
    if (!spec.command || spec.command.length === 0) {
      throw new UserError("The local provider needs a command to run", {
        code: "launch_no_command",
        hint: "Give LaunchSpec.command, e.g. ['python3', 'train.py'].",
      });
    }
    if (spec.market === "spot") {
      throw new ProviderError("This machine has no spot market", {
        code: "unsupported",
        hint: "Launch with market on-demand, or use a cloud provider for spot capacity.",
      });
    }
    const runId = spec.runId ?? newRunId();
    const tags = { ...spec.tags, ...runctlTags({ runId }) };
    const agentSpec = {
      runId,
      cwd: this.#o.cwd,
      runsDir: this.#o.runsDir,
      checkpointDir: join(this.#o.checkpointsRoot, runId),
      command: spec.command,
      tags,
    };
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...this.#o.env, ...spec.env })) if (v !== undefined) env[k] = v;
    mkdirSync(this.#o.runsDir, { recursive: true });
    const logPath = join(this.#o.runsDir, `.agent-${runId}.log`);
    const log = openSync(logPath, "a");
    const agent = spawn(process.execPath, [AGENT, JSON.stringify(agentSpec)], {
      cwd: this.#o.cwd,
      env,
      detached: true,
      stdio: ["ignore", log, log],
    });
    closeSync(log);
    agent.unref();
    const metaPath = join(runDirOf(this.#o.runsDir, runId), "meta.json");
    const deadline = Date.now() + 30_000;
    while (!existsSync(metaPath)) {
      if (Date.now() > deadline || agent.exitCode !== null) {
        throw new ProviderError(`The local agent for ${runId} did not start: ${tail(logPath)}`, {
          code: "launch_failed",
          hint: `Its output is in ${logPath}; running the command with \`runctl local\` shows the problem too.`,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const meta = await readMeta(runDirOf(this.#o.runsDir, runId));
    return {
      provider: "local",
      resourceId: runId,
      region: "local",
      market: "on-demand",
      instanceType: "local",
      pricePerHour: 0,
      launchedAt: meta.started_at,
    };
  }

  async status(resourceId: string): Promise<Resource> {
    return resourceOf(await this.#meta(resourceId));
  }

  async list(filter: ResourceFilter = {}): Promise<Resource[]> {
    const wanted = Object.entries(filter.tags ?? {});
    return (await listRuns(this.#o.runsDir))
      .map(resourceOf)
      .filter((r) => filter.managedOnly === false || r.tags[TAG_CREATED_BY] === TAG_CREATED_BY_VALUE)
      .filter((r) => !filter.states || filter.states.includes(r.state))
      .filter((r) => wanted.every(([k, v]) => r.tags[k] === v));
  }

  async stop(): Promise<Resource> {
    throw new ProviderError("A local run cannot be stopped and started again", {
      code: "unsupported",
      hint: "Terminate it (runctl stop <run>) and resume from a checkpoint with --resume auto.",
    });
  }

  async start(): Promise<Resource> {
    return this.stop();
  }

  async terminate(resourceId: string, options: { force?: boolean } = {}): Promise<Resource> {
    const meta = await this.#meta(resourceId);
    const resource = resourceOf(meta);
    if (isProtected(resource.tags) && !options.force) {
      throw new UserError(`Run ${resourceId} is tagged runctl:protected`, {
        code: "protected",
        hint: "Remove the tag, or terminate with force after confirming.",
      });
    }
    if (resource.state !== "terminated" && typeof meta.pid === "number" && isPidAlive(meta.pid)) {
      process.kill(meta.pid, "SIGTERM");
    }
    return resource.state === "terminated" ? resource : { ...resource, state: "stopping" };
  }

  async interruptions(): Promise<[]> {
    return [];
  }

  async #meta(resourceId: string): Promise<RunMeta> {
    try {
      return await readMeta(runDirOf(this.#o.runsDir, resourceId));
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === "run_not_found" || code === "run_bad_id") {
        throw new UserError(`No local run ${resourceId}`, {
          code: "not_found",
          hint: "List runs with `runctl runs`.",
          cause: error,
        });
      }
      throw error;
    }
  }
}

function tail(path: string): string {
  try {
    return readFileSync(path, "utf8").trim().split("\n").slice(-5).join("\n");
  } catch {
    return "no output";
  }
}
