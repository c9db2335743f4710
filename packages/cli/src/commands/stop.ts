import { hostname } from "node:os";
import { Args, Flags } from "@oclif/core";
import { killGroup } from "@runctl/agent/launcher";
import { TERMINAL_STATUSES, UserError } from "@runctl/core";
import { isPidAlive, readMeta, resolveRun, withEffectiveStatus } from "@runctl/tracker";
import { RunctlCommand } from "../command.ts";

export default class Stop extends RunctlCommand {
  static override summary = "Stop a run on this machine: SIGTERM to its supervisor, which stops every rank.";
  static override description =
    "The supervisor forwards the signal to every rank's process group and kills what is left after its grace period; the run ends `cancelled`. --force kills the ranks' process groups and the supervisor at once.";
  static override examples = [
    "<%= config.bin %> stop 20261122-2015",
    "<%= config.bin %> stop 20261122-2015 --force",
  ];
  static override args = { run: Args.string({ description: "Run id or unique prefix.", required: true }) };
  static override flags = {
    force: Flags.boolean({
      description: "SIGKILL the ranks and the supervisor instead of asking.",
      default: false,
    }),
    timeout: Flags.integer({ description: "Seconds to wait for the run to end.", default: 60, min: 1 }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(Stop);
    const { runsDir } = await this.runPaths();
    const run = await resolveRun(runsDir, args.run);
    const meta = withEffectiveStatus(await readMeta(run.dir));
    if (TERMINAL_STATUSES.has(meta.status)) {
      this.log(`Run ${run.id} already ${meta.status}.`);
      return { run: run.id, status: meta.status, stopped: false };
    }
    const pid = typeof meta.pid === "number" ? meta.pid : undefined;
    if (meta.hostname && meta.hostname !== hostname()) {
      throw new UserError(`Run ${run.id} runs on ${meta.hostname}, not on this machine`, {
        code: "run_not_local",
        hint: `Stop it on ${meta.hostname}, or through its provider (e.g. \`runctl resources stop\`).`,
      });
    }
    if (pid === undefined || !isPidAlive(pid)) {
      throw new UserError(`Run ${run.id} has no live process to stop`, {
        code: "run_not_running",
        hint: "It may have been lost; `runctl show` tells its last known state.",
      });
    }
    if (flags.force) {
      const groups = Array.isArray(meta.rank_pgids) ? (meta.rank_pgids as unknown[]) : [];
      for (const g of groups) if (typeof g === "number") killGroup(g, "SIGKILL");
      process.kill(pid, "SIGKILL");
    } else {
      process.kill(pid, "SIGTERM");
    }
    this.progress(
      `runctl: sent ${flags.force ? "SIGKILL" : "SIGTERM"} to run ${run.id}; waiting for it to end…`,
    );
    const deadline = Date.now() + flags.timeout * 1000;
    for (;;) {
      const current = withEffectiveStatus(await readMeta(run.dir)).status;
      if (TERMINAL_STATUSES.has(current)) {
        this.log(`Run ${run.id} ${current}.`);
        return { run: run.id, status: current, stopped: true };
      }
      if (Date.now() > deadline) {
        throw new UserError(`Run ${run.id} is still ${current} after ${flags.timeout} s`, {
          code: "stop_timeout",
          hint: `Wait longer (--timeout), or kill it: \`runctl stop ${run.id} --force\`.`,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
