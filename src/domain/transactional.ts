/** What a write declares before it runs; see {@link Transactional.write}. */
export interface WriteOptions {
  /**
   * The accounts the write will lock (its `lockAccounts` call), when they
   * are known before it runs. A store that commits several writes together may
   * take the locks of a whole batch at once, in one sorted order, so that its
   * batches never deadlock; writes without it run on their own.
   */
  readonly locks?: { readonly tenantId: string; readonly accountIds: readonly string[] };
  /**
   * The idempotency keys the write will look up (in the tenant of `locks`): a
   * batching store may read those of a whole batch in one query.
   */
  readonly idempotencyKeys?: readonly string[];
}

/**
 * A port with a reader half (`R`, reads that see only committed data) and a
 * transaction half (`T`, operations inside one atomic write). Each consumer in
 * the domain names the halves it needs; a store implements all of them.
 */
export type Transactional<R, T> = R & {
  /**
   * Runs `fn` atomically and resolves only after its changes are durably
   * committed. Rejects (and keeps nothing) when `fn` throws or the commit
   * fails. A store may run several writes in one commit (group commit), but
   * each write is still all-or-nothing: when its function throws, none of its
   * changes stay.
   */
  write<V>(fn: (tx: T) => Promise<V>, options?: WriteOptions): Promise<V>;
};
