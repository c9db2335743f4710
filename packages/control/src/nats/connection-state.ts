/**
 * Whether a NATS connection is up, from its status events, shared by every
 * channel on it. nats.js discards what is published while it is disconnected
 * (its outbound buffer is reset on every dial) and a request sent then simply
 * times out, so channels wait for the connection before publishing, abandon
 * an attempt when the connection drops (retrying with the same Nats-Msg-Id is
 * safe), and fail reads at once instead of waiting out a timeout.
 */
import type { NatsConnection } from "@nats-io/transport-node";

export interface ConnectionState {
  readonly connected: boolean;
  readonly closed: boolean;
  /** Resolves once connected (at once when connected now); rejects when the connection closes. */
  whenConnected(): Promise<void>;
  /** Calls `listener` at the next disconnect or close; returns the function that removes it. */
  onDisconnect(listener: () => void): () => void;
}

const states = new WeakMap<NatsConnection, ConnectionState>();

export function connectionState(nc: NatsConnection): ConnectionState {
  const known = states.get(nc);
  if (known !== undefined) return known;

  let closed = nc.isClosed();
  let connected = !closed;
  let up: Signal | undefined;
  const listeners = new Set<() => void>();
  const dropped = () => {
    const current = [...listeners];
    listeners.clear();
    for (const listener of current) listener();
  };
  const onClose = () => {
    if (closed) return;
    closed = true;
    connected = false;
    up?.reject(new Error("the NATS connection is closed"));
    up = undefined;
    dropped();
  };
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect" || status.type === "staleConnection") {
        if (!connected) continue;
        connected = false;
        dropped();
      } else if (status.type === "reconnect") {
        connected = true;
        up?.resolve();
        up = undefined;
      } else if (status.type === "close") {
        onClose();
      }
    }
  })()
    .catch(() => {})
    .finally(onClose);
  void nc.closed().finally(onClose);

  const state: ConnectionState = {
    get connected() {
      return connected;
    },
    get closed() {
      return closed;
    },
    whenConnected() {
      if (connected) return Promise.resolve();
      if (closed) return Promise.reject(new Error("the NATS connection is closed"));
      up ??= signal();
      return up.promise;
    },
    onDisconnect(listener) {
      if (closed) {
        listener();
        return () => {};
      }
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  states.set(nc, state);
  return state;
}

interface Signal {
  promise: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

function signal(): Signal {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Nobody may be waiting when it settles.
  promise.catch(() => {});
  return { promise, resolve, reject };
}
