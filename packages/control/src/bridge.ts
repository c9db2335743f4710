/**
 * The supervisor's bridge between a run's remote channel (NATS) and its
 * node-local file queue, so Python ranks steer through the standard library
 * only (docs/protocol.md, "The bridge"):
 * - remote commands are appended to `commands.jsonl` in the remote order;
 * - acks the ranks (and the supervisor, for `signal`) append to `acks.jsonl`
 *   are republished remotely with the command's remote `seq`; acks of commands
 *   that did not come from the remote stay local;
 * - `controls.json` is republished when it changes;
 * - malformed remote entries are acked `rejected` remotely by the bridge (rank -1).
 * Its position in each direction is kept in `bridge.json`, so a restarted
 * supervisor neither drops nor repeats anything.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type ControlChannel, ControlCursor, START_CURSOR } from "@runctl/core";
import { writeFileAtomicSync } from "@runctl/core/internal";
import { z } from "zod";
import type { FileQueue } from "./file-queue.ts";

const BridgeState = z.object({
  remote: ControlCursor,
  acks: z.number().int().nonnegative(),
  seqById: z.record(z.string(), z.number().int().nonnegative()),
  controls: z.string().nullable(),
});
type BridgeState = z.infer<typeof BridgeState>;

export const BRIDGE_STATE_FILE = "bridge.json";
/** Remembered id → remote seq pairs, for acks that arrive late. */
const SEQ_MEMORY = 4096;

export interface BridgeOptions {
  remote: ControlChannel;
  local: FileQueue;
  intervalMs?: number;
  onWarning?: (message: string) => void;
}

export class ControlBridge {
  readonly #remote: ControlChannel;
  readonly #local: FileQueue;
  readonly #statePath: string;
  readonly #intervalMs: number;
  readonly #warn: (message: string) => void;
  #state: BridgeState;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();
  #stopped = false;
  #lastWarning = "";

  constructor(options: BridgeOptions) {
    this.#remote = options.remote;
    this.#local = options.local;
    this.#statePath = join(options.local.dir, BRIDGE_STATE_FILE);
    this.#intervalMs = options.intervalMs ?? 200;
    this.#warn = options.onWarning ?? (() => undefined);
    this.#state = this.#load();
  }

  start(): this {
    const tick = () => {
      this.#running = this.sync().finally(() => {
        if (!this.#stopped) this.#timer = setTimeout(tick, this.#intervalMs);
      });
    };
    tick();
    return this;
  }

  /** Stops polling after one last sync, so acks written just before the run ended still go out. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
    await this.sync();
  }

  /** One pass in each direction; failures (e.g. NATS down) are reported once and retried next pass. */
  async sync(): Promise<void> {
    try {
      await this.#inbound();
      await this.#outbound();
      this.#lastWarning = "";
    } catch (error) {
      const message = `control bridge: ${error instanceof Error ? error.message : String(error)}`;
      if (message !== this.#lastWarning) this.#warn(message);
      this.#lastWarning = message;
    } finally {
      writeFileAtomicSync(this.#statePath, `${JSON.stringify(this.#state)}\n`);
    }
  }

  async #inbound(): Promise<void> {
    for (;;) {
      const page = await this.#remote.read(this.#state.remote);
      for (const entry of page.entries) {
        if (entry.kind === "command") {
          const { seq: _seq, ...command } = entry.command;
          this.#local.publishSync({ ...command, path: command.path ?? "" });
          this.#remember(entry.command.id, entry.seq);
        } else {
          await this.#remote.appendAck({
            id: entry.id,
            ts: Date.now() / 1000,
            path: entry.path,
            op: entry.op,
            status: "rejected",
            error: entry.reason,
            rank: -1,
            seq: entry.seq,
          });
        }
      }
      const moved = page.cursor.offset !== this.#state.remote.offset;
      this.#state.remote = page.cursor;
      if (!moved || page.entries.length === 0) return;
    }
  }

  async #outbound(): Promise<void> {
    const acks = await this.#local.readAcks();
    for (const ack of acks.slice(this.#state.acks)) {
      const seq = this.#state.seqById[ack.id];
      // Acks of commands published straight into the file queue stay local.
      if (seq !== undefined) await this.#remote.appendAck({ ...ack, seq });
      this.#state.acks++;
    }
    const controls = await this.#local.readControls();
    const text = controls === null ? null : JSON.stringify(controls);
    if (controls !== null && text !== this.#state.controls) {
      await this.#remote.writeControls(controls);
      this.#state.controls = text;
    }
  }

  #remember(id: string, seq: number): void {
    this.#state.seqById[id] = seq;
    const ids = Object.keys(this.#state.seqById);
    for (const old of ids.slice(0, Math.max(0, ids.length - SEQ_MEMORY))) delete this.#state.seqById[old];
  }

  #load(): BridgeState {
    try {
      return BridgeState.parse(JSON.parse(readFileSync(this.#statePath, "utf8")));
    } catch {
      return { remote: { ...START_CURSOR }, acks: 0, seqById: {}, controls: null };
    }
  }
}
