/**
 * Reading one subject of the control stream in stream order from a stream
 * sequence. A few messages are fetched one by one with "get next message for
 * subject at or after seq" (one request each, no server-side state, so "no
 * new message" costs one round trip); when more follow, one ephemeral
 * consumer (memory storage, no acks, deleted at the end and by the server
 * after 30 s of inactivity anyway) streams the rest, which is far cheaper per
 * message. Nothing durable is ever created.
 */

import type { JetStreamClient, JetStreamManager, MsgRequest, StoredMsg } from "@nats-io/jetstream";
import { nuid } from "@nats-io/transport-node";
import { nanos } from "./subjects.ts";

/** Messages fetched one by one before switching to a consumer. */
export const DIRECT_STEPS = 8;
/** Messages asked for per pull of the scan consumer. */
const PULL_BATCH = 1024;
/** How long one pull waits for messages the consumer said were pending. */
const PULL_EXPIRES_MS = 5_000;

export interface SubjectMessage {
  /** The stream sequence. */
  seq: number;
  data: Uint8Array;
  /** The `Nats-Msg-Id` header, when the publisher set one. */
  msgId: string | undefined;
}

export interface ScanContext {
  js: JetStreamClient;
  jsm: JetStreamManager;
  stream: string;
}

export interface ScanOptions {
  /** Stream sequence to start at (inclusive); 0 and 1 both mean the first. */
  from: number;
  /** At most this many messages. */
  limit: number;
  /** Stop after the first message whose stream sequence is `>= until`. */
  until?: number;
  /**
   * Read through the stream leader (`STREAM.MSG.GET`) rather than "direct
   * get", which any replica may answer and may therefore lag behind a PubAck.
   */
  consistent?: boolean;
}

export async function scanSubject(
  ctx: ScanContext,
  subject: string,
  options: ScanOptions,
): Promise<SubjectMessage[]> {
  const out: SubjectMessage[] = [];
  const done = (m: SubjectMessage) =>
    out.length >= options.limit || (options.until !== undefined && m.seq >= options.until);
  let next = Math.max(1, options.from);
  while (out.length < Math.min(options.limit, DIRECT_STEPS)) {
    const m = await getNext(ctx, subject, next, options.consistent === true);
    if (m === null) return out;
    out.push(m);
    if (done(m)) return out;
    next = m.seq + 1;
  }
  if (out.length >= options.limit) return out;
  await streamRest(ctx, subject, next, out, done);
  return out;
}

/**
 * scanSubject through API subjects that name `subject`, so a client whose
 * credentials are scoped to one run can make it (docs/protocol.md,
 * "Security"): the subject's last message by direct get
 * (`$JS.API.DIRECT.GET.<stream>.<subject>`) says whether anything is new
 * (one request when nothing is), and a consumer created with the filter in
 * its API subject reads the rest. Neither can read another subject.
 */
export async function scanSubjectScoped(
  ctx: ScanContext,
  subject: string,
  options: Pick<ScanOptions, "from" | "limit">,
): Promise<SubjectMessage[]> {
  const from = Math.max(1, options.from);
  const last = await getLast(ctx, subject, false);
  if (last === null || last.seq < from || options.limit <= 0) return [];
  if (last.seq === from) return [last];
  const out: SubjectMessage[] = [];
  await streamRest(ctx, subject, from, out, () => out.length >= options.limit);
  return out;
}

/** The first message of `subject` at or after stream sequence `seq`, or null. */
export async function getNext(
  ctx: ScanContext,
  subject: string,
  seq: number,
  consistent: boolean,
): Promise<SubjectMessage | null> {
  const m = consistent
    ? // `next_by_subj` is part of STREAM.MSG.GET since nats-server 2.9; the client's type lags behind.
      await ctx.jsm.streams.getMessage(ctx.stream, { seq, next_by_subj: subject } as unknown as MsgRequest)
    : await ctx.jsm.direct.getMessage(ctx.stream, { seq, next_by_subj: subject });
  return m === null ? null : stored(m);
}

/** The last message of `subject`, or null when it has none. */
export async function getLast(
  ctx: ScanContext,
  subject: string,
  consistent: boolean,
): Promise<SubjectMessage | null> {
  const m = consistent
    ? await ctx.jsm.streams.getMessage(ctx.stream, { last_by_subj: subject })
    : await ctx.jsm.direct.getMessage(ctx.stream, { last_by_subj: subject });
  return m === null ? null : stored(m);
}

/** The message at stream sequence `seq` (any subject), or null. */
export async function getAt(
  ctx: ScanContext,
  seq: number,
): Promise<(SubjectMessage & { subject: string }) | null> {
  const m = await ctx.jsm.streams.getMessage(ctx.stream, { seq });
  return m === null ? null : { ...stored(m), subject: m.subject };
}

function stored(m: StoredMsg): SubjectMessage {
  return { seq: m.seq, data: m.data, msgId: m.header?.get("Nats-Msg-Id") || undefined };
}

async function streamRest(
  ctx: ScanContext,
  subject: string,
  from: number,
  out: SubjectMessage[],
  done: (m: SubjectMessage) => boolean,
): Promise<void> {
  const name = `runctl_scan_${nuid.next()}`;
  const info = await ctx.jsm.consumers.add(ctx.stream, {
    name,
    filter_subject: subject,
    deliver_policy: "by_start_sequence",
    opt_start_seq: from,
    ack_policy: "none",
    mem_storage: true,
    num_replicas: 1,
    inactive_threshold: nanos(30_000),
  });
  try {
    // Everything matching at creation; later messages are left for the next scan.
    let pending = info.num_pending;
    if (pending === 0) return;
    const consumer = await ctx.js.consumers.get(ctx.stream, name);
    while (pending > 0) {
      const want = Math.min(pending, PULL_BATCH);
      const batch = await consumer.fetch({ max_messages: want, expires: PULL_EXPIRES_MS });
      let got = 0;
      for await (const m of batch) {
        got++;
        const message: SubjectMessage = {
          seq: m.seq,
          data: m.data,
          msgId: m.headers?.get("Nats-Msg-Id") || undefined,
        };
        out.push(message);
        if (done(message)) {
          batch.stop();
          return;
        }
      }
      // Fewer than pending: messages were removed meanwhile (limits); what there was is read.
      if (got < want) return;
      pending -= got;
    }
  } finally {
    await ctx.jsm.consumers.delete(ctx.stream, name).catch(() => false);
  }
}
