/**
 * A rank's consumer state (`cursor.rank<N>.json`, `stateDict()`): the next seq,
 * its byte offset, and the ids of the last applied commands, so a restarted
 * rank (or a publisher's retry) never applies a command twice.
 */

import { ControlCursor } from "@runctl/core";
import { z } from "zod";
import { APPLIED_IDS_KEPT } from "./layout.ts";

export const ControlState = ControlCursor.extend({
  applied_ids: z.array(z.string()).default([]),
}).loose();
export type ControlState = z.output<typeof ControlState>;

/** The applied-id memory: insertion-ordered, trimmed to the newest APPLIED_IDS_KEPT. */
export class AppliedIds {
  #ids = new Set<string>();

  constructor(ids: Iterable<string> = []) {
    for (const id of ids) this.add(id);
  }

  has(id: string): boolean {
    return this.#ids.has(id);
  }

  add(id: string): void {
    this.#ids.delete(id);
    this.#ids.add(id);
    while (this.#ids.size > APPLIED_IDS_KEPT) {
      const oldest = this.#ids.values().next().value;
      if (oldest === undefined) break;
      this.#ids.delete(oldest);
    }
  }

  toArray(): string[] {
    return [...this.#ids];
  }
}
