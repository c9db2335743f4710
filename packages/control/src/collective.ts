/**
 * The two collectives the multi-rank agreement needs (docs/control.md,
 * "Multi-rank agreement"), so TypeScript ranks can plug in whatever transport
 * joins them. Every rank calls the same collectives in the same order; the
 * value of rank 0 is the one every rank gets back.
 */
export interface Collective {
  /** A short list of integers from rank 0 (the `[n_new, k_next]` tensor). */
  broadcast(values: number[]): Promise<number[]>;
  /** A structured-clonable/JSON value from rank 0 (`broadcast_object_list`). */
  broadcastObject<T>(value: T): Promise<T>;
}
