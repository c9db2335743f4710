import { join } from "node:path";
import { Flags } from "@oclif/core";
import { FileQueue, NatsChannel, type NatsSettings, readHistory } from "@runctl/control";
import type { ControlChannel } from "@runctl/core";
import { TERMINAL_STATUSES, UserError } from "@runctl/core";
import { readMeta, resolveRun, withEffectiveStatus } from "@runctl/tracker";
import { RunctlCommand } from "../command.ts";
import { parseJsonObjectFlag } from "../flag-values.ts";
import { table } from "../output.ts";

const SUBCOMMANDS = new Set(["controls", "status", "history"]);

export default class Ctl extends RunctlCommand {
  static override summary =
    "Change a live run: send a command every rank applies at the same step, and read acks.";
  static override description =
    `runctl ctl <run> <path> [args…]     send a command (each arg is parsed as JSON, else kept as a string, as runtimectl does)
runctl ctl <run> controls             the controls the script registered
runctl ctl <run> status [--last N]    the latest acks
runctl ctl <run> history              every command with each rank's ack

With --wait, every rank's ack is printed and the exit code is 1 if any rank rejected or failed the command, or if acks are missing at --timeout. When the run has described its controls, an unknown path is refused before anything is sent. -q DIR works on a bare runtimectl queue directory instead of a run.`;
  static override examples = [
    "<%= config.bin %> ctl 20261122-2015 optimizer.lr.multiplier 0.5 --wait",
    "<%= config.bin %> ctl 20261122-2015 checkpoint.save --wait",
    `<%= config.bin %> ctl 20261122-2015 data.augment on --kwargs '{"p": 0.3}'`,
    "<%= config.bin %> ctl 20261122-2015 controls",
    "<%= config.bin %> ctl -q ./queue optimizer.lr.multiplier 0.5",
  ];
  static override strict = false;
  static override flags = {
    queue: Flags.directory({ char: "q", description: "A bare runtimectl queue directory instead of a run." }),
    kwargs: Flags.string({ description: "Keyword arguments as a JSON object." }),
    wait: Flags.boolean({ description: "Wait for every rank's ack.", default: false }),
    timeout: Flags.integer({ description: "Seconds --wait waits for acks.", default: 30, min: 1 }),
    ranks: Flags.integer({ description: "Ranks expected to ack (default: the run's world size).", min: 1 }),
    last: Flags.integer({ description: "With status: how many acks.", default: 10, min: 1 }),
    force: Flags.boolean({ description: "Send even when the run does not list the path.", default: false }),
    nats: Flags.string({ description: "NATS server to send through (overrides [nats] url)." }),
    signal: Flags.string({
      description:
        "Have the supervisor send this signal to every rank (SIGUSR1, SIGUSR2, SIGHUP, SIGTERM, …).",
    }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { flags, argv } = await this.parse(Ctl);
    const positional = [...(argv as string[])];
    // With --wait, a NATS server that is down (restarting) is waited for, within --timeout.
    const connect = { waitForServerMs: flags.wait ? flags.timeout * 1000 : 0 };
    const target = await this.openTarget(
      flags.queue,
      positional,
      await this.natsSettings(flags.nats),
      connect,
    );
    try {
      return await this.dispatch(target, positional, flags);
    } finally {
      await target.queue.close();
    }
  }

  private async dispatch(
    target: Target,
    positional: string[],
    flags: CtlFlags,
  ): Promise<Record<string, unknown>> {
    const [word, ...rest] = positional;
    if (flags.signal !== undefined) return this.sendSignal(target, flags.signal.toUpperCase(), flags);
    if (word === undefined) {
      throw new UserError("Name a control path (or controls, status, history)", {
        code: "bad_usage",
        hint: "e.g. `runctl ctl <run> optimizer.lr.multiplier 0.5 --wait`; `runctl ctl --help` lists the forms.",
      });
    }
    if (SUBCOMMANDS.has(word) && rest.length === 0) {
      if (word === "controls") return this.controls(target.queue);
      if (word === "status") return this.status(target.queue, flags.last);
      return this.history(target.queue);
    }
    return this.send(target, word, rest.map(parseArg), parseKwargs(flags.kwargs), flags);
  }

  private async openTarget(
    queueDir: string | undefined,
    positional: string[],
    nats: NatsSettings | undefined,
    connect: { waitForServerMs: number },
  ): Promise<Target> {
    if (queueDir) return { queue: new FileQueue(queueDir), label: queueDir, worldSize: 1, live: true };
    const runArg = positional.shift();
    if (runArg === undefined) {
      throw new UserError("Name a run (or a queue directory with -q)", {
        code: "bad_usage",
        hint: "`runctl runs` lists run ids; any unique prefix works.",
      });
    }
    const { runsDir } = await this.runPaths();
    const local = await resolveRun(runsDir, runArg).catch((error: unknown) => {
      // Over NATS the run may live on another machine: its id is all we need.
      if (nats) return undefined;
      throw error;
    });
    if (!local) {
      const queue = await NatsChannel.connect(nats as NatsSettings, runArg, connect);
      return { queue, label: runArg, worldSize: 1, live: true };
    }
    const run = local;
    const meta = withEffectiveStatus(await readMeta(run.dir));
    const worldSize = typeof meta.world_size === "number" ? meta.world_size : 1;
    return {
      queue: nats
        ? await NatsChannel.connect(nats, run.id, connect)
        : new FileQueue(join(run.dir, "control")),
      label: run.id,
      worldSize,
      live: !TERMINAL_STATUSES.has(meta.status),
      status: meta.status,
    };
  }

  private async send(
    target: Target,
    path: string,
    args: unknown[],
    kwargs: Record<string, unknown>,
    flags: { wait: boolean; timeout: number; ranks?: number | undefined; force: boolean },
  ): Promise<Record<string, unknown>> {
    const controls = await target.queue.readControls();
    if (controls && !flags.force && !controls.some((c) => c.path === path)) {
      throw new UserError(`The run has no control "${path}"`, {
        code: "unknown_control",
        hint: `Registered: ${controls.map((c) => c.path).join(", ")}. Send anyway with --force.`,
        details: { controls: controls.map((c) => c.path) },
      });
    }
    if (!target.live)
      this.progress(`Warning: run ${target.label} is ${target.status}; nothing will apply this command.`);
    const sent = await target.queue.publish({ op: "set", path, args, kwargs });
    const command = { ...sent.command, seq: sent.seq };
    this.progress(`runctl: sent ${path} (${sent.command.id}, seq ${sent.seq}) to ${target.label}`);
    if (!flags.wait) return { command };

    const expected = flags.ranks ?? target.worldSize;
    const acks = await this.waitForAcks(target.queue, sent.command.id, sent.seq, expected, flags.timeout);
    this.log(
      table(
        ["RANK", "STATUS", "DETAIL"],
        acks.map((a) => [
          String(a.rank ?? 0),
          a.status,
          a.error ?? (a.value === undefined ? "" : JSON.stringify(a.value)),
        ]),
      ),
    );
    const bad = acks.filter((a) => a.status !== "applied");
    const got = new Set(acks.map((a) => a.rank ?? 0)).size;
    if (bad.length > 0) {
      throw new UserError(
        `${bad.length} of ${expected} ranks did not apply ${path}: ${bad[0]?.error ?? bad[0]?.status}`,
        {
          code: "command_not_applied",
          hint: "See every rank's ack above; `runctl ctl <run> controls` lists what the run accepts.",
          details: { command, acks },
        },
      );
    }
    if (got < expected) {
      throw new UserError(`Only ${got} of ${expected} ranks acked ${path} within ${flags.timeout} s`, {
        code: "ack_timeout",
        hint: "The script applies commands when it calls poll_and_apply(); wait longer (--timeout) or check it is polling.",
        details: { command, acks },
      });
    }
    return { command, acks };
  }

  /** The supervisor's own op: it signals every rank's process group and acks as rank -1. */
  private async sendSignal(
    target: Target,
    signal: string,
    flags: { wait: boolean; timeout: number },
  ): Promise<Record<string, unknown>> {
    const name = signal.startsWith("SIG") ? signal : `SIG${signal}`;
    const sent = await target.queue.publish({ op: "signal", path: "supervisor.signal", args: [name] });
    this.progress(`runctl: asked the supervisor of ${target.label} to send ${name} (seq ${sent.seq})`);
    const command = { ...sent.command, seq: sent.seq };
    if (!flags.wait) return { command };
    const acks = await this.waitForAcks(target.queue, sent.command.id, sent.seq, 1, flags.timeout);
    const ack = acks[0];
    if (!ack) {
      throw new UserError(`The supervisor did not ack ${name} within ${flags.timeout} s`, {
        code: "ack_timeout",
        hint: "Only runs started by `runctl local` on a live supervisor apply signals; check `runctl show <run>`.",
        details: { command },
      });
    }
    if (ack.status !== "applied") {
      throw new UserError(`The supervisor refused ${name}: ${ack.error ?? ack.status}`, {
        code: "command_not_applied",
        hint: "Use one of SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGCONT, SIGSTOP.",
        details: { command, acks },
      });
    }
    this.log(`The supervisor sent ${name} to every rank.`);
    return { command, acks };
  }

  private async waitForAcks(
    queue: ControlChannel,
    id: string,
    seq: number,
    expected: number,
    timeoutS: number,
  ) {
    const deadline = Date.now() + timeoutS * 1000;
    for (;;) {
      const acks = (await queue.readAcks({ commandId: id })).filter(
        (a) => a.seq === undefined || a.seq === seq,
      );
      if (new Set(acks.map((a) => a.rank ?? 0)).size >= expected || Date.now() > deadline) return acks;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  private async controls(queue: ControlChannel): Promise<Record<string, unknown>> {
    const controls = await queue.readControls();
    if (!controls)
      this.progress("The run has not described any controls yet (no RuntimeController has registered).");
    else {
      this.log(
        table(
          ["PATH", "VALUE", "DESCRIPTION"],
          controls.map((c) => [
            c.path,
            c.value === undefined ? "" : JSON.stringify(c.value),
            c.description ?? "",
          ]),
        ),
      );
    }
    return { controls };
  }

  private async status(queue: ControlChannel, last: number): Promise<Record<string, unknown>> {
    const acks = (await queue.readAcks()).slice(-last);
    this.log(
      table(
        ["SEQ", "RANK", "PATH", "STATUS", "DETAIL"],
        acks.map((a) => [String(a.seq ?? ""), String(a.rank ?? 0), a.path ?? "", a.status, a.error ?? ""]),
      ),
    );
    return { acks };
  }

  private async history(queue: ControlChannel): Promise<Record<string, unknown>> {
    const items = await readHistory(queue);
    const history = items.map(({ entry, acks }) => ({
      seq: entry.seq,
      ...(entry.kind === "command"
        ? {
            id: entry.command.id,
            path: entry.command.path,
            args: entry.command.args,
            kwargs: entry.command.kwargs,
          }
        : { id: entry.id, path: entry.path, malformed: entry.reason }),
      acks: acks.map((a) => ({
        rank: a.rank ?? 0,
        status: a.status,
        ...(a.error ? { error: a.error } : {}),
      })),
    }));
    this.log(
      table(
        ["SEQ", "PATH", "ARGS", "ACKS"],
        history.map((h) => [
          String(h.seq),
          h.path ?? "",
          "args" in h ? JSON.stringify(h.args) : `(malformed: ${h.malformed})`,
          h.acks.map((a) => `${a.rank}:${a.status}`).join(" "),
        ]),
      ),
    );
    return { history };
  }
}

type CtlFlags = {
  wait: boolean;
  timeout: number;
  ranks?: number | undefined;
  force: boolean;
  last: number;
  kwargs?: string | undefined;
  signal?: string | undefined;
};

interface Target {
  queue: ControlChannel;
  label: string;
  worldSize: number;
  live: boolean;
  status?: string;
}

/** As runtimectl: JSON when it parses, else the string itself. */
function parseArg(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function parseKwargs(text: string | undefined): Record<string, unknown> {
  return text === undefined ? {} : parseJsonObjectFlag(text, "--kwargs", "bad_kwargs", '{"p": 0.3}');
}
