import { randomInt } from "node:crypto";
import { Args, Flags } from "@oclif/core";
import { RunctlCommand } from "../command.ts";
import { formatValue, table } from "../output.ts";
import { serverFlag } from "../queue.ts";
import { expandSweep, readSweepFile } from "../sweep.ts";

export default class Sweep extends RunctlCommand {
  static override summary = "Queue a parameter sweep (grid or seeded random) from a YAML file.";
  static override description = `The file (whirr's format):

  name: lr-sweep
  program: python train.py          # or a list: [python, train.py]
  method: grid                      # or random (with max_runs, optional seed)
  parameters:
    lr: {values: [0.1, 0.01, 0.001]}
    dropout: {distribution: uniform, min: 0.0, max: 0.5}   # random only; also log_uniform, int_uniform
  # optional, for every job: priority, gpus, timeout_seconds, max_retries, tags

Each combination becomes a job running the program with \`--<param> <value>\` appended, named <name>-<i>, tagged sweep:<name>, with the combination as its config. Random sweeps use --seed, else the file's seed, else a fresh one that is printed so the sweep can be drawn again.

--json returns {sweep, seed, jobs: [...], submitted: [job ids]}.`;
  static override examples = [
    "<%= config.bin %> sweep sweep.yaml --dry-run",
    "<%= config.bin %> sweep sweep.yaml",
    "<%= config.bin %> sweep random.yaml --seed 7 --json",
  ];
  static override args = { file: Args.string({ description: "Sweep YAML file.", required: true }) };
  static override flags = {
    ...serverFlag,
    "dry-run": Flags.boolean({ description: "Show the jobs without queueing them.", default: false }),
    seed: Flags.integer({ description: "Seed of a random sweep (overrides the file's)." }),
    workdir: Flags.string({ description: "Working directory on the workers (default: this directory)." }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(Sweep);
    const sweep = await readSweepFile(args.file);
    const seed = flags.seed ?? sweep.seed ?? randomInt(2 ** 31);
    const jobs = expandSweep(sweep, seed);
    const name = sweep.name ?? "sweep";
    if (!this.jsonEnabled()) {
      this.log(
        table(
          ["NAME", "COMMAND"],
          jobs.map((j) => [j.name, formatValue(j.command_argv.join(" "), 100)]),
        ),
      );
    }
    const seedNote = sweep.method === "random" ? ` (seed ${seed})` : "";
    if (flags["dry-run"]) {
      this.progress(`Sweep ${name}: ${jobs.length} job(s)${seedNote}; nothing queued (--dry-run).`);
      return { sweep: name, method: sweep.method, seed, jobs, submitted: [] };
    }
    const client = await this.queue(flags.server);
    const submitted: number[] = [];
    const workdir = flags.workdir ?? process.cwd();
    for (const job of jobs) {
      const created = await client.submitJob({
        ...job,
        workdir,
        ...(sweep.priority === undefined ? {} : { priority: sweep.priority }),
        ...(sweep.gpus === undefined ? {} : { gpus: sweep.gpus }),
        ...(sweep.timeout_seconds === undefined ? {} : { timeout_seconds: sweep.timeout_seconds }),
        ...(sweep.max_retries === undefined ? {} : { max_retries: sweep.max_retries }),
      });
      submitted.push(created.job_id);
    }
    this.progress(`Sweep ${name}: queued ${submitted.length} job(s)${seedNote}: ${submitted.join(", ")}.`);
    return { sweep: name, method: sweep.method, seed, jobs, submitted };
  }
}
