import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { Args, Flags } from "@oclif/core";
import { latestCheckpoint } from "@runctl/agent/checkpoints";
import { UserError } from "@runctl/core";
import { readMeta, resolveRun, runDirOf } from "@runctl/tracker";
import { RunctlCommand } from "../command.ts";
import { checkGpuList, parseJsonObjectFlag } from "../flag-values.ts";
import { type LocalRequest, localLaunchSpec, runInForeground } from "../foreground-run.ts";

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
    "run-id": Flags.string({
      description: "Id for the new run (default: a new time-ordered id).",
      exclusive: ["run"],
    }),
    quiet: Flags.boolean({
      description: "Do not echo the run's output here (it is still in output.log).",
      default: false,
    }),
  };

  /** `runctl exec` runs its target as a plain command. */
  protected static raw = false;

  async run(): Promise<Record<string, unknown>> {
    const { flags, argv } = await this.parse(this.constructor as typeof Local);
    const { target, scriptArgs, resume } = this.launchArgs(argv as string[], flags.resume);
    if (flags.gpus !== undefined) checkGpuList(flags.gpus);
    let runConfig: Record<string, unknown> | undefined;
    if (flags.config !== undefined)
      runConfig = parseJsonObjectFlag(flags.config, "--config", "bad_run_config", '{"lr": 0.01}');
    const [paths, provider] = await Promise.all([
      this.runPaths(flags["checkpoint-dir"]),
      this.provider("local"),
    ]);
    const cwd = process.cwd();
    const resumeFrom = await this.resumePath(resume, paths.checkpointDir, cwd);
    const continued = flags.run ? await this.existingRun(paths.runsDir, flags.run) : undefined;
    // `--nats URL` over `[nats]`: the run's commands then arrive over NATS.
    const natsConfig = { ...paths.config.nats, ...(flags.nats ? { url: flags.nats } : {}) };
    const nats = natsConfig.url || natsConfig.context ? natsConfig : undefined;
    // Anyone who can reach an open server can steer this run (docs/protocol.md, "Security").
    if (nats) {
      const { checkOpenServer, natsSettingsFromConfig } = await import("@runctl/control");
      const openServer = await checkOpenServer(natsSettingsFromConfig(nats));
      if (openServer !== undefined) this.progress(`Warning: ${openServer}`);
    }

    const request: LocalRequest = {
      target,
      scriptArgs,
      cwd,
      nprocPerNode: flags["nproc-per-node"],
      gpus: flags.gpus,
      python: flags.python,
      raw: (this.constructor as typeof Local).raw,
      name: flags.name,
      tags: flags.tag,
      config: runConfig,
      resume: resumeFrom ? { from: resumeFrom, passArg: flags["resume-arg"] } : undefined,
      checkpointDir: paths.checkpointDir,
      continueRun: continued,
      runId: flags["run-id"],
      graceSeconds: flags.grace,
      nats,
      detach: flags.detach,
      quiet: flags.quiet,
      json: this.jsonEnabled(),
    };
    const spec = localLaunchSpec(request);

    if (flags.detach) {
      const placement = await provider.launch(spec);
      const runDir = runDirOf(paths.runsDir, placement.resourceId);
      const { pid } = await readMeta(runDir);
      this.log(`Started run ${placement.resourceId} in the background (agent pid ${pid}).`);
      this.log(`  follow:  runctl logs ${placement.resourceId} -f`);
      this.log(`  stop:    runctl stop ${placement.resourceId}`);
      return { run: { id: placement.resourceId, dir: runDir, status: "running", agent_pid: pid } };
    }
    return runInForeground(provider, spec, paths.runsDir, {
      quiet: flags.quiet,
      progress: (message) => this.progress(message),
    });
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

  /** The id of an existing run that `--run` names. */
  private async existingRun(runsDir: string, id: string): Promise<string> {
    return (await resolveRun(runsDir, id)).id;
  }
}
