/**
 * This machine as a Provider. A launched "resource" is a run: the runctl agent
 * (agent-main) started as a process of its own with a run spec, identified by
 * its run id. `runctl local` (foreground and `--detach`) launches through here
 * exactly as a cloud command launches through its provider. Nothing to stop
 * and start again (stopStart: false), nothing to preempt; `terminate` stops the
 * run, and honours `runctl:protected`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { resolveCheckpointDir } from "@runctl/agent/checkpoints";
import {
  AGENT_MAIN,
  AGENT_STATUS_FD_VARIABLE,
  AgentStatus,
  resolveLaunchCommand,
} from "@runctl/agent/launcher";
import {
  ConfigError,
  InternalError,
  isProtected,
  type LaunchSpec,
  type LocalConfig,
  type Placement,
  type Provider,
  type ProviderContext,
  ProviderError,
  parseAt,
  type Quote,
  type Resource,
  type ResourceFilter,
  type ResourceState,
  type RunMeta,
  RunSpec,
  type RunSpecInput,
  runctlTags,
  TAG_CREATED_BY,
  TAG_CREATED_BY_VALUE,
  UserError,
} from "@runctl/core";
import {
  effectiveStatus,
  isPidAlive,
  listRuns,
  newRunId,
  readMeta,
  resolveRunsDir,
  runDirOf,
  runLayout,
} from "@runctl/tracker";
import { registerAttachedRun } from "./foreground.ts";
import { LOCAL_CAPABILITIES, LocalLaunchOptions } from "./local-options.ts";

export interface LocalProviderOptions {
  runsDir: string;
  /** `local.checkpoint_dir`, resolved. */
  checkpointDir: string;
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
  /** `local.python`. */
  configPython?: string | undefined;
}

/** The provider the `local` definition creates: `[local]` resolved against the project root. */
export function createLocalProvider(config: LocalConfig, context: ProviderContext): LocalProvider {
  const cwd = context.cwd ?? process.cwd();
  const projectRoot = context.projectRoot ?? cwd;
  return new LocalProvider({
    runsDir: resolveRunsDir({ env: context.env, configRunsDir: config.runs_dir, projectRoot, cwd }),
    checkpointDir: resolveCheckpointDir({ cwd, configDir: config.checkpoint_dir, projectRoot }),
    cwd,
    env: context.env,
    configPython: config.python,
  });
}

/** Start-up of the agent (Node, run directory, ranks spawned) must not take longer than this. */
const AGENT_START_TIMEOUT_MS = 60_000;

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

  async quote(spec: LaunchSpec): Promise<Quote> {
    const refusal = refusalOf(spec);
    return {
      provider: "local",
      instanceType: spec.instanceType,
      market: "on-demand",
      region: "local",
      pricePerHour: 0,
      available: refusal === undefined,
      ...(refusal ? { unavailable: { code: refusal.code, message: refusal.message } } : {}),
    };
  }

  async launch(spec: LaunchSpec): Promise<Placement> {
    const refusal = refusalOf(spec);
    if (refusal) throw refusal;
    const options = LocalLaunchOptions.parse(spec.providerOptions ?? {});
    const command = spec.command as [string, ...string[]];
    const cwd = resolve(this.#o.cwd, options.cwd ?? ".");
    const env = { ...this.#o.env, ...spec.env };
    const [target, ...args] = command;
    const launch = resolveLaunchCommand({
      target,
      args,
      cwd,
      env,
      python: options.python,
      configPython: this.#o.configPython,
      raw: options.raw,
    });
    const runId = spec.runId ?? newRunId();
    const layout = runLayout(this.#o.runsDir, runId);
    const checkpointDir = options.checkpointDir
      ? resolve(cwd, options.checkpointDir.replaceAll("{run}", runId))
      : this.#o.checkpointDir;
    const runSpec: RunSpecInput = {
      v: 1,
      runId,
      continueRun: options.continueRun,
      ...(options.name ? { name: options.name } : {}),
      tags: options.runTags,
      resourceTags: { ...spec.tags, ...runctlTags({ runId }) },
      ...(options.config ? { config: options.config } : {}),
      command: launch.argv,
      commandKind: launch.kind,
      cwd,
      runsDir: this.#o.runsDir,
      checkpointDir,
      nprocPerNode: options.nprocPerNode,
      ...(options.gpus !== undefined ? { gpus: options.gpus } : {}),
      env: spec.env ?? {},
      ...(options.resume ? { resume: options.resume } : {}),
      control: options.nats ? { kind: "nats", nats: options.nats } : { kind: "file" },
      ...(options.graceMs !== undefined ? { graceMs: options.graceMs } : {}),
      echo: options.attach === "stdout" || options.attach === "stderr",
      stopWithParent: options.attach !== undefined,
    };
    mkdirSync(this.#o.runsDir, { recursive: true });
    if (options.attach !== undefined) {
      const started = await superviseHere(runSpec, this.#o.env, options.attach);
      return {
        provider: "local",
        resourceId: started.runId,
        region: "local",
        market: "on-demand",
        instanceType: "local",
        pricePerHour: 0,
        launchedAt: started.startedAt,
      };
    }
    const started = await startAgent(runSpec, {
      cwd,
      env: this.#o.env,
      logPath: layout.agentLog,
      ...(options.attach ? { attach: options.attach } : {}),
    });
    return {
      provider: "local",
      resourceId: started.runId,
      region: "local",
      market: "on-demand",
      instanceType: "local",
      pricePerHour: 0,
      launchedAt: (await readMeta(started.runDir)).started_at,
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

  /** The agent's own log: what it said when a run failed to start or could not write its directory. */
  async logs(resourceId: string, options: { tailLines?: number } = {}): Promise<string> {
    runDirOf(this.#o.runsDir, resourceId);
    let text: string;
    try {
      text = readFileSync(runLayout(this.#o.runsDir, resourceId).agentLog, "utf8");
    } catch {
      return "";
    }
    return options.tailLines
      ? text
          .split("\n")
          .slice(-options.tailLines - 1)
          .join("\n")
      : text;
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

/** Why this machine cannot run the spec, if it cannot. */
function refusalOf(spec: LaunchSpec): UserError | ProviderError | undefined {
  if (!spec.command || spec.command.length === 0) {
    return new UserError("The local provider needs a command to run", {
      code: "invalid_spec",
      hint: "Give LaunchSpec.command, e.g. ['python3', 'train.py'].",
    });
  }
  if (spec.market === "spot") {
    return new ProviderError("This machine has no spot market", {
      code: "unsupported",
      hint: "Launch with market on-demand, or use a cloud provider for spot capacity.",
    });
  }
  return undefined;
}

/**
 * A foreground run: the supervisor runs in this process (what agent-main does
 * in a process of its own for a detached run), echoing the ranks' output to
 * this process's streams. If this process is killed outright, the orphan
 * guard the supervisor starts stops the ranks.
 */
async function superviseHere(
  input: RunSpecInput,
  env: Readonly<Record<string, string | undefined>>,
  attach: "stdout" | "stderr" | "quiet",
): Promise<{ runId: string; startedAt: string }> {
  const { Supervisor } = await import("@runctl/agent/supervisor");
  const spec = parseAt(RunSpec, input, { what: "run spec", kind: "user", code: "bad_run_spec" });
  const terminal =
    attach === "quiet"
      ? undefined
      : { stdout: attach === "stderr" ? process.stderr : process.stdout, stderr: process.stderr };
  const startedAt = new Date().toISOString();
  const supervisor = await Supervisor.start(spec, {
    env,
    ...(terminal ? { terminal } : {}),
    onWarning: (message) => process.stderr.write(`runctl: warning: ${message}\n`),
    // Killed outright, this process cannot record the end: the orphan guard has the agent do it.
    orphaned: { argv: [process.execPath, AGENT_MAIN, "orphaned"] },
  });
  registerAttachedRun({
    runId: supervisor.runId,
    runDir: supervisor.runDir,
    done: supervisor.done,
    stop: (signal) => supervisor.stop(signal),
  });
  return { runId: supervisor.runId, startedAt };
}

interface StartOptions {
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
  logPath: string;
  attach?: "stdout" | "stderr" | "quiet";
}

/**
 * Starts agent-main detached (its own session: a Ctrl-C at the terminal
 * reaches the CLI, which forwards it) with the spec on stdin, and waits for its
 * status line: the run exists and its ranks are started, or the error that
 * stopped it. A detached agent's output goes to its log; an attached one's to
 * this process's streams.
 */
async function startAgent(
  spec: RunSpecInput,
  options: StartOptions,
): Promise<{ runId: string; runDir: string; pid: number }> {
  // An attached agent's output comes through pipes of its own, which this
  // process forwards: sharing this process's descriptors would share their
  // blocking mode, and a stalled reader would then block or fail both.
  const echo = options.attach === "stdout" || options.attach === "stderr";
  const log = echo ? undefined : openSync(options.logPath, "a");
  const out = echo ? "pipe" : log;
  const err = echo ? "pipe" : log;
  let agent: ChildProcess;
  try {
    agent = spawn(process.execPath, [AGENT_MAIN, "-"], {
      cwd: options.cwd,
      env: { ...options.env, [AGENT_STATUS_FD_VARIABLE]: "3" },
      detached: true,
      stdio: ["pipe", out, err, "pipe"],
    });
  } finally {
    if (log !== undefined) closeSync(log);
  }
  // An agent that dies at once closes its stdin and its status pipe; the missing status line says so.
  agent.on("error", () => undefined);
  agent.stdin?.on("error", () => undefined);
  agent.stdin?.end(JSON.stringify(spec));
  const statusPipe = agent.stdio[3] as NodeJS.ReadableStream;
  let text = "";
  statusPipe.setEncoding("utf8");
  statusPipe.on("data", (chunk: string) => {
    text += chunk;
  });
  const exited = new Promise<number | null>((r) => agent.once("exit", (code) => r(code)));
  const said = new Promise<void>((r) => statusPipe.once("end", () => r()));
  const timer = new Promise<"timeout">((r) => setTimeout(r, AGENT_START_TIMEOUT_MS, "timeout").unref());
  if (echo) {
    agent.stdout?.pipe(options.attach === "stderr" ? process.stderr : process.stdout, { end: false });
    agent.stderr?.pipe(process.stderr, { end: false });
  }
  const first = await Promise.race([said, timer]);
  agent.unref();
  (statusPipe as unknown as { destroy(): void }).destroy();
  const line = text.split("\n")[0] ?? "";
  const parsed = line ? AgentStatus.safeParse(safeJson(line)) : undefined;
  if (first === "timeout" || !parsed?.success) {
    const code = first === "timeout" ? "still starting" : `exit code ${await exited}`;
    // An attached agent wrote to this terminal, not to its log.
    throw new ProviderError(
      `The runctl agent did not start (${code})${echo ? "" : `: ${tail(options.logPath)}`}`,
      {
        code: "launch_failed",
        hint: echo ? "Its output is above." : `Its output is in ${options.logPath}.`,
      },
    );
  }
  const status = parsed.data;
  if (!status.ok) {
    const { kind, code, message, hint, details } = status.error;
    const errOptions = { code, ...(hint ? { hint } : {}), ...(details ? { details } : {}) };
    if (kind === "user") throw new UserError(message, errOptions);
    if (kind === "config") throw new ConfigError(message, errOptions);
    if (kind === "internal") throw new InternalError(message, errOptions);
    throw new ProviderError(message, errOptions);
  }
  return status;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function tail(path: string): string {
  try {
    return readFileSync(path, "utf8").trim().split("\n").slice(-5).join("\n");
  } catch {
    return "no output";
  }
}
