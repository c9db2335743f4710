import { spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Args, Flags } from "@oclif/core";
import { checkOpenServer } from "@runctl/control";
import { UserError } from "@runctl/core";
import { latestCheckpoint, resolveLaunchCommand, Supervisor } from "@runctl/provider-local";
import { newRunId, runDirOf } from "@runctl/tracker";
import { RunctlCommand } from "../command.ts";
import { checkGpuList, parseJsonObjectFlag } from "../flag-values.ts";
import { RunEndedError } from "../run-errors.ts";

export default class Local extends RunctlCommand {
  static override summary = "Run a training script on this machine as a tracked, steerable run.";
  static override description =
    `A .py script runs with --python, else local.python from the configuration, else the active virtualenv, else \`uv run\` (PEP 723 inline metadata honoured) when uv is installed, else python3. Other files must be executable. Arguments after \`--\` go to the script.

The script sees RUNCTL_RUN_ID, RUNCTL_RUN_DIR, RUNCTL_CHECKPOINT_DIR (and TRAINCTL_CHECKPOINT_DIR, TRAINCTL_DEVICE, WHIRR_RUN_ID, WHIRR_RUN_DIR), torchrun's RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT, and can \`import runctl\` with nothing installed.

Ctrl-C (SIGINT) and SIGTERM go to every rank's process group; after the grace period the rest is killed and the run is cancelled. The exit code is the script's.`;
  static override examples = [
    "<%= config.bin %> local train.py -- --epochs 10",
    "<%= config.bin %> local --nproc-per-node 2 train.py",
    "<%= config.bin %> local --resume auto train.py",
    "<%= config.bin %> local --detach train.py && <%= config.bin %> logs <run> -f",
  ];
  static override strict = false;
  static override args = {
    target: Args.string({ description: "Script (train.py) or command to run.", required: true }),
  };
  static override flags = {
    "nproc-per-node": Flags.integer({
      description: "Ranks to start (torchrun-compatible).",
      default: 1,
      min: 1,
      max: 256,
    }),
    gpus: Flags.string({ description: "GPU indices for CUDA_VISIBLE_DEVICES, e.g. 0,1." }),
    python: Flags.string({ description: "Python interpreter for .py scripts." }),
    name: Flags.string({ description: "Run name (default: the script's name)." }),
    tag: Flags.string({ description: "Tag the run (repeatable).", multiple: true, default: [] }),
    config: Flags.string({ description: "Run config as a JSON object (recorded in config.json)." }),
    resume: Flags.string({
      description: "Resume from a checkpoint: `auto` (newest in the checkpoint dir) or a path.",
    }),
    "resume-arg": Flags.boolean({
      description: "Also pass `--resume <path>` to the script.",
      default: false,
    }),
    "checkpoint-dir": Flags.string({ description: "Checkpoint directory (default: local.checkpoint_dir)." }),
    run: Flags.string({ description: "Start a new attempt of this existing run instead of a new run." }),
    detach: Flags.boolean({
      description: "Run in the background; follow with `runctl logs <run> -f`.",
      default: false,
    }),
    grace: Flags.integer({ description: "Seconds between SIGTERM/SIGINT and SIGKILL.", default: 10, min: 0 }),
    nats: Flags.string({
      description: "NATS server for runtime control (overrides [nats] url), e.g. nats://10.0.0.5:4222.",
    }),
    quiet: Flags.boolean({
      description: "Do not echo the run's output here (it is still in output.log).",
      default: false,
    }),
    "run-id": Flags.string({ hidden: true, description: "Id for the new run (used by --detach)." }),
  };

  /** `runctl exec` runs its target as a plain command. */
  protected static raw = false;

  async run(): Promise<Record<string, unknown>> {
    const { flags, argv } = await this.parse(this.constructor as typeof Local);
    const { target, scriptArgs, resume } = this.launchArgs(argv as string[], flags.resume);
    const paths = await this.runPaths(flags["checkpoint-dir"]);
    const cwd = process.cwd();
    if (flags.gpus !== undefined) checkGpuList(flags.gpus);
    let runConfig: Record<string, unknown> | undefined;
    if (flags.config !== undefined)
      runConfig = parseJsonObjectFlag(flags.config, "--config", "bad_run_config", '{"lr": 0.01}');
    const launch = resolveLaunchCommand({
      target,
      args: scriptArgs,
      cwd,
      env: process.env,
      python: flags.python,
      configPython: paths.config.local.python,
      raw: (this.constructor as typeof Local).raw,
    });
    const checkpointDir = paths.checkpointDir;
    const resumeFrom = await this.resumePath(resume, checkpointDir, cwd);
    const continueRunDir = flags.run ? await this.existingRun(paths.runsDir, flags.run) : undefined;

    if (flags.detach) return this.detach(paths.runsDir);
    const nats = await this.natsSettings(flags.nats);
    // Anyone who can reach an open server can steer this run (docs/protocol.md, "Security").
    const openServer = nats ? await checkOpenServer(nats) : undefined;
    if (openServer !== undefined) this.progress(`Warning: ${openServer}`);

    // Handlers go in before the ranks exist: Ctrl-C while they start must stop them, not orphan them.
    let requested: NodeJS.Signals | undefined;
    let running: Supervisor | undefined;
    const forward = (signal: NodeJS.Signals) => () => {
      requested = signal === "SIGHUP" ? "SIGTERM" : signal;
      running?.stop(requested);
    };
    const handlers = (["SIGINT", "SIGTERM", "SIGHUP"] as const).map((s) => [s, forward(s)] as const);
    for (const [signal, handler] of handlers) process.on(signal, handler);
    const supervisor = await Supervisor.start({
      launch,
      cwd,
      runsDir: paths.runsDir,
      ...(flags["run-id"] ? { runId: flags["run-id"] } : {}),
      ...(continueRunDir ? { continueRunDir } : {}),
      ...(flags.name ? { name: flags.name } : {}),
      tags: flags.tag,
      ...(runConfig ? { config: runConfig } : {}),
      nprocPerNode: flags["nproc-per-node"],
      ...(flags.gpus !== undefined ? { gpus: flags.gpus } : {}),
      checkpointDir,
      ...(resumeFrom ? { resumeFrom } : {}),
      resumeArg: flags["resume-arg"],
      env: process.env,
      graceMs: flags.grace * 1000,
      // With --json, stdout is for the one JSON document: the run's output goes to stderr.
      ...(flags.quiet
        ? {}
        : {
            terminal: {
              stdout: this.jsonEnabled() ? process.stderr : process.stdout,
              stderr: process.stderr,
            },
          }),
      onWarning: (message) => this.progress(`Warning: ${message}`),
      ...(nats ? { nats } : {}),
    });
    running = supervisor;
    if (requested) supervisor.stop(requested);
    this.progress(`runctl: run ${supervisor.runId} (${supervisor.runDir})`);
    const outcome = await supervisor.done;
    for (const [signal, handler] of handlers) process.off(signal, handler);

    const run = {
      id: outcome.runId,
      dir: outcome.runDir,
      status: outcome.status,
      exit_code: outcome.exitCode,
    };
    if (outcome.status !== "completed") {
      throw new RunEndedError(`Run ${outcome.runId} ${outcome.status} (exit code ${outcome.exitCode})`, {
        code: `run_${outcome.status}`,
        hint: `See its output with \`runctl logs ${outcome.runId}\` and its record with \`runctl show ${outcome.runId}\`.`,
        exitCode: outcome.exitCode,
        details: { run },
      });
    }
    this.progress(`runctl: run ${outcome.runId} completed`);
    return { run };
  }

  /** Splits the positional arguments: `<target> [script args…]`. */
  protected launchArgs(
    positional: string[],
    resume: string | undefined,
  ): { target: string; scriptArgs: string[]; resume: string | undefined } {
    return { target: positional[0] as string, scriptArgs: positional.slice(1), resume };
  }

  private async resumePath(
    resume: string | undefined,
    checkpointDir: string,
    cwd: string,
  ): Promise<string | undefined> {
    if (resume === undefined) return undefined;
    if (resume === "auto") {
      const latest = existsSync(checkpointDir) ? await latestCheckpoint(checkpointDir) : null;
      if (!latest) {
        this.progress(`runctl: no checkpoint in ${checkpointDir}; starting from scratch`);
        return undefined;
      }
      this.progress(`runctl: resuming from ${latest.path}`);
      return latest.path;
    }
    const path = resolve(cwd, resume);
    if (!existsSync(path)) {
      throw new UserError(`Checkpoint not found: ${resume}`, {
        code: "checkpoint_not_found",
        hint: "Give an existing checkpoint file, or --resume auto for the newest one.",
      });
    }
    return path;
  }

  private async existingRun(runsDir: string, id: string): Promise<string> {
    const { resolveRun } = await import("@runctl/tracker");
    return (await resolveRun(runsDir, id)).dir;
  }

  /**
   * Starts this same command again, without --detach, as a background process
   * in its own session, and returns once its run directory exists.
   */
  private async detach(runsDir: string): Promise<Record<string, unknown>> {
    const id = newRunId();
    mkdirSync(runsDir, { recursive: true });
    const logPath = join(runsDir, `.supervisor-${id}.log`);
    const log = openSync(logPath, "a");
    const all = process.argv.slice(2);
    const end = all.includes("--") ? all.indexOf("--") : all.length;
    const argv = [...all.slice(0, end).filter((a) => a !== "--detach" && a !== "--json"), ...all.slice(end)];
    const child = spawn(
      process.execPath,
      [process.argv[1] as string, ...injectFlags(argv, ["--run-id", id, "--quiet"])],
      {
        cwd: process.cwd(),
        env: process.env,
        detached: true,
        stdio: ["ignore", log, log],
      },
    );
    child.unref();
    const metaPath = join(runDirOf(runsDir, id), "meta.json");
    const exited = new Promise<number | null>((resolveExit) => child.once("exit", resolveExit));
    const deadline = Date.now() + 30_000;
    while (!existsSync(metaPath)) {
      const code = await Promise.race([exited, new Promise((r) => setTimeout(r, 100, "wait"))]);
      if (code !== "wait" || Date.now() > deadline) {
        throw new UserError(`The background run did not start:\n${safeRead(logPath)}`, {
          code: "detach_failed",
          hint: "Run the same command without --detach to see the problem.",
        });
      }
    }
    this.log(`Started run ${id} in the background (supervisor pid ${child.pid}).`);
    this.log(`  follow:  runctl logs ${id} -f`);
    this.log(`  stop:    runctl stop ${id}`);
    return { run: { id, dir: runDirOf(runsDir, id), status: "running", supervisor_pid: child.pid } };
  }
}

/** Flags must precede `--`, or the script would receive them. */
function injectFlags(argv: string[], extra: string[]): string[] {
  const end = argv.indexOf("--");
  return end === -1 ? [...argv, ...extra] : [...argv.slice(0, end), ...extra, ...argv.slice(end)];
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return "";
  }
}
