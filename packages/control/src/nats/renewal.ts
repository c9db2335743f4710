/**
 * Renewing a run's NATS credentials before they expire (docs/protocol.md,
 * "Renewal"): the machine asks on `<prefix>.tel.<run>.renew` (a request; only
 * holders of the run's credentials, and the launching side, may publish
 * there) and the launching side, which holds the account seed, answers with a
 * fresh `.creds` for the same run. The machine then reconnects with them: a
 * connection made with `connectNats(settings, { credentials })` reads the
 * current text at every (re)connect.
 */
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { PresignedPost, ProviderError } from "@runctl/core";
import { z } from "zod";
import { accountKeyPair, mintRunCredentials, type RunCredentials } from "./credentials.ts";
import { requestWhenListening } from "./request.ts";
import { telemetrySubjects } from "./subjects.ts";
import { decodeMessage, encodeMessage } from "./wire.ts";

const RenewalGranted = z
  .object({
    creds: z.string().min(1),
    /** Seconds since the epoch. */
    expires_at: z.number(),
    inbox_prefix: z.string().min(1),
    /** A fresh POST policy for the run's prefix in the store, when the launching side makes them. */
    post: PresignedPost.optional(),
  })
  .loose();
const RenewalRefused = z.object({ error: z.string() }).loose();
/** The answer to a renewal request: new credentials, or why not. */
export const RenewalReply = z.union([RenewalRefused, RenewalGranted]);
export type RenewalReply = z.infer<typeof RenewalReply>;

export interface ServeCredentialRenewalsOptions {
  /** The launching side's connection (its user may publish to the machine's inbox). */
  connection: NatsConnection;
  /** The account seed (`SA…`) that signs; see mintRunCredentials. */
  account: string;
  issuerAccount?: string;
  prefix: string;
  runId: string;
  hostId?: string;
  /** Lifetime of each renewed credential. */
  expiresInSeconds: number;
  /** A fresh POST policy for the run's store prefix, sent with the credentials (the run sync's). */
  presignPost?: () => Promise<PresignedPost>;
  /** Asked before each renewal; false refuses it (the run has ended). Default: always renew. */
  isActive?: () => boolean | Promise<boolean>;
  onRenewal?: (minted: RunCredentials) => void;
  onError?: (error: unknown) => void;
}

export interface RenewalService {
  /** Resolves once the server has the subscription: a request sent after it is answered. */
  ready: Promise<void>;
  /** Stops answering. */
  stop(): Promise<void>;
}

/** Answers one run's renewal requests with fresh credentials for that run, until stopped. */
export function serveCredentialRenewals(options: ServeCredentialRenewalsOptions): RenewalService {
  // A wrong seed is the caller's configuration error: say so now, not at the first request.
  accountKeyPair(options.account);
  const subject = telemetrySubjects(options.prefix, options.runId).renew;
  const sub: Subscription = options.connection.subscribe(subject, {
    callback: (error, msg) => {
      if (error !== null) {
        options.onError?.(error);
        return;
      }
      void (async () => {
        let reply: Record<string, unknown>;
        try {
          if (options.isActive !== undefined && !(await options.isActive())) {
            reply = { error: `run ${options.runId} is no longer active; its credentials are not renewed` };
          } else {
            const minted = await mintRunCredentials({
              account: options.account,
              ...(options.issuerAccount !== undefined ? { issuerAccount: options.issuerAccount } : {}),
              prefix: options.prefix,
              runId: options.runId,
              ...(options.hostId !== undefined ? { hostId: options.hostId } : {}),
              expiresInSeconds: options.expiresInSeconds,
            });
            options.onRenewal?.(minted);
            reply = {
              creds: minted.creds,
              expires_at: minted.expiresAt.getTime() / 1000,
              inbox_prefix: minted.inboxPrefix,
              ...(options.presignPost ? { post: await options.presignPost() } : {}),
            };
          }
        } catch (e) {
          options.onError?.(e);
          reply = { error: "the launching side could not mint credentials" };
        }
        msg.respond(encodeMessage(reply));
      })().catch((e: unknown) => options.onError?.(e));
    },
  });
  return {
    ready: options.connection.flush(),
    stop: async () => {
      await sub.drain().catch(() => sub.unsubscribe());
    },
  };
}

export interface RenewedCredentials {
  creds: string;
  expiresAt: Date;
  inboxPrefix: string;
  /** A fresh POST policy for the run's store prefix, if the launching side sent one. */
  post?: PresignedPost;
}

/** Asks the launching side for fresh credentials for `runId` (on a connection that holds the current ones). */
export async function renewRunCredentials(
  nc: NatsConnection,
  options: { prefix: string; runId: string; timeoutMs?: number },
): Promise<RenewedCredentials> {
  const subject = telemetrySubjects(options.prefix, options.runId).renew;
  const fail = (why: string, cause?: unknown) =>
    new ProviderError(`renewing the NATS credentials of run ${options.runId} failed: ${why}`, {
      code: "nats_renewal_failed",
      hint: "The launching side answers renewals while the run is active (serveCredentialRenewals); mint new ones with `runctl nats creds`.",
      ...(cause !== undefined ? { cause } : {}),
    });
  let bytes: Uint8Array;
  try {
    bytes = (
      await requestWhenListening(nc, subject, encodeMessage({ ts: Date.now() / 1000 }), {
        timeoutMs: options.timeoutMs ?? 10_000,
      })
    ).data;
  } catch (error) {
    throw fail(error instanceof Error ? error.message : String(error), error);
  }
  const decoded = decodeMessage(bytes);
  if (!decoded.ok) throw fail(`unreadable reply: ${decoded.reason}`);
  const refused = RenewalRefused.safeParse(decoded.body);
  if (refused.success) throw fail(refused.data.error);
  const granted = RenewalGranted.safeParse(decoded.body);
  if (!granted.success) throw fail("the reply holds neither credentials nor an error");
  const reply = granted.data;
  return {
    creds: reply.creds,
    expiresAt: new Date(reply.expires_at * 1000),
    inboxPrefix: reply.inbox_prefix,
    ...(reply.post ? { post: reply.post } : {}),
  };
}

export interface ServeAllRenewalsOptions {
  /** The launching side's connection (its user may subscribe to every run's renew subject). */
  connection: NatsConnection;
  /** The account seed (`SA…`) that signs; see mintRunCredentials. */
  account: string;
  issuerAccount?: string;
  prefix: string;
  /** Lifetime of each renewed credential. */
  expiresInSeconds: number;
  /**
   * The machine a run is on, from a record this side trusts (the store's host states), so the
   * renewed credential keeps that machine's subjects. Never taken from the request: a run must
   * not be able to ask for another machine's inbox.
   */
  hostOf?: (runId: string) => Promise<string | undefined>;
  /** A fresh POST policy for the run's store prefix, sent with the credentials. */
  presignPost?: (runId: string) => Promise<PresignedPost>;
  /** Asked before each renewal; false refuses it (the run has ended). Default: always renew. */
  isActive?: (runId: string) => boolean | Promise<boolean>;
  onRenewal?: (runId: string, minted: RunCredentials) => void;
  /** A request refused (`runId` known) or unanswerable. */
  onError?: (error: unknown, runId?: string) => void;
}

/**
 * Answers the renewal requests of every run under `prefix` (`<prefix>.tel.*.renew`): what
 * `runctl nats renew` serves, so runs outlive their first grants without their launcher.
 */
export function serveAllCredentialRenewals(options: ServeAllRenewalsOptions): RenewalService {
  accountKeyPair(options.account);
  const base = telemetrySubjects(options.prefix, "_").renew;
  const head = base.slice(0, base.length - "_.renew".length);
  const sub: Subscription = options.connection.subscribe(`${head}*.renew`, {
    callback: (error, msg) => {
      if (error !== null) {
        options.onError?.(error);
        return;
      }
      const token = msg.subject.slice(head.length, msg.subject.length - ".renew".length);
      let runId: string;
      try {
        runId = decodeURIComponent(token);
      } catch (e) {
        options.onError?.(e);
        return;
      }
      void (async () => {
        let reply: Record<string, unknown>;
        try {
          if (options.isActive !== undefined && !(await options.isActive(runId))) {
            reply = { error: `run ${runId} is no longer active; its credentials are not renewed` };
          } else {
            const hostId = await options.hostOf?.(runId);
            const minted = await mintRunCredentials({
              account: options.account,
              ...(options.issuerAccount !== undefined ? { issuerAccount: options.issuerAccount } : {}),
              prefix: options.prefix,
              runId,
              ...(hostId !== undefined ? { hostId } : {}),
              expiresInSeconds: options.expiresInSeconds,
            });
            const post = options.presignPost ? await options.presignPost(runId) : undefined;
            options.onRenewal?.(runId, minted);
            reply = {
              creds: minted.creds,
              expires_at: minted.expiresAt.getTime() / 1000,
              inbox_prefix: minted.inboxPrefix,
              ...(post ? { post } : {}),
            };
          }
        } catch (e) {
          options.onError?.(e, runId);
          reply = { error: "the launching side could not mint credentials" };
        }
        msg.respond(encodeMessage(reply));
      })().catch((e: unknown) => options.onError?.(e, runId));
    },
  });
  return {
    ready: options.connection.flush(),
    stop: async () => {
      await sub.drain().catch(() => sub.unsubscribe());
    },
  };
}
