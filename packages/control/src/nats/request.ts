/**
 * A request to a responder that may be between connections. A subscriber
 * that reconnects (a renewed credential, a server restart) is absent from the
 * server for a moment, and a request sent then gets "no responders". Nobody
 * received it, so it is safe to send again; a timeout is not (the responder
 * may have acted), so only the former is retried, within the same deadline.
 */
import type { Msg, NatsConnection, Payload } from "@nats-io/transport-node";

export async function requestWhenListening(
  nc: NatsConnection,
  subject: string,
  payload: Payload,
  options: { timeoutMs: number; retryMs?: number },
): Promise<Msg> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    try {
      return await nc.request(subject, payload, { timeout: Math.max(1, deadline - Date.now()) });
    } catch (error) {
      const noResponders = (error as { isNoResponders?: () => boolean }).isNoResponders?.() === true;
      const wait = options.retryMs ?? 250;
      if (!noResponders || Date.now() + wait >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}
