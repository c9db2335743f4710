/**
 * Acks as they are written to and read from `acks.jsonl`. Core's `Ack` with one
 * refinement: the supervisor acks the `signal` op it applies itself with rank
 * -1 (docs/control.md), so rank may be -1.
 */
import { Ack } from "@runctl/core";
import { z } from "zod";

export const AckRecord = Ack.extend({
  rank: z.number().int().min(-1).optional(),
});
export type AckRecord = z.infer<typeof AckRecord>;
