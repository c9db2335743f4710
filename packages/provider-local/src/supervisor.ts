/**
 * The supervisor: runs a training command on this machine as one or many ranks
 * and keeps its run directory truthful. It needs no TTY and no CLI process (it
 * is also the remote agent's core); all state is in the run directory.
 *
 * - Each rank is spawned in its own process group, so signals reach the rank and
 *   everything it started (data-loader workers, shells).
 * - `stop()` forwards SIGINT/SIGTERM to every group and sends SIGKILL after the
 *   grace period; the run ends `cancelled`.
 * - When one rank fails, the others are stopped the same way; the run ends
 *   `failed` with that rank's exit code and the last lines of output.
 * - Output of every rank goes to `output.log` (prefixed `[rank N]` when there
 *   are several) and to the terminal streams given, line by line.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Writable } from "node:stream";
import {
  ControlBridge,
  controlChannelMeta,
  FileQueue,
  NatsChannel,
  type NatsSettings,
} from "@runctl/control";
import type { RunStatus } from "@runctl/core";
import { acquireLock, type DirLock, RunWriter } from "@runctl/tracker";
import { writeGitInfo, writeRequirements } from "./capture.ts";
import type { LaunchCommand } from "./launch-command.ts";
import { type OrphanGuard, startOrphanGuard } from "./orphan-guard.ts";
import { killGroup, reapGroup } from "./process-group.ts";
import { withPythonClient } from "./python-client.ts";
import { freePort, rankEnv } from "./rank-env.ts";
import { type SignalWatch, watchSignalOps } from "./signal-op.ts";
import { SystemSampler } from "./system-sampler.ts";

export interface SuperviseOptions {
  launch: LaunchCommand;
  cwd: string;
  runsDir: string;
  /** Use this id for a new run (e.g. chosen by `--detach` before the supervisor starts). */
  runId?: string;
  /** Add an attempt to this existing run directory instead of creating a run. */
  continueRunDir?: string;
  name?: string;
  tags?: string[];
  config?: Record<string, unknown>;
  nprocPerNode?: number;
  /** `CUDA_VISIBLE_DEVICES` for every rank, e.g. "0,1". */
  gpus?: string;
  checkpointDir: string;
  resumeFrom?: string;
  /** Also pass `--resume <path>` to the script. */
  resumeArg?: boolean;
  env: Readonly<Record<string, string | undefined>>;
  /** SIGKILL this long after SIGINT/SIGTERM. Default 10 s. */
  graceMs?: number;
  terminal?: { stdout: Writable; stderr: Writable };
  systemIntervalMs?: number;
  onWarning?: (message: string) => void;
  /**
   * NATS settings: the run's commands arrive over NATS and are bridged into the
   * node-local queue the ranks read; acks and controls go back (docs/protocol.md).
   */
  nats?: NatsSettings;
  /**
   * Called synchronously the moment the last rank has exited, before the
   * supervisor reaps, captures and writes meta.json: a caller that must not
   * lose the outcome if this process dies next (the queue worker) records it here.
   */
  onRanksExited?: (outcome: RanksOutcome) => void;
  /** Cloud-style tags when a Provider launched the run (`runctl:protected`, `CreatedBy`, …). */
  resourceTags?: Record<string, string>;
}

/** What every rank's exit amounts to, known before the run directory is finished. */
export interface RanksOutcome {
  status: Extract<RunStatus, "completed" | "failed" | "cancelled">;
  exitCode: number;
  error: string | null;
}

export interface RunOutcome {
  runId: string;
  runDir: string;
  status: RunStatus;
  /** What `runctl local` exits with: 0, the failing rank's code, or 128+signal when cancelled. */
  exitCode: number;
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
const TAIL_LINES = 20;

interface Rank {
  rank: number;
  child: ChildProcess;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
}

export class Supervisor {
  readonly runId: string;
  readonly runDir: string;
  readonly done: Promise<RunOutcome>;

  readonly #options: SuperviseOptions;
  readonly #writer: RunWriter;
  readonly #lock: DirLock;
  readonly #ranks: Rank[] = [];
  readonly #tail: string[] = [];
  #log: number;
  #stopSignal: NodeJS.Signals | undefined;
  #failure: { rank: number; exitCode: number } | undefined;
  #killTimer: NodeJS.Timeout | undefined;
  #sampleTimer: NodeJS.Timeout | undefined;
  #captures: Promise<void> = Promise.resolve();
  #signals: SignalWatch | undefined;
  #bridge: { bridge: ControlBridge; channel: NatsChannel } | undefined;
  #guard: OrphanGuard | undefined;

  private constructor(options: SuperviseOptions, writer: RunWriter, lock: DirLock) {
    this.#options = options;
    this.#writer = writer;
    this.#lock = lock;
    this.runId = writer.id;
    this.runDir = writer.dir;
    this.#log = openSync(join(writer.dir, "output.log"), "a");
    this.done = new Promise((resolveDone) => {
      this.#resolveDone = resolveDone;
    });
  }

  #resolveDone: (outcome: RunOutcome) => void = () => undefined;

  static async start(options: SuperviseOptions): Promise<Supervisor> {
    const world = options.nprocPerNode ?? 1;
    const checkpointDir = resolve(options.cwd, options.checkpointDir);
    let writer: RunWriter;
    if (options.continueRunDir) {
      writer = RunWriter.open(options.continueRunDir);
      writer.startAttempt({ writer: "supervisor" });
    } else {
      writer = RunWriter.create({
        runsDir: options.runsDir,
        ...(options.runId ? { id: options.runId } : {}),
        ...(options.name ? { name: options.name } : {}),
        ...(options.tags ? { tags: options.tags } : {}),
        ...(options.config ? { config: options.config } : {}),
        command: options.launch.argv,
        writer: "supervisor",
        meta: {
          world_size: world,
          control: controlChannelMeta(options.nats),
          checkpoint_dir: checkpointDir,
          ...(options.resumeFrom ? { resumed_from: options.resumeFrom } : {}),
          ...(options.resourceTags ? { resource_tags: options.resourceTags } : {}),
        },
      });
    }
    let lock: DirLock;
    try {
      lock = acquireLock(checkpointDir, { runId: writer.id });
    } catch (error) {
      writer.finish("failed", { error: error instanceof Error ? error.message : String(error) });
      throw error;
    }
    if (lock.warning) options.onWarning?.(lock.warning);
    const supervisor = new Supervisor({ ...options, checkpointDir }, writer, lock);
    try {
      if (options.nats) await supervisor.#openBridge(options.nats);
    } catch (error) {
      lock.release();
      closeSync(supervisor.#log);
      writer.finish("failed", { error: `NATS: ${error instanceof Error ? error.message : String(error)}` });
      throw error;
    }
    await supervisor.#spawnRanks(world);
    return supervisor;
  }

  /** Stops the run: the signal goes to every rank's process group, SIGKILL follows after the grace period. */
  stop(signal: NodeJS.Signals = "SIGTERM"): void {
    this.#stopSignal ??= signal;
    this.#terminateAll(signal);
  }

  async #openBridge(settings: NatsSettings): Promise<void> {
    const controlDir = join(this.runDir, "control");
    mkdirSync(controlDir, { recursive: true });
    const channel = await NatsChannel.connect(settings, this.runId);
    const bridge = new ControlBridge({
      remote: channel,
      local: new FileQueue(controlDir),
      onWarning: (message) => this.#options.onWarning?.(message),
    }).start();
    this.#bridge = { bridge, channel };
  }

  async #spawnRanks(world: number): Promise<void> {
    const o = this.#options;
    const port = await freePort();
    const base: Record<string, string> = {};
    for (const [k, v] of Object.entries(o.env)) if (v !== undefined) base[k] = v;
    const controlDir = join(this.runDir, "control");
    mkdirSync(controlDir, { recursive: true });
    const resumeArgs = o.resumeFrom && o.resumeArg ? ["--resume", o.resumeFrom] : [];
    const [cmd, ...args] = [...o.launch.argv, ...resumeArgs];
    const shared: Record<string, string> = {
      ...base,
      PYTHONUNBUFFERED: "1",
      PYTHONPATH: withPythonClient(base.PYTHONPATH),
      RUNCTL_RUN_ID: this.runId,
      RUNCTL_RUN_DIR: this.runDir,
      WHIRR_RUN_ID: this.runId,
      WHIRR_RUN_DIR: this.runDir,
      RUNCTL_CHECKPOINT_DIR: o.checkpointDir,
      // The run's node-local control queue (docs/control.md): RuntimeController() finds it here.
      RUNCTL_CONTROL_DIR: controlDir,
      TRAINCTL_CHECKPOINT_DIR: o.checkpointDir,
      TRAINCTL_DEVICE: o.gpus !== undefined ? "cuda" : (base.TRAINCTL_DEVICE ?? "cpu"),
      ...(o.gpus !== undefined ? { CUDA_VISIBLE_DEVICES: o.gpus } : {}),
      ...(o.resumeFrom ? { RUNCTL_RESUME_FROM: o.resumeFrom } : {}),
    };
    for (let rank = 0; rank < world; rank++) {
      const env = {
        ...shared,
        ...rankEnv({ rank, worldSize: world, masterAddr: "127.0.0.1", masterPort: port }),
      };
      const child = spawn(cmd as string, args, {
        cwd: o.cwd,
        env,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
      });
      const entry: Rank = { rank, child };
      this.#ranks.push(entry);
      const prefix = world > 1 ? `[rank ${rank}] ` : "";
      this.#pipe(child.stdout, prefix, o.terminal?.stdout);
      this.#pipe(child.stderr, prefix, o.terminal?.stderr);
      child.on("error", (error) => {
        this.#line(`${prefix}runctl: could not start ${cmd}: ${error.message}\n`, o.terminal?.stderr);
        // A process that never started emits no "close" of its own.
        if (child.pid === undefined) this.#onExit(entry, 127, null);
      });
      child.on("close", (code, signal) => this.#onExit(entry, code, signal));
    }
    const groups = this.#ranks.flatMap((r) => (r.child.pid ? [r.child.pid] : []));
    // `runctl stop --force` kills these groups when the supervisor itself does not answer.
    this.#writer.updateMeta({ rank_pgids: groups });
    this.#guard = startOrphanGuard(groups, Math.ceil((o.graceMs ?? 10_000) / 1000), o.env);
    this.#signals = watchSignalOps(
      controlDir,
      (signal) => {
        if (signal === "SIGINT" || signal === "SIGTERM") this.stop(signal);
        else for (const r of this.#ranks) if (!r.exit && r.child.pid) killGroup(r.child.pid, signal);
      },
      (message) => o.onWarning?.(message),
    );
    this.#writer.startHeartbeat(undefined, (error) => o.onWarning?.(`heartbeat: ${String(error)}`));
    const sampler = new SystemSampler(groups, o.gpus ?? o.env.CUDA_VISIBLE_DEVICES);
    const sample = () =>
      sampler
        .sample()
        .then((record) => this.#writer.appendSystem(record))
        .catch((error: unknown) => o.onWarning?.(`system metrics: ${String(error)}`));
    void sample();
    this.#sampleTimer = setInterval(sample, o.systemIntervalMs ?? 10_000);
    this.#sampleTimer.unref();
    const python = o.launch.kind === "python" ? o.launch.argv[0] : undefined;
    this.#captures = Promise.all([
      writeGitInfo(this.runDir, o.cwd),
      writeRequirements(this.runDir, o.cwd, python),
    ])
      .then(([git, requirements]) => {
        this.#writer.updateMeta({ ...git, ...requirements });
      })
      .catch((error: unknown) => o.onWarning?.(`capture: ${String(error)}`));
  }

  #pipe(stream: NodeJS.ReadableStream | null, prefix: string, terminal: Writable | undefined): void {
    if (!stream) return;
    let partial = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      const text = partial + chunk;
      const end = text.lastIndexOf("\n");
      if (end === -1) {
        partial = text;
        return;
      }
      partial = text.slice(end + 1);
      const lines = text.slice(0, end + 1);
      this.#line(prefix ? lines.replace(/^(?=.)/gm, prefix) : lines, terminal);
    });
    stream.on("end", () => {
      if (partial) this.#line(`${prefix}${partial}\n`, terminal);
      partial = "";
    });
  }

  #line(text: string, terminal: Writable | undefined): void {
    writeSync(this.#log, text);
    terminal?.write(text);
    for (const line of text.split("\n")) {
      if (!line) continue;
      this.#tail.push(line);
      if (this.#tail.length > TAIL_LINES) this.#tail.shift();
    }
  }

  #onExit(entry: Rank, code: number | null, signal: NodeJS.Signals | null): void {
    if (entry.exit) return;
    entry.exit = { code, signal };
    const exitCode = code ?? 128 + (SIGNAL_NUMBERS[signal ?? ""] ?? 0);
    if (exitCode !== 0 && !this.#stopSignal && !this.#failure) {
      this.#failure = { rank: entry.rank, exitCode };
      this.#terminateAll("SIGTERM");
    }
    // Whatever the rank left behind in its group (workers, subshells) goes with it.
    if (entry.child.pid) killGroup(entry.child.pid, "SIGKILL");
    if (this.#ranks.every((r) => r.exit)) {
      this.#options.onRanksExited?.(this.#outcome());
      void this.#finish();
    }
  }

  /** How the run ends, once every rank has exited. */
  #outcome(): RanksOutcome {
    if (this.#stopSignal) {
      return { status: "cancelled", exitCode: 128 + (SIGNAL_NUMBERS[this.#stopSignal] ?? 15), error: null };
    }
    if (this.#failure) {
      const { exitCode } = this.#failure;
      const who = this.#ranks.length > 1 ? `rank ${this.#failure.rank}` : "the process";
      return {
        status: "failed",
        exitCode,
        error: `${who} exited with code ${exitCode}\n${this.#tail.join("\n")}`,
      };
    }
    return { status: "completed", exitCode: 0, error: null };
  }

  #terminateAll(signal: NodeJS.Signals): void {
    for (const r of this.#ranks) if (!r.exit && r.child.pid) killGroup(r.child.pid, signal);
    this.#killTimer ??= setTimeout(() => {
      for (const r of this.#ranks) if (!r.exit && r.child.pid) killGroup(r.child.pid, "SIGKILL");
    }, this.#options.graceMs ?? 10_000);
  }

  async #finish(): Promise<void> {
    clearTimeout(this.#killTimer);
    clearInterval(this.#sampleTimer);
    this.#signals?.stop();
    this.#guard?.dismiss();
    const leftovers = await Promise.all(
      this.#ranks.map((r) => (r.child.pid ? reapGroup(r.child.pid) : true)),
    );
    if (leftovers.includes(false))
      this.#options.onWarning?.("some processes of the run did not exit after SIGKILL");
    await this.#captures;
    if (this.#bridge) {
      await this.#bridge.bridge.stop();
      await this.#bridge.channel.close().catch(() => undefined);
    }
    const { status, exitCode, error } = this.#outcome();
    this.#writer.finish(status, { exitCode, error });
    this.#lock.release();
    closeSync(this.#log);
    this.#resolveDone({ runId: this.runId, runDir: this.runDir, status, exitCode });
  }
}
