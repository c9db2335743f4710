import { join } from "node:path";
import { Flags } from "@oclif/core";
import {
  checkJsonText,
  decodeAck as decodeAckMessage,
  FileQueue,
  NatsChannel,
  type NatsSettings,
  natsUrlWithoutCredentials,
  openServerWarning,
  parseCommandArgument,
  readHistory,
} from "@runctl/control";
import type { Ack, ControlChannel, RunMeta } from "@runctl/core";
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

With --wait, every rank's ack is printed and the exit code is 1 if any rank rejected or failed the command, or if acks are missing at --timeout. The ranks expected are the run's world size (meta.json, else the acks' world_size). When the run has described its controls, an unknown path is refused before anything is sent; so is a command for a run that has ended (--force sends anyway). The channel is the one the run recorded in meta.json (its file queue, or NATS with its URL and prefix); --nats overrides it, with a warning. -q DIR works on a bare runtimectl queue directory instead of a run.`;
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
    force: Flags.boolean({
      description: "Send even when the run does not list the path, or has ended.",
      default: false,
    }),
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
    const target = await this.openTarget(flags.queue, positional, flags.nats, connect);
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
    flagUrl: string | undefined,
    connect: { waitForServerMs: number },
  ): Promise<Target> {
    if (queueDir) return { queue: new FileQueue(queueDir), label: queueDir, live: true };
    const runArg = positional.shift();
    if (runArg === undefined) {
      throw new UserError("Name a run (or a queue directory with -q)", {
        code: "bad_usage",
        hint: "`runctl runs` lists run ids; any unique prefix works.",
      });
    }
    const configured = await this.natsSettings(undefined);
    const { runsDir } = await this.runPaths();
    const local = await resolveRun(runsDir, runArg).catch((error: unknown) => {
      // Over NATS the run may live on another machine: its id is all we need.
      if (flagUrl !== undefined || configured !== undefined) return undefined;
      throw error;
    });
    if (!local) {
      const settings = { ...configured, ...(flagUrl !== undefined ? { url: flagUrl } : {}) };
      const queue = await this.openNats(settings, runArg, connect);
      return { queue, label: runArg, live: true };
    }
    const meta = withEffectiveStatus(await readMeta(local.dir));
    const settings = this.channelOf(meta, configured, flagUrl);
    return {
      queue: settings
        ? await this.openNats(settings, local.id, connect)
        : new FileQueue(join(local.dir, "control")),
      label: local.id,
      ...(typeof meta.world_size === "number" ? { worldSize: meta.world_size } : {}),
      live: !TERMINAL_STATUSES.has(meta.status),
      status: meta.status,
    };
  }

  /**
   * NATS settings for a run on this disk, or undefined for its file queue: the
   * channel its meta.json records (URL and prefix; credentials from this
   * machine's configuration), else (older runs) this machine's configuration.
   * --nats wins, with a warning when it disagrees with the record.
   */
  private channelOf(
    meta: RunMeta,
    configured: NatsSettings | undefined,
    flagUrl: string | undefined,
  ): NatsSettings | undefined {
    const recorded = meta.control;
    if (recorded === undefined) {
      if (flagUrl !== undefined) return { ...configured, url: flagUrl };
      return configured;
    }
    if (recorded.kind === "file") {
      if (flagUrl === undefined) return undefined;
      this.progress(
        `Warning: run ${meta.id} listens on its file queue only (meta.json); sending through --nats ${redactedUrl(flagUrl)} anyway.`,
      );
      return { ...configured, url: flagUrl };
    }
    const settings: NatsSettings = { ...configured };
    if (recorded.url !== undefined) settings.url = recorded.url;
    if (recorded.prefix !== undefined) settings.prefix = recorded.prefix;
    if (flagUrl !== undefined) {
      if (recorded.url !== undefined && sameServers(flagUrl, recorded.url) === false) {
        this.progress(
          `Warning: run ${meta.id} listens on NATS at ${recorded.url} (meta.json); sending through --nats ${redactedUrl(flagUrl)} instead.`,
        );
      }
      settings.url = flagUrl;
    } else if (configured?.url !== undefined && recorded.url !== undefined) {
      // Credentials in the configured URL still apply to the same server.
      if (sameServers(configured.url, recorded.url) === true) settings.url = configured.url;
    }
    return settings;
  }

  private async openNats(
    settings: NatsSettings,
    runId: string,
    connect: { waitForServerMs: number },
  ): Promise<NatsChannel> {
    const channel = await NatsChannel.connect(settings, runId, connect);
    const warning = openServerWarning(channel.nc);
    if (warning !== undefined) this.progress(`Warning: ${warning}`);
    return channel;
  }

  /** Refuses a command nobody will apply: the run has ended (meta.json, or its bridge said so on NATS). */
  private async refuseEnded(target: Target, force: boolean): Promise<void> {
    let ended = target.live ? undefined : target.status;
    if (ended === undefined && target.queue instanceof NatsChannel) {
      const state = await target.queue.readState();
      if (state?.state === "ended") ended = "ended";
    }
    if (ended === undefined) return;
    if (force) {
      this.progress(`Warning: run ${target.label} is ${ended}; sending anyway (--force).`);
      return;
    }
    throw new UserError(`Run ${target.label} has ended (${ended}): nothing will apply this command`, {
      code: "run_ended",
      hint: "Start it again (`runctl retry <run>`) to steer it, or send anyway with --force.",
      details: { run: target.label, status: ended },
    });
  }

  private async send(
    target: Target,
    path: string,
    args: unknown[],
    kwargs: Record<string, unknown>,
    flags: { wait: boolean; timeout: number; ranks?: number | undefined; force: boolean },
  ): Promise<Record<string, unknown>> {
    await this.refuseEnded(target, flags.force);
    const controls = await target.queue.readControls();
    if (controls && !flags.force && !controls.some((c) => c.path === path)) {
      throw new UserError(`The run has no control "${path}"`, {
        code: "unknown_control",
        hint: `Registered: ${controls.map((c) => c.path).join(", ")}. Send anyway with --force.`,
        details: { controls: controls.map((c) => c.path) },
      });
    }
    const sent = await target.queue.publish({ op: "set", path, args, kwargs });
    const command = { ...sent.command, seq: sent.seq };
    this.progress(`runctl: sent ${path} (${sent.command.id}, seq ${sent.seq}) to ${target.label}`);
    if (!flags.wait) return { command };

    const known = flags.ranks ?? target.worldSize;
    const acks = await this.waitForAcks(target.queue, sent, known, flags.timeout);
    const expected = known ?? worldSizeOf(acks) ?? 1;
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
    if (bad.some((a) => a.rank === -1)) {
      // The bridge or supervisor answered for every rank: no rank will see the command.
      throw new UserError(
        `${path} was refused before reaching the ranks: ${bad[0]?.error ?? bad[0]?.status}`,
        {
          code: "command_not_applied",
          hint: "See the ack above; docs/protocol.md lists what a command must be.",
          details: { command, acks },
        },
      );
    }
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
    if (got < expected || (known === undefined && acks.length === 0)) {
      // Without a recorded world size and without any ack, the number of ranks is unknown.
      const message =
        known === undefined && acks.length === 0
          ? `No rank acked ${path} within ${flags.timeout} s`
          : `Only ${got} of ${expected} ranks acked ${path} within ${flags.timeout} s`;
      throw new UserError(message, {
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
    flags: { wait: boolean; timeout: number; force: boolean },
  ): Promise<Record<string, unknown>> {
    const name = signal.startsWith("SIG") ? signal : `SIG${signal}`;
    await this.refuseEnded(target, flags.force);
    const sent = await target.queue.publish({ op: "signal", path: "supervisor.signal", args: [name] });
    this.progress(`runctl: asked the supervisor of ${target.label} to send ${name} (seq ${sent.seq})`);
    const command = { ...sent.command, seq: sent.seq };
    if (!flags.wait) return { command };
    const acks = await this.waitForAcks(target.queue, sent, 0, flags.timeout);
    const ack = acks.find((a) => a.rank === -1) ?? acks[0];
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

  /**
   * The acks of one command (same id, and same seq when the ack has one) until
   * `expected` ranks have acked, an ack with rank -1 (the bridge or the
   * supervisor answering for every rank) arrives, or the timeout. `expected`
   * undefined: the world size the acks carry; 0: the first rank -1 ack. Over
   * NATS the acks are followed from the command's own stream sequence on (they
   * are stored after it), so nothing is read twice and nothing is missed.
   */
  private async waitForAcks(
    queue: ControlChannel,
    sent: { seq: number; command: { id: string }; streamSeq?: number },
    expected: number | undefined,
    timeoutS: number,
  ): Promise<Ack[]> {
    const acks: Ack[] = [];
    const complete = (): boolean => {
      if (acks.some((a) => a.rank === -1)) return true;
      const want = expected ?? worldSizeOf(acks);
      if (want === undefined || want === 0) return false;
      return new Set(acks.filter((a) => (a.rank ?? 0) >= 0).map((a) => a.rank ?? 0)).size >= want;
    };
    const matches = (a: Ack) => a.id === sent.command.id && (a.seq === undefined || a.seq === sent.seq);
    if (queue instanceof NatsChannel && sent.streamSeq !== undefined) {
      let resolve: () => void = () => undefined;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      const timer = setTimeout(resolve, timeoutS * 1000);
      const follower = queue.follow("acks", sent.streamSeq + 1, (message) => {
        const ack = decodeAckMessage(message.data);
        if (ack === undefined || !matches(ack)) return;
        acks.push(ack);
        if (complete()) resolve();
      });
      try {
        await promise;
      } finally {
        clearTimeout(timer);
        await follower.stop();
      }
      return acks;
    }
    // The file queue is on this disk: re-reading it is a local read.
    const deadline = Date.now() + timeoutS * 1000;
    for (;;) {
      acks.length = 0;
      acks.push(...(await queue.readAcks({ commandId: sent.command.id })).filter(matches));
      if (complete() || Date.now() > deadline) return acks;
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
  /** The run's recorded world size; undefined when unknown (then the acks tell). */
  worldSize?: number;
  live: boolean;
  status?: string;
}

/** As runtimectl: JSON when it parses, else the string itself; JSON that would change on the way is refused. */
function parseArg(text: string): unknown {
  return parseCommandArgument(text);
}

function parseKwargs(text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {};
  // Checked before parsing: a hostile depth must not reach JSON.parse's callers.
  checkJsonText(text, null, "--kwargs", "bad_kwargs");
  return parseJsonObjectFlag(text, "--kwargs", "bad_kwargs", '{"p": 0.3}');
}

/** The largest world size the acks report, or undefined when none does. */
function worldSizeOf(acks: readonly Ack[]): number | undefined {
  const sizes = acks.flatMap((a) => (typeof a.world_size === "number" ? [a.world_size] : []));
  return sizes.length > 0 ? Math.max(...sizes) : undefined;
}

function redactedUrl(url: string): string {
  try {
    return natsUrlWithoutCredentials(url);
  } catch {
    return "(the given URL)";
  }
}

/** Whether two server lists name the same servers (credentials aside); undefined when one cannot be read. */
function sameServers(a: string, b: string): boolean | undefined {
  try {
    const norm = (u: string) => natsUrlWithoutCredentials(u).split(",").sort().join(",");
    return norm(a) === norm(b);
  } catch {
    return undefined;
  }
}
