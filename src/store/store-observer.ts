/**
 * What a store tells of its transactions, for metrics and traces (the
 * observability layer implements it; a store without one does no extra work).
 */
export interface StoreObserver {
  /**
   * Called by `write()` in the caller's async context, before the write is
   * queued: what to remember of the caller (its trace context, say), handed
   * back to {@link StoreObserver.transaction}. Absent: nothing is kept.
   */
  capture?(): unknown;
  /**
   * A transaction carrying `writes` writes begins (one per group commit or
   * re-run of it); `callers` holds what {@link StoreObserver.capture} returned
   * for each of them, when it is defined. The function returned is called
   * once, when the transaction has committed (true) or not (false).
   */
  transaction(writes: number, callers: readonly unknown[] | undefined): (committed: boolean) => void;
}
