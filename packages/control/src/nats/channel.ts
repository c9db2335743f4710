/**
 * The ControlChannel of one run over NATS JetStream (docs/protocol.md). A run's
 * commands are the messages of `<prefix>.ctl.<run>.cmd` in the control stream;
 * their total order is stream order, a command's `seq` is its 0-based position
 * among them, and a cursor is `{seq, offset}` with `offset` the stream
 * sequence to read from next. Acks and controls are messages on sibling
 * subjects of the same stream.
 */
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as delay } from "node:timers/promises";
import {
  type ConsumerMessages,
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  type PubAck,
} from "@nats-io/jetstream";
import { headers, type NatsConnection, type Subscription, TimeoutError } from "@nats-io/transport-node";
import {
  Ack,
  type AckFilter,
  Command,
  type CommandDraft,
  type ControlChannel,
  type ControlChannelFactory,
  type ControlCursor,
  ControlDescriptor,
  type ControlEntry,
  type ControlPage,
  InternalError,
  ProviderError,
  type SequencedCommand,
  START_CURSOR,
  UserError,
} from "@runctl/core";
import { commandFromDraft, commandLine } from "../command-draft.ts";
import { type HistoryItem, readHistory } from "../history.ts";
import { type ConnectNatsOptions, connectNats } from "./connect.ts";
import { type ConnectionState, connectionState } from "./connection-state.ts";
import {
  getAt,
  getLast,
  type ScanContext,
  type SubjectMessage,
  scanSubject,
  scanSubjectScoped,
} from "./scan.ts";
import { type NatsContextOptions, type NatsSettings, resolveNatsSettings } from "./settings.ts";
import { ensureControlStream } from "./stream.ts";
import { DEFAULT_PREFIX, type RunSubjects, runSubjects, streamName, validatePrefix } from "./subjects.ts";
import {
  commandEntry,
  decodeAck,
  decodeControls,
  decodeRunState,
  encodeMessage,
  isValidCommandId,
  type RunState,
  type RunStateMessage,
  toJsonModel,
} from "./wire.ts";

export interface NatsChannelOptions {
  /** Subject prefix (default `runctl`). */
  prefix?: string;
  /** Replicas of the control stream when this client creates it (default 1). */
  replicas?: number;
  /** JetStream domain or API prefix, for a JetStream that is not the account's own. */
  jsDomain?: string;
  jsApiPrefix?: string;
  /** How long one publish attempt waits for the PubAck (default 5 s). */
  publishTimeoutMs?: number;
  /**
   * How long publish, appendAck and writeControls keep retrying a timeout or
   * a missing JetStream (a server restarting) before they fail (default 60 s).
   * Retries reuse the `Nats-Msg-Id`, so they never duplicate a command.
   */
  publishDeadlineMs?: number;
  /** At most this many entries per read (default 4096); the rest comes with the next read. */
  pageSize?: number;
}

const DEFAULTS = { publishTimeoutMs: 5_000, publishDeadlineMs: 60_000, pageSize: 4096 };
/** Stream-sequence → seq pairs a publisher remembers, for duplicates and concurrent publishes. */
const POSITIONS_KEPT = 4096;
/** Attempts at a consistent (count, last sequence) snapshot before counting from the start. */
const SNAPSHOT_ATTEMPTS = 3;

/** Streams known to be set up, per connection and prefix (one check per process, not per channel). */
const ensured = new WeakMap<NatsConnection, Map<string, Promise<void>>>();

interface Counted {
  /** Stream sequence up to which (exclusive) the run's commands are counted. */
  offset: number;
  /** How many there are before it. */
  seq: number;
}

export interface AckSubscription {
  unsubscribe(): void;
}

export interface Follower {
  /** Stops delivering; resolves once the handler in progress (if any) has returned. */
  stop(): Promise<void>;
}

/** publish's answer on NATS: also the command's stream sequence, after which its acks are stored. */
export interface NatsSequencedCommand extends SequencedCommand {
  streamSeq: number;
}

export class NatsChannel implements ControlChannel {
  readonly runId: string;
  readonly prefix: string;
  readonly stream: string;
  readonly subjects: RunSubjects;
  readonly nc: NatsConnection;
  #js: JetStreamClient;
  #jsm: JetStreamManager;
  #scan: ScanContext;
  #options: Required<Pick<NatsChannelOptions, "publishTimeoutMs" | "publishDeadlineMs" | "pageSize">> &
    NatsChannelOptions;
  #ownsConnection: boolean;
  #tail: Promise<unknown> = Promise.resolve();
  #counted: Counted | undefined;
  #positions = new Map<number, number>();
  #subscriptions = new Set<Subscription>();
  #closed = false;
  /** Aborted by close(), so a publish waiting for the connection gives up. */
  #closing = new AbortController();

  private constructor(
    nc: NatsConnection,
    jsm: JetStreamManager,
    runId: string,
    options: NatsChannelOptions,
    ownsConnection: boolean,
  ) {
    this.nc = nc;
    this.runId = runId;
    this.prefix = validatePrefix(options.prefix ?? DEFAULT_PREFIX);
    this.stream = streamName(this.prefix);
    this.subjects = runSubjects(this.prefix, runId);
    this.#options = { ...DEFAULTS, ...options };
    const jsOpts = jetStreamOptions(options);
    this.#js = jetstream(nc, jsOpts);
    this.#jsm = jsm;
    this.#scan = { js: this.#js, jsm, stream: this.stream };
    this.#ownsConnection = ownsConnection;
  }

  /**
   * The channel of `runId` on an open connection; creates or updates the
   * control stream first. close() leaves the connection open.
   */
  static async open(
    nc: NatsConnection,
    runId: string,
    options: NatsChannelOptions = {},
  ): Promise<NatsChannel> {
    return await NatsChannel.#open(nc, runId, options, false);
  }

  /** Connects with `settings` (see connectNats) and opens `runId`; close() closes the connection. */
  static async connect(
    settings: NatsSettings,
    runId: string,
    options: Omit<NatsChannelOptions, "prefix" | "jsDomain" | "jsApiPrefix"> & ConnectNatsOptions = {},
  ): Promise<NatsChannel> {
    const resolved = resolveNatsSettings(settings, options);
    const nc = await connectNats(resolved, options);
    try {
      return await NatsChannel.#open(nc, runId, { ...options, ...channelOptionsOf(resolved) }, true);
    } catch (error) {
      await nc.close().catch(() => {});
      throw error;
    }
  }

  static async #open(
    nc: NatsConnection,
    runId: string,
    options: NatsChannelOptions,
    ownsConnection: boolean,
  ): Promise<NatsChannel> {
    const jsm = await jetstreamManager(nc, { ...jetStreamOptions(options), checkAPI: false });
    const channel = new NatsChannel(nc, jsm, runId, options, ownsConnection);
    await channel.#ensureStream();
    return channel;
  }

  /**
   * Publishes a command (validated; `id` and `ts` filled in when missing) with
   * `Nats-Msg-Id: <id>` and returns its seq. Publishing an id again within the
   * stream's duplicate window returns the first publish's seq and command.
   * One channel's publishes are stored in the order they were called.
   */
  async publish(draft: CommandDraft): Promise<NatsSequencedCommand> {
    const command = checkedCommand(draft);
    const payload = encodeMessage(command);
    return await this.#serial(async () => {
      const fast = await this.#publishAfterKnownLast(payload, command);
      if (fast !== undefined) return fast;
      const ack = await this.#publish(this.subjects.commands, payload, { msgID: command.id });
      let stored: Command = command;
      if (ack.duplicate) {
        const original = await getAt(this.#scan, ack.seq);
        // The duplicate window covers the whole stream: the id may be another run's.
        if (original !== null && original.subject !== this.subjects.commands) {
          throw new UserError(
            `command id ${JSON.stringify(command.id)} was used by another run's command (${original.subject}) within the duplicate window; nothing was stored`,
            {
              code: "duplicate_id",
              hint: "Use a new id for every command (omit it to get a UUID).",
              details: { subject: original.subject, streamSeq: ack.seq },
            },
          );
        }
        if (original !== null) {
          const entry = commandEntry(original.data, 0, original.msgId);
          const parsed = entry.kind === "command" ? Command.safeParse(entry.command) : undefined;
          if (parsed?.success === true) stored = parsed.data;
        }
      }
      return { seq: await this.#position(ack.seq), command: stored, streamSeq: ack.seq };
    });
  }

  /**
   * Stores a command without learning its seq: for a publisher whose credential may not count
   * the run's commands (a run's own, which the agent holds: docs/protocol.md, "Preemption").
   * Consumers number it as they read it, as any other.
   */
  async publishUnsequenced(draft: CommandDraft): Promise<Command> {
    const command = checkedCommand(draft);
    const payload = encodeMessage(command);
    await this.#serial(() => this.#publish(this.subjects.commands, payload, { msgID: command.id }));
    return command;
  }

  /**
   * When this publisher knows the run's last command (it counted up to it),
   * publishing with `Nats-Expected-Last-Subject-Sequence` gives the seq with
   * no further request: stored means nobody published in between. Undefined
   * when it does not know, when someone did publish in between (nothing is
   * stored then), or for a duplicate id; publish then counts.
   */
  async #publishAfterKnownLast(
    payload: Uint8Array,
    command: Command,
  ): Promise<NatsSequencedCommand | undefined> {
    const known = this.#counted;
    // seq 0 would mean "no command yet", which nats-server 2.9 does not check.
    if (known === undefined || known.seq === 0) return undefined;
    const h = headers();
    h.set("Nats-Expected-Last-Subject-Sequence", String(known.offset - 1));
    let ack: PubAck;
    try {
      ack = await this.#publish(this.subjects.commands, payload, { msgID: command.id, headers: h });
    } catch (error) {
      if (isWrongLastSequence(error)) return undefined;
      throw error;
    }
    if (ack.duplicate) return undefined;
    this.#remember(ack.seq, known.seq);
    this.#counted = { offset: ack.seq + 1, seq: known.seq + 1 };
    return { seq: known.seq, command, streamSeq: ack.seq };
  }

  /**
   * Entries from `cursor` on: every message of the run's command subject from
   * stream sequence `cursor.offset`, numbered from `cursor.seq`. Returns after
   * one request when there is nothing new.
   */
  async read(cursor: ControlCursor = START_CURSOR): Promise<ControlPage> {
    const messages = await this.#whileConnected(() =>
      scanSubject(this.#scan, this.subjects.commands, { from: cursor.offset, limit: this.#options.pageSize }),
    );
    const last = messages.at(-1);
    if (last === undefined) return { entries: [], cursor };
    const entries: ControlEntry[] = messages.map((m, i) => commandEntry(m.data, cursor.seq + i, m.msgId));
    return { entries, cursor: { seq: cursor.seq + messages.length, offset: last.seq + 1 } };
  }

  async appendAck(ack: Ack): Promise<void> {
    const record = Ack.parse(ack);
    await this.#publish(this.subjects.acks, encodeMessage(record), { msgID: ackMsgId(record) });
  }

  /** Acks in stream order; messages that are not acks this client can read are skipped. */
  async readAcks(filter: AckFilter = {}): Promise<Ack[]> {
    const messages = await this.#whileConnected(() =>
      scanSubject(this.#scan, this.subjects.acks, { from: 1, limit: Number.MAX_SAFE_INTEGER }),
    );
    const acks: Ack[] = [];
    for (const m of messages) {
      const ack = decodeAck(m.data);
      if (ack === undefined) continue;
      if (filter.commandId !== undefined && ack.id !== filter.commandId) continue;
      acks.push(ack);
    }
    return acks;
  }

  /**
   * Acks as they are published (a plain NATS subscription: no history, no
   * server-side state); for waiting on acks without polling readAcks.
   */
  subscribeAcks(onAck: (ack: Ack) => void, filter: AckFilter = {}): AckSubscription {
    const sub = this.nc.subscribe(this.subjects.acks, {
      callback: (error, msg) => {
        if (error !== null) return;
        const ack = decodeAck(msg.data);
        if (ack === undefined) return;
        if (filter.commandId !== undefined && ack.id !== filter.commandId) return;
        onAck(ack);
      },
    });
    this.#subscriptions.add(sub);
    return {
      unsubscribe: () => {
        this.#subscriptions.delete(sub);
        sub.unsubscribe();
      },
    };
  }

  /**
   * The raw messages of the run's command subject from stream sequence
   * `offset` on (one page), for a consumer that decodes them itself (the
   * bridge). Read only through API subjects that name the run's subject, so
   * the run's own credentials (credentials.ts) suffice.
   */
  async readMessages(offset: number): Promise<SubjectMessage[]> {
    return await this.#whileConnected(() =>
      scanSubjectScoped(this.#scan, this.subjects.commands, {
        from: offset,
        limit: this.#options.pageSize,
      }),
    );
  }

  /**
   * Delivers the messages of the run's command or ack subject from stream
   * sequence `from` on, as they are stored, through an ordered consumer (no
   * durable state; it is recreated after a server restart and resumes after
   * the last message handled). `onMessage` is awaited before the next message;
   * when it throws, that message is delivered again after a pause, so a
   * handler that moves its own cursor only on success sees each message once.
   */
  follow(
    which: "commands" | "acks",
    from: number,
    onMessage: (message: SubjectMessage) => Promise<void> | void,
    onError: (error: unknown) => void = () => undefined,
  ): Follower {
    const subject = which === "commands" ? this.subjects.commands : this.subjects.acks;
    const abort = new AbortController();
    let current: ConsumerMessages | undefined;
    let next = Math.max(1, from);
    const done = (async () => {
      while (!abort.signal.aborted && !this.#closed) {
        try {
          const consumer = await this.#js.consumers.get(this.stream, {
            // One subject as a string: `filter_subject`, which nats-server 2.9 understands.
            filter_subjects: subject,
            deliver_policy: DeliverPolicy.StartSequence,
            opt_start_seq: next,
            // A follower that vanishes (a killed `ctl`) leaves its consumer for 30 s, not nats.js's 5 min.
            inactive_threshold: 30_000,
          });
          current = await consumer.consume();
          if (abort.signal.aborted) break;
          for await (const m of current) {
            await onMessage({ seq: m.seq, data: m.data, msgId: m.headers?.get("Nats-Msg-Id") || undefined });
            next = m.seq + 1;
          }
        } catch (error) {
          if (abort.signal.aborted) break;
          onError(error);
        } finally {
          current?.stop();
          current = undefined;
        }
        await delay(1_000, undefined, { signal: abort.signal }).catch(() => undefined);
      }
    })();
    return {
      stop: async () => {
        abort.abort();
        current?.stop();
        await done;
      },
    };
  }

  /**
   * Says whether the run's commands are still consumed here: the bridge
   * writes `running` when it starts and `ended` when the run's last rank has
   * exited (docs/protocol.md, "Run state"), so a publisher can refuse a
   * command nobody will apply instead of waiting for acks that never come.
   */
  async writeState(state: RunState): Promise<void> {
    const body = { state, ts: Date.now() / 1000, pid: process.pid, host: hostname() };
    const h = headers();
    h.set("Nats-Rollup", "sub");
    await this.#publish(this.subjects.state, encodeMessage(body), { headers: h });
  }

  /** The last run state written, or null when none was (or it cannot be read). */
  async readState(): Promise<RunStateMessage | null> {
    const last = await this.#whileConnected(() => getLast(this.#scan, this.subjects.state, false));
    if (last === null) return null;
    return decodeRunState(last.data) ?? null;
  }

  /** Publishes the registered controls; older controls messages of the run are rolled up. */
  async writeControls(controls: ControlDescriptor[]): Promise<void> {
    const parsed = controls.map((c) => ControlDescriptor.parse(c));
    const body = {
      controls: parsed,
      updated_at: new Date().toISOString(),
      pid: process.pid,
      host: hostname(),
    };
    const h = headers();
    h.set("Nats-Rollup", "sub");
    await this.#publish(this.subjects.controls, encodeMessage(body), { headers: h });
  }

  async readControls(): Promise<ControlDescriptor[] | null> {
    const last = await this.#whileConnected(() => getLast(this.#scan, this.subjects.controls, false));
    if (last === null) return null;
    const decoded = decodeControls(last.data);
    if (!decoded.ok) {
      throw new UserError(`the controls of run ${this.runId} on NATS cannot be read: ${decoded.reason}`, {
        code: "controls_corrupt",
        hint: "They are republished whenever the training script registers a control.",
        details: { subject: this.subjects.controls, seq: last.seq },
      });
    }
    return decoded.message.controls;
  }

  /** Every entry from the start, each with its acks. */
  async history(): Promise<HistoryItem[]> {
    return await readHistory(this);
  }

  /** Waits for publishes in flight, drops ack subscriptions, closes the connection if this channel opened it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    await this.#tail.catch(() => {});
    for (const sub of this.#subscriptions) sub.unsubscribe();
    this.#subscriptions.clear();
    if (this.#ownsConnection) await this.nc.close();
  }

  /** Runs `fn` after every earlier call has settled. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(() => {});
    return run;
  }

  async #ensureStream(force = false): Promise<void> {
    let byPrefix = ensured.get(this.nc);
    if (byPrefix === undefined) {
      byPrefix = new Map();
      ensured.set(this.nc, byPrefix);
    }
    const key = `${this.#options.jsDomain ?? ""}|${this.#options.jsApiPrefix ?? ""}|${this.prefix}`;
    let pending = force ? undefined : byPrefix.get(key);
    if (pending === undefined) {
      pending = ensureControlStream(this.#jsm, this.prefix, { replicas: this.#options.replicas ?? 1 }).then(
        () => {},
      );
      byPrefix.set(key, pending);
      pending.catch(() => byPrefix.delete(key));
    }
    await pending;
  }

  /**
   * A JetStream publish that survives a server restart. It waits for the
   * connection while it is down, abandons an attempt when the connection drops
   * before the PubAck, and retries a timeout or "no responders" (JetStream not
   * up yet, or the stream gone: it is recreated), always with the same message
   * id, until the deadline.
   */
  async #publish(
    subject: string,
    payload: Uint8Array,
    opts: { msgID?: string; headers?: ReturnType<typeof headers> },
  ): Promise<PubAck> {
    const state = connectionState(this.nc);
    const deadline = Date.now() + this.#options.publishDeadlineMs;
    for (let attempt = 0; ; attempt++) {
      let failure: unknown;
      let kind: TransientKind | undefined;
      try {
        await within(state.whenConnected(), deadline - Date.now(), this.#closing.signal);
        const sent = this.#js.publish(subject, payload, { ...opts, timeout: this.#options.publishTimeoutMs });
        const result = await untilDisconnect(state, sent);
        if (result !== DROPPED) return result;
        failure = new Error("the connection dropped before the PubAck");
        kind = "disconnect";
      } catch (error) {
        failure = error;
        kind = transientKind(error);
      }
      if (kind === undefined || this.#closed || state.closed || Date.now() >= deadline) {
        throw new ProviderError(`publishing to ${subject} failed: ${errorMessage(failure)}`, {
          code: "nats_publish_failed",
          hint: "Check that the NATS server is up and has JetStream enabled (`nats-server -js`), and nats.url.",
          cause: failure,
        });
      }
      if (kind !== "disconnect") await delay(Math.min(2_000, 100 * 2 ** Math.min(attempt, 5)));
      if (kind === "no_responders") await this.#ensureStream(true).catch(() => {});
    }
  }

  /**
   * `work` (requests that change nothing), failing with `nats_disconnected` at
   * once when the connection is down or drops before it is done, rather than
   * waiting out a request timeout.
   */
  async #whileConnected<T>(work: () => Promise<T>): Promise<T> {
    const state = connectionState(this.nc);
    const result = state.connected ? await untilDisconnect(state, work()) : DROPPED;
    if (result !== DROPPED) return result;
    throw new ProviderError(`not connected to NATS (run ${this.runId})`, {
      code: "nats_disconnected",
      hint: "The client reconnects on its own; try again once the server is reachable.",
    });
  }

  /** #positionOf, started over when the connection drops meanwhile (what it has counted is kept). */
  async #position(streamSeq: number): Promise<number> {
    const state = connectionState(this.nc);
    const deadline = Date.now() + this.#options.publishDeadlineMs;
    for (;;) {
      try {
        await within(state.whenConnected(), deadline - Date.now(), this.#closing.signal);
        return await this.#whileConnected(() => this.#positionOf(streamSeq));
      } catch (error) {
        const retry = transientKind(error) !== undefined || isDisconnected(error);
        if (!retry || state.closed || Date.now() >= deadline) throw error;
        await delay(100);
      }
    }
  }

  /**
   * The 0-based position among the run's commands of the message at stream
   * sequence `streamSeq`, counted through the stream leader. A publisher that
   * has counted before goes on from where it stopped; a new one takes a
   * consistent (count, last sequence) snapshot of the subject and counts back
   * from it, so neither reads the whole history in the common case.
   */
  async #positionOf(streamSeq: number): Promise<number> {
    const known = this.#positions.get(streamSeq);
    if (known !== undefined) return known;
    if (this.#counted === undefined || this.#counted.offset > streamSeq) {
      const snapshot = await this.#snapshot();
      if (snapshot !== undefined && snapshot.offset > streamSeq) {
        const last = snapshot.offset - 1;
        const tail = await scanSubject(this.#scan, this.subjects.commands, {
          from: streamSeq,
          limit: Number.MAX_SAFE_INTEGER,
          until: last,
          consistent: true,
        });
        const within = tail.filter((m) => m.seq <= last);
        if (within[0]?.seq === streamSeq) {
          const first = snapshot.seq - within.length;
          for (const [i, m] of within.entries()) this.#remember(m.seq, first + i);
          if (this.#counted === undefined || this.#counted.offset < snapshot.offset) this.#counted = snapshot;
          return first;
        }
      }
      this.#counted = { offset: 1, seq: 0 };
    }
    let counted: Counted = this.#counted;
    while (counted.offset <= streamSeq) {
      const messages = await scanSubject(this.#scan, this.subjects.commands, {
        from: counted.offset,
        limit: this.#options.pageSize,
        until: streamSeq,
        consistent: true,
      });
      if (messages.length === 0) break;
      for (const m of messages) {
        this.#remember(m.seq, counted.seq);
        counted = { offset: m.seq + 1, seq: counted.seq + 1 };
      }
      this.#counted = counted;
    }
    const position = this.#positions.get(streamSeq);
    if (position === undefined) {
      throw new InternalError(
        `message ${streamSeq} of ${this.stream} is not a command of run ${this.runId}`,
        {
          code: "nats_position_unknown",
          hint: "It may have been removed by the stream's limits (7 days, 100000 commands per run) meanwhile.",
        },
      );
    }
    return position;
  }

  /** `{offset: last + 1, seq: count}` of the run's commands, taken when nobody published in between. */
  async #snapshot(): Promise<Counted | undefined> {
    const subject = this.subjects.commands;
    for (let attempt = 0; attempt < SNAPSHOT_ATTEMPTS; attempt++) {
      const before = await getLast(this.#scan, subject, true);
      const info = await this.#jsm.streams.info(this.stream, { subjects_filter: subject });
      const after = await getLast(this.#scan, subject, true);
      if (before?.seq === after?.seq) {
        return { offset: (after?.seq ?? 0) + 1, seq: info.state.subjects?.[subject] ?? 0 };
      }
    }
    return undefined;
  }

  #remember(streamSeq: number, seq: number): void {
    this.#positions.set(streamSeq, seq);
    if (this.#positions.size > POSITIONS_KEPT) {
      const oldest = this.#positions.keys().next();
      if (oldest.done !== true) this.#positions.delete(oldest.value);
    }
  }
}

/** Opens the NatsChannel of a run on one shared connection. */
export class NatsChannelFactory implements ControlChannelFactory {
  readonly nc: NatsConnection;
  #options: NatsChannelOptions;
  #ownsConnection: boolean;

  constructor(nc: NatsConnection, options: NatsChannelOptions = {}, ownsConnection = false) {
    this.nc = nc;
    this.#options = options;
    this.#ownsConnection = ownsConnection;
  }

  /** Connects with `settings`; close() closes that connection. */
  static async connect(
    settings: NatsSettings,
    options: NatsContextOptions = {},
  ): Promise<NatsChannelFactory> {
    const resolved = resolveNatsSettings(settings, options);
    const nc = await connectNats(resolved);
    return new NatsChannelFactory(nc, channelOptionsOf(resolved), true);
  }

  async open(runId: string): Promise<NatsChannel> {
    return await NatsChannel.open(this.nc, runId, this.#options);
  }

  async close(): Promise<void> {
    if (this.#ownsConnection) await this.nc.close();
  }
}

function channelOptionsOf(settings: ReturnType<typeof resolveNatsSettings>): NatsChannelOptions {
  const options: NatsChannelOptions = { prefix: settings.prefix };
  if (settings.jsDomain !== undefined) options.jsDomain = settings.jsDomain;
  if (settings.jsApiPrefix !== undefined) options.jsApiPrefix = settings.jsApiPrefix;
  return options;
}

function jetStreamOptions(options: NatsChannelOptions): {
  domain?: string;
  apiPrefix?: string;
  timeout?: number;
} {
  const out: { domain?: string; apiPrefix?: string; timeout?: number } = {};
  if (options.jsDomain !== undefined) out.domain = options.jsDomain;
  if (options.jsApiPrefix !== undefined) out.apiPrefix = options.jsApiPrefix;
  if (options.publishTimeoutMs !== undefined) out.timeout = options.publishTimeoutMs;
  return out;
}

/** The command a draft stands for, checked as the file queue checks it, plus the id rules of NATS. */
function checkedCommand(draft: CommandDraft): Command {
  if (typeof draft === "object" && draft !== null && "v" in draft) {
    throw new UserError('invalid command: the field "v" is the protocol version on NATS', {
      code: "invalid_command",
      hint: "Rename the field.",
    });
  }
  const command = commandFromDraft(draft);
  if (!isValidCommandId(command.id)) {
    throw new UserError("invalid command: id must be 1–1024 characters without control characters", {
      code: "invalid_command",
      hint: "It is sent as the Nats-Msg-Id header; omit it to get a UUID.",
    });
  }
  // The limit of a commands.jsonl line, which is what the bridge writes.
  commandLine(command);
  return toJsonModel(command);
}

/** An ack's `Nats-Msg-Id`: the same record republished is a duplicate, a new ack (new `ts`) is not. */
export function ackMsgId(ack: Ack): string {
  const key = JSON.stringify([ack.id, ack.seq ?? null, ack.rank ?? null, ack.ts]);
  return `ack-${createHash("sha256").update(key).digest("hex").slice(0, 32)}`;
}

type TransientKind = "timeout" | "no_responders" | "disconnect";

function transientKind(error: unknown): TransientKind | undefined {
  if (error instanceof TimeoutError) return "timeout";
  if (!(error instanceof Error)) return undefined;
  if (error.name === "TimeoutError") return "timeout";
  // nats.js turns "no responders" on a JetStream publish into JetStreamNotEnabled.
  if (error.name === "JetStreamNotEnabled" || error.name === "NoRespondersError") return "no_responders";
  if (error.name === "RequestError" && /disconnect/i.test(error.message)) return "disconnect";
  if (error.cause instanceof Error) return transientKind(error.cause);
  return undefined;
}

const DROPPED = Symbol("dropped");

/** `work`'s result, or DROPPED when the connection drops first (`work` is then left to fail on its own). */
function untilDisconnect<T>(state: ConnectionState, work: Promise<T>): Promise<T | typeof DROPPED> {
  return new Promise((resolve, reject) => {
    const off = state.onDisconnect(() => resolve(DROPPED));
    work.then(
      (value) => {
        off();
        resolve(value);
      },
      (error: unknown) => {
        off();
        reject(error);
      },
    );
  });
}

const TIMED_OUT = Symbol("timed out");

/** `promise`, or a TimeoutError after `ms`, or an error as soon as `signal` aborts. */
async function within<T>(promise: Promise<T>, ms: number, signal?: AbortSignal): Promise<T> {
  if (signal?.aborted === true) throw new Error("the channel is closed");
  const abort = new AbortController();
  const timer = delay(Math.max(0, ms), undefined, { signal: abort.signal }).then(
    () => TIMED_OUT,
    () => TIMED_OUT,
  );
  const closed = new Promise<typeof TIMED_OUT>((_resolve, reject) => {
    const onAbort = () => reject(new Error("the channel is closed"));
    signal?.addEventListener("abort", onAbort, { once: true });
    abort.signal.addEventListener("abort", () => signal?.removeEventListener("abort", onAbort), {
      once: true,
    });
  });
  closed.catch(() => {});
  try {
    const result = await Promise.race([promise, timer, closed]);
    if (result === TIMED_OUT) throw new TimeoutError();
    return result as T;
  } finally {
    abort.abort();
  }
}

function isDisconnected(error: unknown): boolean {
  return error instanceof ProviderError && error.code === "nats_disconnected";
}

/** JetStream refused a publish whose expected last (subject) sequence did not match. */
function isWrongLastSequence(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (e instanceof JetStreamApiError && (e.code === 10071 || e.code === 10164)) return true;
  }
  return false;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
