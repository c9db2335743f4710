/**
 * The supervisor's bridge between a run's NATS channel and its node-local file
 * queue, so Python ranks steer through the standard library only
 * (docs/protocol.md, "The node-local bridge"):
 * - each NATS command is appended to `commands.jsonl` as it is stored, in
 *   stream order, as the map without `v` (an ordered consumer delivers it; a
 *   slow poll is only a safety net), so a rank sees it at its next poll;
 * - a message that cannot become a line (malformed, an invalid id, over
 *   64 KiB) is acked `rejected` by the bridge (rank -1) and takes a blank
 *   line, so file seqs stay equal to NATS seqs; every other map is appended
 *   verbatim and the ranks answer it, as they would answer the same line;
 * - acks the ranks (and the supervisor, for `signal`) append to `acks.jsonl`
 *   are republished as they are written (fs.watch on the queue directory) with
 *   the command's NATS `seq`; acks of commands that did not come from NATS stay
 *   local;
 * - `controls.json` is republished when it changes;
 * - the run's state is published: `running` at start, `ended` at stop.
 * Its position in each direction is kept in `bridge.json`, moved past a message
 * only once that message is handled, so a restarted supervisor neither drops
 * nor repeats anything and one bad message can never hold up the ones after it.
 */
import { type FSWatcher, mkdirSync, readFileSync, watch } from "node:fs";
import { join } from "node:path";
import { ControlCursor, START_CURSOR } from "@runctl/core";
import { readJsonl, writeFileAtomicSync } from "@runctl/core/internal";
import { z } from "zod";
import { AckRecord } from "./ack.ts";
import type { FileQueue } from "./file-queue.ts";
import { QUEUE_FILES } from "./layout.ts";
import type { Follower, NatsChannel } from "./nats/channel.ts";
import type { SubjectMessage } from "./nats/scan.ts";
import { decodeCommand } from "./nats/wire.ts";

const BridgeState = z.object({
  remote: ControlCursor,
  /** Byte offset in `acks.jsonl` up to which acks are republished. */
  ackOffset: z.number().int().nonnegative().default(0),
  seqById: z.record(z.string(), z.number().int().nonnegative()),
  controls: z.string().nullable(),
});
type BridgeState = z.infer<typeof BridgeState>;

export const BRIDGE_STATE_FILE = "bridge.json";
/** Remembered id → remote seq pairs, for acks that arrive late. */
const SEQ_MEMORY = 4096;
/** Acks republished at once, at most. */
const ACKS_IN_FLIGHT = 64;
/** The safety net: a full pass in both directions this often, whatever the events said. */
const DEFAULT_SAFETY_MS = 2_000;

export interface BridgeOptions {
  remote: NatsChannel;
  local: FileQueue;
  /** How often the safety-net pass runs (default 2 s); events do the real work. */
  safetyIntervalMs?: number;
  onWarning?: (message: string) => void;
}

export class ControlBridge {
  readonly #remote: NatsChannel;
  readonly #local: FileQueue;
  readonly #statePath: string;
  readonly #safetyMs: number;
  readonly #warn: (message: string) => void;
  #state: BridgeState;
  #follower: Follower | undefined;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Every step runs after the previous one, so the state is never changed by two at once. */
  #tail: Promise<void> = Promise.resolve();
  #outboundQueued = false;
  #runningWritten = false;
  #stopped = false;
  #lastWarning = "";

  constructor(options: BridgeOptions) {
    this.#remote = options.remote;
    this.#local = options.local;
    this.#statePath = join(options.local.dir, BRIDGE_STATE_FILE);
    this.#safetyMs = options.safetyIntervalMs ?? DEFAULT_SAFETY_MS;
    this.#warn = options.onWarning ?? (() => undefined);
    this.#state = this.#load();
  }

  start(): this {
    this.#follower = this.#remote.follow(
      "commands",
      this.#state.remote.offset,
      (message) => this.#step(() => this.#inbound(message), true),
      (error) => this.#report(error),
    );
    try {
      mkdirSync(this.#local.dir, { recursive: true });
      this.#watcher = watch(this.#local.dir, (_event, name) => {
        // Only what goes out: not commands.jsonl or bridge.json, which the bridge writes itself.
        if (name === null || name === QUEUE_FILES.acks || name.startsWith(QUEUE_FILES.controls)) {
          this.#kickOutbound();
        }
      });
      this.#watcher.on("error", (error) => this.#report(error));
    } catch (error) {
      // Without events the safety net still carries acks, only later.
      this.#report(error);
    }
    this.#timer = setInterval(() => void this.sync(), this.#safetyMs);
    this.#timer.unref();
    void this.sync();
    return this;
  }

  /**
   * Stops after one last pass, so acks written just before the run ended still
   * go out, and says the run has ended.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#watcher?.close();
    await this.#follower?.stop();
    await this.sync();
    await this.#step(() => this.#remote.writeState("ended"));
  }

  /** One pass in each direction (the safety net); failures are reported once and retried next pass. */
  async sync(): Promise<void> {
    if (!this.#runningWritten && !this.#stopped) {
      await this.#step(async () => {
        await this.#remote.writeState("running");
        this.#runningWritten = true;
      });
    }
    await this.#step(async () => {
      for (;;) {
        const messages = await this.#remote.readMessages(this.#state.remote.offset);
        for (const message of messages) await this.#inbound(message);
        if (messages.length === 0) break;
      }
    });
    await this.#step(() => this.#outbound());
  }

  /**
   * Runs `work` after every earlier step. A failure is reported (once per
   * distinct message) and, with `rethrow`, handed back so the follower
   * delivers the same message again.
   */
  #step(work: () => Promise<void> | void, rethrow = false): Promise<void> {
    const run = this.#tail.then(async () => {
      await work();
      this.#lastWarning = "";
    });
    this.#tail = run.catch((error: unknown) => this.#report(error));
    return rethrow ? run : this.#tail;
  }

  #kickOutbound(): void {
    if (this.#outboundQueued || this.#stopped) return;
    this.#outboundQueued = true;
    void this.#step(() => {
      this.#outboundQueued = false;
      return this.#outbound();
    });
  }

  /** One message of the command subject, handled once: messages before the cursor were handled already. */
  async #inbound(message: SubjectMessage): Promise<void> {
    const cursor = this.#state.remote;
    if (message.seq < cursor.offset) return;
    const seq = cursor.seq;
    const { entry, line } = decodeCommand(message.data, seq, message.msgId);
    if (line !== undefined) {
      // A command, or a map every rank rejects on its own (args not a list …): the ranks answer.
      this.#local.appendLineSync(line);
      this.#remember(entry.kind === "command" ? entry.command.id : entry.id, seq);
    } else {
      const malformed = entry.kind === "malformed" ? entry : undefined;
      // A rank could not read it faithfully (or at all): the bridge answers for every rank.
      await this.#remote.appendAck({
        id: malformed?.id ?? `seq-${seq}`,
        ts: Date.now() / 1000,
        path: malformed?.path ?? null,
        op: malformed?.op ?? "invalid",
        status: "rejected",
        error: malformed?.reason ?? "malformed command",
        rank: -1,
        seq,
      });
      // A blank line takes the seq and is skipped by every rank: file seqs stay NATS seqs.
      this.#local.appendLineSync("");
    }
    this.#state.remote = { seq: seq + 1, offset: message.seq + 1 };
    this.#save();
  }

  async #outbound(): Promise<void> {
    const page = await readJsonl(this.#local.acksPath, { since: this.#state.ackOffset });
    const acks: AckRecord[] = [];
    for (const record of page.records) {
      const parsed = AckRecord.safeParse(record);
      if (!parsed.success) continue;
      const seq = this.#seqOf(parsed.data.id);
      // Acks of commands published straight into the file queue stay local.
      if (seq !== undefined) acks.push({ ...parsed.data, seq });
    }
    // In flight together (N ranks' acks cost one round trip, not N), a bounded number at a time;
    // their order on the subject does not matter, readers group acks by (id, seq, rank). If one
    // fails, the offset stays and all are sent again: the same record has the same Nats-Msg-Id,
    // so the stream keeps one.
    for (let i = 0; i < acks.length; i += ACKS_IN_FLIGHT) {
      const results = await Promise.allSettled(
        acks.slice(i, i + ACKS_IN_FLIGHT).map((ack) => this.#remote.appendAck(ack)),
      );
      const failed = results.find((r) => r.status === "rejected");
      if (failed !== undefined) throw failed.reason;
    }
    if (page.offset !== this.#state.ackOffset) {
      this.#state.ackOffset = page.offset;
      this.#save();
    }
    const controls = await this.#local.readControls();
    const text = controls === null ? null : JSON.stringify(controls);
    if (controls !== null && text !== this.#state.controls) {
      await this.#remote.writeControls(controls);
      this.#state.controls = text;
      this.#save();
    }
  }

  #report(error: unknown): void {
    const message = `control bridge: ${error instanceof Error ? error.message : String(error)}`;
    if (message !== this.#lastWarning) this.#warn(message);
    this.#lastWarning = message;
  }

  #seqOf(id: string): number | undefined {
    return Object.hasOwn(this.#state.seqById, id) ? this.#state.seqById[id] : undefined;
  }

  #remember(id: string, seq: number): void {
    // defineProperty: an id such as `__proto__` is a key like any other.
    Object.defineProperty(this.#state.seqById, id, {
      value: seq,
      enumerable: true,
      writable: true,
      configurable: true,
    });
    const ids = Object.keys(this.#state.seqById);
    for (const old of ids.slice(0, Math.max(0, ids.length - SEQ_MEMORY))) delete this.#state.seqById[old];
  }

  #save(): void {
    writeFileAtomicSync(this.#statePath, `${JSON.stringify(this.#state)}\n`);
  }

  #load(): BridgeState {
    try {
      return BridgeState.parse(JSON.parse(readFileSync(this.#statePath, "utf8")));
    } catch {
      return { remote: { ...START_CURSOR }, ackOffset: 0, seqById: {}, controls: null };
    }
  }
}
