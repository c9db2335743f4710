/**
 * Runtime control messages and the ControlChannel contract. Field names are
 * runtimectl's (`commands.jsonl`, `acks.jsonl`) so its users' files and habits
 * carry over; `ts` is seconds since the epoch as runtimectl writes it.
 */
import { z } from "zod";

export const Command = z
  .object({
    id: z.string().min(1),
    ts: z.number(),
    op: z.string().default("set"),
    path: z.string(),
    args: z.array(z.unknown()).default([]),
    kwargs: z.record(z.string(), z.unknown()).default({}),
  })
  .passthrough();
export type Command = z.output<typeof Command>;
export type CommandInput = z.input<typeof Command>;

export const AckStatus = z.enum(["applied", "rejected", "failed"]);
export type AckStatus = z.infer<typeof AckStatus>;

export const Ack = z
  .object({
    id: z.string(),
    ts: z.number(),
    path: z.string().nullable(),
    op: z.string(),
    status: AckStatus,
    error: z.string().optional(),
    /** The validated value that was applied, when JSON-representable. */
    value: z.unknown().optional(),
    /** The acking rank; -1 is the supervisor (for its own `signal` op). */
    rank: z.number().int().min(-1).optional(),
    world_size: z.number().int().positive().optional(),
    /** Position of the command in the run's total order. */
    seq: z.number().int().nonnegative().optional(),
  })
  .passthrough();
export type Ack = z.infer<typeof Ack>;

/** A control a training script registered, as published for `runctl ctl <run> controls`. */
export const ControlDescriptor = z
  .object({
    path: z.string().min(1),
    description: z.string().optional(),
    /** JSON Schema of the arguments, when the script gave one. */
    schema: z.record(z.string(), z.unknown()).optional(),
    value: z.unknown().optional(),
  })
  .strict();
export type ControlDescriptor = z.infer<typeof ControlDescriptor>;

export interface SequencedCommand {
  /** 0-based position in the run's single total order of commands. */
  seq: number;
  command: Command;
}

/**
 * ControlChannel —
 * The ControlChannel contract, refined from core's: a channel is opened for one
 * run (a queue directory here, a run's subjects on NATS), so no method takes a
 * run id. Consumers read in the run's one total order from a cursor and get
 * every line back, including the ones that are not commands, so every
 * consumer acks them the same way.
 */

/** What a publisher hands in: a command whose `id` and `ts` are filled in when missing. */
export const CommandDraft = Command.extend({
  id: z.string().min(1).optional(),
  ts: z.number().optional(),
});
export type CommandDraft = z.input<typeof CommandDraft>;

/**
 * Where a consumer stands: `seq` of the next entry and the channel's position
 * of it (a byte offset in `commands.jsonl`; a stream sequence on NATS).
 */
export const ControlCursor = z.object({
  seq: z.number().int().nonnegative(),
  offset: z.number().int().nonnegative(),
});
export type ControlCursor = z.infer<typeof ControlCursor>;

export const START_CURSOR: Readonly<ControlCursor> = Object.freeze({ seq: 0, offset: 0 });

/**
 * A command as read back: core's `Command` except that `path` is null when the
 * line has none (the supervisor's `signal`) or a non-string one, and `op` is the
 * JSON text of a non-string op. `id` is `seq-<seq>` when the line has none.
 */
export interface ControlCommand {
  id: string;
  ts: number;
  op: string;
  path: string | null;
  args: unknown[];
  kwargs: Record<string, unknown>;
  [key: string]: unknown;
}

/** A JSON object with a list of args and an object of kwargs, at its place in the total order. */
export interface CommandEntry {
  kind: "command";
  seq: number;
  command: ControlCommand;
}

/**
 * A line every consumer rejects whatever is registered (docs/control.md checks
 * 1–3), with `reason` as the ack's `error`.
 */
export interface MalformedEntry {
  kind: "malformed";
  seq: number;
  /** The line's `id` when one could be read, else `seq-<seq>`. */
  id: string;
  /** `"invalid"` for a line that is not a JSON object (check 1), else the command's op. */
  op: string;
  path: string | null;
  /** The exact ack error: `malformed command: …`, `args must be a list` or `kwargs must be an object`. */
  reason: string;
  /**
   * True when the line is a JSON object (checks 2–3): its id then counts for
   * de-duplication like a command's. When absent, `op === "invalid"` means check 1.
   */
  fromObject?: boolean;
}

export type ControlEntry = CommandEntry | MalformedEntry;

export interface ControlPage {
  /** Entries with `seq >= cursor.seq`, in order; blank lines take a seq but yield no entry. */
  entries: ControlEntry[];
  /** The cursor after the last complete line read: pass it back to read on. */
  cursor: ControlCursor;
}

export interface AckFilter {
  commandId?: string;
}

export interface ControlChannel {
  /** Appends a command to the run's total order (filling `id` and `ts`) and returns its seq. */
  publish(command: CommandDraft): Promise<SequencedCommand>;
  /** Complete entries from `cursor` on; an incomplete last entry is left for a later read. */
  read(cursor?: ControlCursor): Promise<ControlPage>;
  appendAck(ack: Ack): Promise<void>;
  readAcks(filter?: AckFilter): Promise<Ack[]>;
  /** Replaces the description of the run's registered controls. */
  writeControls(controls: ControlDescriptor[]): Promise<void>;
  /** The registered controls, or null when no controller has described any yet. */
  readControls(): Promise<ControlDescriptor[] | null>;
  close(): Promise<void>;
}

/** Opens the channel of one run: a file queue for a run directory, NATS subjects for a run id. */
export interface ControlChannelFactory {
  open(runId: string): Promise<ControlChannel>;
}
