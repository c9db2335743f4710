/** A run's commands in their total order, each with the acks every rank wrote for it. */
import type { Ack } from "@runctl/core";
import { type ControlChannel, type ControlEntry, START_CURSOR } from "@runctl/core";

export interface HistoryItem {
  entry: ControlEntry;
  /** Acks for this entry (same `id`, and same `seq` when the ack has one), in the order written. */
  acks: Ack[];
}

export async function readHistory(channel: ControlChannel): Promise<HistoryItem[]> {
  const entries: ControlEntry[] = [];
  let cursor = START_CURSOR;
  for (;;) {
    const page = await channel.read(cursor);
    entries.push(...page.entries);
    if (page.cursor.offset === cursor.offset) break;
    cursor = page.cursor;
  }
  const byId = new Map<string, Ack[]>();
  for (const ack of await channel.readAcks()) {
    const list = byId.get(ack.id) ?? [];
    list.push(ack);
    byId.set(ack.id, list);
  }
  return entries.map((entry) => ({
    entry,
    acks: (byId.get(entryId(entry)) ?? []).filter((ack) => ack.seq === undefined || ack.seq === entry.seq),
  }));
}

export function entryId(entry: ControlEntry): string {
  return entry.kind === "command" ? entry.command.id : entry.id;
}
