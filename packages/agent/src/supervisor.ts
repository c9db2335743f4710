/**
 * The supervisor: runs a run spec (core's RunSpec) on this machine as one or
 * many ranks and keeps its run directory truthful. It needs no TTY and no CLI
 * process; the agent process (agent-main) and the queue worker run it, and all
 * state is in the run directory.
 *
 * - Each rank is spawned in its own process group, so signals reach the rank and
 *   everything it started (data-loader workers, shells).
 * - `stop()` forwards SIGINT/SIGTERM to every group and sends SIGKILL after the
 *   grace period; the run ends `cancelled`.
 * - When one rank fails, the others are stopped the same way; the run ends
 *   `failed` with that rank's exit code and the last lines of output.
 * - Output of every rank goes to `output.log` (prefixed `[rank N]` when there
 *   are several) and to the terminal streams given, line by line; a terminal
 *   that stops reading loses output (output.log keeps it), never memory.
 * - The run ends when every rank's main process has exited: output still held
 *   open by something the rank left behind is drained for a bounded time, and
 *   what it left behind (in its process group, or in a session of its own
 *   that still carries the run's marker variable) is stopped like the ranks.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Writable } from "node:stream";
import type { AckRecord, ControlBridge, NatsChannel } from "@runctl/control";
import { FileQueue } from "@runctl/control/queue";
import { type CommandDraft, type RunMeta, type RunSpec, type RunStatus, UserError } from "@runctl/core";
import { acquireLock, type DirLock, effectiveStatus, RunWriter, readMeta } from "@runctl/tracker";
import { writeGitInfo, writeRequirements } from "./capture.ts";
import { exitCodeOfSignal } from "./exit-status.ts";
import { type OrphanGuard, startOrphanGuard } from "./orphan-guard.ts";
import { endGroup, killGroup, markedProcesses, reapPids } from "./process-group.ts";
import { withPythonClient } from "./python-client.ts";
import { freePort, rankEnv } from "./rank-env.ts";
import { type SignalWatch, watchSignalOps } from "./signal-op.ts";
import { SystemSampler } from "./system-sampler.ts";

/** Name the run and the supervising process for agent-main's `orphaned` mode. */
export const ORPHANED_RUN_DIR_VARIABLE = "RUNCTL_ORPHANED_RUN_DIR";
export const ORPHANED_PID_VARIABLE = "RUNCTL_ORPHANED_PID";

/** What the process running the supervisor provides besides the spec. */
export interface SupervisorHooks {
  /** The agent's own environment: the ranks get it, then the spec's `env` on top. */
  env: Readonly<Record<string, string | undefined>>;
  /** Where ranks' output is echoed besides output.log. */
  terminal?: { stdout: Writable; stderr: Writable };
  systemIntervalMs?: number;
  onWarning?: (message: string) => void;
  /**
   * Called synchronously the moment the last rank has exited, before the
   * supervisor reaps, captures and writes meta.json: a caller that must not
   * lose the outcome if this process dies next (the queue worker) records it here.
   */
  onRanksExited?: (outcome: RanksOutcome) => void;
  /**
   * Set when this process is not an agent of its own but a foreground CLI: if it
   * is killed outright, the orphan guard stops the ranks and then runs this
   * (agent-main's `orphaned` mode) to record the run as cancelled.
   */
  orphaned?: { argv: readonly string[] };
}

/** What every rank's exit amounts to, known before the run directory is finished. */
export interface RanksOutcome {
  status: Extract<RunStatus, "completed" | "failed" | "cancelled">;
  exitCode: number;
  error: string | null;
}

/** Why and when a run ends `preempted` (docs/protocol.md, "Preemption"). */
export interface Preemption {
  /** When the machine heard it would be reclaimed (ISO 8601). */
  at: string;
  reason: string;
  /** What meta.json records besides (`preemption`): how the checkpoint went, the deadline. */
  detail?: Record<string, unknown>;
}

export interface RunOutcome {
  runId: string;
  runDir: string;
  status: RunStatus;
  /** What `runctl local` exits with: 0, the failing rank's code, or 128+signal when cancelled. */
  exitCode: number;
}

const TAIL_LINES = 20;
/** How long output still held open by a rank's leftovers is read after the rank exits. */
const DRAIN_MS = 2_000;
/** Output a terminal has not taken yet; past it, lines go to output.log only. */
const TERMINAL_BACKLOG_BYTES = 8 << 20;
/** The variable that marks every process of one supervised attempt, wherever it moved. */
const MARKER_VARIABLE = "RUNCTL_ATTEMPT_MARK";

interface Rank {
  rank: number;
  child: ChildProcess;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
  /** Resolves when both output pipes closed, or the drain time after exit ran out. */
  drained: Promise<void>;
}

export class Supervisor {
  readonly runId: string;
  readonly runDir: string;
  readonly done: Promise<RunOutcome>;

  readonly #spec: RunSpec;
  readonly #hooks: SupervisorHooks;
  readonly #mark = randomBytes(8).toString("hex");
  readonly #writer: RunWriter;
  readonly #lock: DirLock;
  readonly #ranks: Rank[] = [];
  readonly #tail: string[] = [];
  #log: number;
  #stopSignal: NodeJS.Signals | undefined;
  #failure: { rank: number; exitCode: number; signal: NodeJS.Signals | null } | undefined;
  #killTimer: NodeJS.Timeout | undefined;
  #sampleTimer: NodeJS.Timeout | undefined;
  #captures: Promise<void> = Promise.resolve();
  /** What the captures found once the ranks had already exited: written with the run's end. */
  #captured: Record<string, unknown> | undefined;
  #signals: SignalWatch | undefined;
  #bridge: { bridge: ControlBridge; channel: NatsChannel } | undefined;
  #guard: OrphanGuard | undefined;
  #finishing = false;
  #preemption: Preemption | undefined;
  readonly #dropped = new Set<Writable>();

  private constructor(spec: RunSpec, hooks: SupervisorHooks, writer: RunWriter, lock: DirLock) {
    this.#spec = spec;
    this.#hooks = hooks;
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

  /** Merges into the run's meta.json (under its file mutex), during the run or after it ended. */
  updateMeta(patch: (current: RunMeta) => Partial<RunMeta>): void {
    this.#writer.updateMeta(patch);
  }

  static async start(spec: RunSpec, hooks: SupervisorHooks): Promise<Supervisor> {
    const world = spec.nprocPerNode;
    const checkpointDir = resolve(spec.cwd, spec.checkpointDir);
    let writer: RunWriter;
    if (spec.continueRun) {
      const runDir = join(spec.runsDir, spec.runId);
      await refuseLiveRun(runDir);
      writer = RunWriter.open(runDir);
      writer.startAttempt({ writer: "supervisor" });
    } else {
      writer = RunWriter.create({
        runsDir: spec.runsDir,
        id: spec.runId,
        ...(spec.name ? { name: spec.name } : {}),
        tags: spec.tags,
        ...(spec.config ? { config: spec.config } : {}),
        command: spec.command,
        writer: "supervisor",
        meta: {
          world_size: world,
          checkpoint_dir: checkpointDir,
          control: controlRecord(spec),
          ...(spec.resume ? { resumed_from: spec.resume.source ?? spec.resume.from } : {}),
          ...(Object.keys(spec.resourceTags).length > 0 ? { resource_tags: spec.resourceTags } : {}),
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
    if (lock.warning) hooks.onWarning?.(lock.warning);
    const supervisor = new Supervisor({ ...spec, checkpointDir }, hooks, writer, lock);
    try {
      if (spec.control.kind === "nats") await supervisor.#openBridge(spec.control.nats);
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
    if (this.#stopSignal) {
      // A second Ctrl-C means now: no more grace for the ranks.
      for (const r of this.#ranks) if (!r.exit && r.child.pid) killGroup(r.child.pid, "SIGKILL");
      return;
    }
    this.#stopSignal = signal;
    this.#terminateAll(signal);
  }

  /** How many ranks the run has: the acks a command to every rank waits for. */
  get worldSize(): number {
    return this.#spec.nprocPerNode;
  }

  /**
   * Sends every rank a control command, as `runctl ctl` does, and returns its id. With a NATS
   * channel it is published there (the bridge appends it to the node-local queue, so the
   * queue's seqs stay the channel's); when that fails within `natsTimeoutMs` (the network is
   * going too) it goes straight into the node-local queue, which the ranks read all the same.
   */
  async control(draft: CommandDraft, natsTimeoutMs = 5_000): Promise<string> {
    const id = draft.id ?? randomBytes(16).toString("hex");
    const command = { ...draft, id };
    const local = () => new FileQueue(join(this.runDir, "control")).publish(command);
    if (!this.#bridge) return (await local()).command.id;
    const channel = this.#bridge.channel;
    let timer: NodeJS.Timeout | undefined;
    try {
      // The run's credential may publish to its subjects but not count them (publish() would).
      const published = await Promise.race([
        channel.publishUnsequenced(command),
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${natsTimeoutMs} ms`)), natsTimeoutMs);
        }),
      ]);
      return published.id;
    } catch (error) {
      this.#hooks.onWarning?.(
        `control ${draft.path} over NATS: ${error instanceof Error ? error.message : String(error)}; sent through the node-local queue`,
      );
      return (await local()).command.id;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The ranks' acks of command `id` (one per rank, the first each wrote), once every rank has
   * answered, every rank has exited, or `signal` aborts: then those that came.
   */
  async acks(id: string, signal: AbortSignal, pollMs = 100): Promise<AckRecord[]> {
    const queue = new FileQueue(join(this.runDir, "control"));
    for (;;) {
      const byRank = new Map<number, AckRecord>();
      for (const ack of (await queue.readAcks({ commandId: id })) as AckRecord[]) {
        if (ack.rank !== undefined && ack.rank >= 0 && !byRank.has(ack.rank)) byRank.set(ack.rank, ack);
      }
      const acks = [...byRank.values()].sort((a, b) => (a.rank ?? 0) - (b.rank ?? 0));
      const living = this.#ranks.filter((r) => !r.exit && !byRank.has(r.rank)).length;
      if (acks.length >= this.worldSize || living === 0 || signal.aborted) return acks;
      await new Promise<void>((resolveWait) => {
        const timer = setTimeout(done, pollMs);
        signal.addEventListener("abort", done, { once: true });
        function done() {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          resolveWait();
        }
      });
    }
  }

  /**
   * The run will end `preempted` once it is stopped. Recorded in meta.json at once
   * (`preempted_at`), so an agent restarted before the run ended knows not to run it again.
   */
  markPreempted(preemption: Preemption): void {
    if (this.#preemption) return;
    this.#preemption = preemption;
    try {
      this.#writer.updateMeta({ preempted_at: preemption.at });
    } catch (error) {
      this.#hooks.onWarning?.(`meta.json: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  async #openBridge(config: Extract<RunSpec["control"], { kind: "nats" }>["nats"]): Promise<void> {
    const controlDir = join(this.runDir, "control");
    mkdirSync(controlDir, { recursive: true });
    // NATS's client loads only for runs steered over NATS.
    const { ControlBridge, FileQueue, NatsChannel, natsSettingsFromConfig } = await import("@runctl/control");
    const channel = await NatsChannel.connect(natsSettingsFromConfig(config), this.runId);
    const bridge = new ControlBridge({
      remote: channel,
      local: new FileQueue(controlDir),
      onWarning: (message) => this.#hooks.onWarning?.(message),
    }).start();
    this.#bridge = { bridge, channel };
  }

  async #spawnRanks(world: number): Promise<void> {
    const o = this.#spec;
    const hooks = this.#hooks;
    const port = await freePort();
    const base: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...hooks.env, ...o.env })) if (v !== undefined) base[k] = v;
    const controlDir = join(this.runDir, "control");
    mkdirSync(controlDir, { recursive: true });
    const resumeArgs = o.resume?.passArg ? ["--resume", o.resume.from] : [];
    const [cmd, ...args] = [...o.command, ...resumeArgs];
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
      ...(o.resume ? { RUNCTL_RESUME_FROM: o.resume.from } : {}),
      [MARKER_VARIABLE]: this.#mark,
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
      const prefix = world > 1 ? `[rank ${rank}] ` : "";
      const closed = Promise.all([
        this.#pipe(child.stdout, prefix, hooks.terminal?.stdout),
        this.#pipe(child.stderr, prefix, hooks.terminal?.stderr),
      ]);
      const entry: Rank = {
        rank,
        child,
        // Something the rank started may hold its pipes open long after it exited: read
        // what comes for a while, then stop listening rather than wait on it.
        drained: new Promise<void>((resolveExit) => child.once("exit", () => resolveExit())).then(() => {
          let timer: NodeJS.Timeout | undefined;
          const late = new Promise((r) => {
            timer = setTimeout(r, DRAIN_MS);
          });
          return Promise.race([closed, late]).then(() => {
            clearTimeout(timer);
            child.stdout?.destroy();
            child.stderr?.destroy();
          });
        }),
      };
      this.#ranks.push(entry);
      child.on("error", (error) => {
        this.#line(`${prefix}runctl: could not start ${cmd}: ${error.message}\n`, hooks.terminal?.stderr);
        // A process that never started emits no "exit" of its own.
        if (child.pid === undefined) this.#onExit(entry, 127, null);
      });
      child.on("exit", (code, signal) => this.#onExit(entry, code, signal));
    }
    const groups = this.#ranks.flatMap((r) => (r.child.pid ? [r.child.pid] : []));
    // `runctl stop --force` kills these groups when the supervisor itself does not answer.
    this.#writer.updateMeta({ rank_pgids: groups });
    this.#guard = startOrphanGuard(
      groups,
      Math.ceil(o.graceMs / 1000),
      base,
      hooks.orphaned
        ? {
            argv: hooks.orphaned.argv,
            env: { [ORPHANED_RUN_DIR_VARIABLE]: this.runDir, [ORPHANED_PID_VARIABLE]: String(process.pid) },
          }
        : undefined,
    );
    this.#signals = watchSignalOps(
      controlDir,
      (signal) => {
        if (signal === "SIGINT" || signal === "SIGTERM") this.stop(signal);
        else for (const r of this.#ranks) if (!r.exit && r.child.pid) killGroup(r.child.pid, signal);
      },
      (message) => hooks.onWarning?.(message),
    );
    this.#writer.startHeartbeat(undefined, (error) => hooks.onWarning?.(`heartbeat: ${String(error)}`));
    const sampler = new SystemSampler(groups, o.gpus ?? base.CUDA_VISIBLE_DEVICES);
    const sample = () =>
      sampler
        .sample()
        .then((record) => this.#writer.appendSystem(record))
        .catch((error: unknown) => hooks.onWarning?.(`system metrics: ${String(error)}`));
    void sample();
    this.#sampleTimer = setInterval(sample, hooks.systemIntervalMs ?? 10_000);
    this.#sampleTimer.unref();
    const python = o.commandKind === "python" ? o.command[0] : undefined;
    this.#captures = Promise.all([
      writeGitInfo(this.runDir, o.cwd),
      writeRequirements(this.runDir, o.cwd, python),
    ])
      .then(([git, requirements]) => {
        // A run that is already ending records them in its last write (one meta.json write,
        // with its fsyncs, fewer on a short run's way out).
        if (this.#finishing) this.#captured = { ...git, ...requirements };
        else this.#writer.updateMeta({ ...git, ...requirements });
      })
      .catch((error: unknown) => hooks.onWarning?.(`capture: ${String(error)}`));
  }

  /** Resolves when the stream has closed. */
  #pipe(stream: NodeJS.ReadableStream | null, prefix: string, terminal: Writable | undefined): Promise<void> {
    if (!stream) return Promise.resolve();
    const closed = new Promise<void>((r) => stream.once("close", () => r()));
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
    const flush = () => {
      if (partial) this.#line(`${prefix}${partial}\n`, terminal);
      partial = "";
    };
    stream.on("end", flush);
    stream.on("close", flush);
    return closed;
  }

  #line(text: string, terminal: Writable | undefined): void {
    writeSync(this.#log, text);
    if (terminal) this.#echo(terminal, text);
    for (const line of text.split("\n")) {
      if (!line) continue;
      this.#tail.push(line);
      if (this.#tail.length > TAIL_LINES) this.#tail.shift();
    }
  }

  /**
   * A terminal that stops reading (a pager, `| (sleep 60; cat)`) must not make
   * the agent hold the run's whole output: past a backlog, lines are only in
   * output.log, and the terminal is told once.
   */
  #echo(terminal: Writable, text: string): void {
    if (terminal.writableLength > TERMINAL_BACKLOG_BYTES) {
      if (!this.#dropped.has(terminal)) {
        this.#dropped.add(terminal);
        terminal.write(
          `\nrunctl: this terminal is not keeping up; the rest is in ${join(this.runDir, "output.log")}\n`,
        );
      }
      return;
    }
    terminal.write(text);
  }

  #onExit(entry: Rank, code: number | null, signal: NodeJS.Signals | null): void {
    if (entry.exit) return;
    entry.exit = { code, signal };
    const exitCode = code ?? exitCodeOfSignal(signal);
    if (exitCode !== 0 && !this.#stopSignal && !this.#failure) {
      this.#failure = { rank: entry.rank, exitCode, signal };
      this.#terminateAll("SIGTERM");
    }
    if (this.#ranks.every((r) => r.exit) && !this.#finishing) {
      this.#finishing = true;
      const outcome = this.#outcome();
      // Only a host agent preempts, and it does not watch this hook: to others a preempted run was stopped.
      this.#hooks.onRanksExited?.({
        ...outcome,
        status: outcome.status === "preempted" ? "cancelled" : outcome.status,
      });
      void this.#finish();
    }
  }

  /** How the run ends, once every rank has exited. */
  #outcome(): Omit<RanksOutcome, "status"> & { status: RanksOutcome["status"] | "preempted" } {
    if (this.#preemption && this.#stopSignal) {
      return { status: "preempted", exitCode: exitCodeOfSignal(this.#stopSignal), error: null };
    }
    if (this.#stopSignal) {
      return { status: "cancelled", exitCode: exitCodeOfSignal(this.#stopSignal), error: null };
    }
    if (this.#failure) {
      const { exitCode, signal } = this.#failure;
      const who = this.#ranks.length > 1 ? `rank ${this.#failure.rank}` : "the process";
      const how = signal ? `was killed by ${signal} (exit code ${exitCode})` : `exited with code ${exitCode}`;
      return { status: "failed", exitCode, error: `${who} ${how}\n${this.#tail.join("\n")}` };
    }
    return { status: "completed", exitCode: 0, error: null };
  }

  #terminateAll(signal: NodeJS.Signals): void {
    for (const r of this.#ranks) if (!r.exit && r.child.pid) killGroup(r.child.pid, signal);
    this.#killTimer ??= setTimeout(() => {
      for (const r of this.#ranks) if (!r.exit && r.child.pid) killGroup(r.child.pid, "SIGKILL");
    }, this.#spec.graceMs);
  }

  /**
   * What the ranks left behind: the rest of their process groups, and
   * processes that moved to a session of their own but still carry this
   * attempt's marker. They get SIGTERM, and SIGKILL after the grace period.
   */
  async #stopLeftovers(): Promise<boolean> {
    const groups = this.#ranks.flatMap((r) => (r.child.pid ? [r.child.pid] : []));
    for (const pgid of groups) killGroup(pgid, "SIGTERM");
    const marked = markedProcesses(MARKER_VARIABLE, this.#mark);
    for (const pid of marked) {
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        // gone already
      }
    }
    const grace = this.#spec.graceMs;
    const [groupsGone, markedGone] = await Promise.all([
      Promise.all(groups.map((pgid) => endGroup(pgid, grace))),
      reapPids(marked, grace),
    ]);
    return !groupsGone.includes(false) && markedGone;
  }

  async #finish(): Promise<void> {
    clearTimeout(this.#killTimer);
    clearInterval(this.#sampleTimer);
    this.#signals?.stop();
    await Promise.all(this.#ranks.map((r) => r.drained));
    const clean = await this.#stopLeftovers();
    this.#guard?.dismiss();
    if (!clean) this.#hooks.onWarning?.("some processes of the run did not exit after SIGKILL");
    await this.#captures;
    if (this.#bridge) {
      await this.#bridge.bridge.stop();
      await this.#bridge.channel.close().catch(() => undefined);
    }
    const { status, exitCode, error } = this.#outcome();
    if (status === "preempted" && this.#preemption) {
      const { at, reason, detail } = this.#preemption;
      this.#writer.updateMeta({ preempted_at: at, preemption: { reason, ...detail } });
    }
    this.#writer.finish(status, { exitCode, error, ...(this.#captured ? { meta: this.#captured } : {}) });
    this.#lock.release();
    closeSync(this.#log);
    this.#resolveDone({ runId: this.runId, runDir: this.runDir, status, exitCode });
  }
}

/** What meta.json says about the run's control channel: never credentials. */
function controlRecord(spec: RunSpec): Record<string, string> {
  if (spec.control.kind === "file") return { kind: "file" };
  const { url, prefix, context } = spec.control.nats;
  return {
    kind: "nats",
    prefix,
    ...(url ? { url: withoutCredentials(url) } : {}),
    ...(context ? { context } : {}),
  };
}

function withoutCredentials(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = "";
    parsed.password = "";
    return parsed.href.replace(/\/$/, "");
  } catch {
    return url.replace(/\/\/[^@/]*@/, "//");
  }
}

/** A new attempt of a run that is still running would leave two writers in one directory. */
async function refuseLiveRun(runDir: string): Promise<void> {
  const meta = await readMeta(runDir);
  if (effectiveStatus(meta).status === "running") {
    throw new UserError(`Run ${meta.id} is still running (pid ${meta.pid ?? "unknown"})`, {
      code: "run_live",
      hint: `Stop it first (runctl stop ${meta.id}), or start a new run without --run.`,
    });
  }
}
