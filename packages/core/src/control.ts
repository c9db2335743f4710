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
    rank: z.number().int().nonnegative().optional(),
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

export interface ControlChannel {
  publish(runId: string, command: CommandInput): Promise<SequencedCommand>;
  /** Commands with `seq >= cursor`, in order. */
  consume(runId: string, cursor: number): Promise<SequencedCommand[]>;
  ack(runId: string, ack: Ack): Promise<void>;
  acks(runId: string, commandId?: string): Promise<Ack[]>;
  describeControls(runId: string, controls: ControlDescriptor[]): Promise<void>;
  controls(runId: string): Promise<ControlDescriptor[] | null>;
  close(): Promise<void>;
}
