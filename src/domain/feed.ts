/**
 * Wakes balance watchers when an account's journal grows. It carries no data:
 * a woken watcher re-reads the journal after its last sequence, so a missed or
 * coalesced wake-up can never turn into a missed change, and the same watcher
 * code works whether the wake-up came from this process or another replica.
 */
export interface BalanceFeed {
  /** Announces committed changes to these accounts. */
  publish(tenantId: string, accountIds: Iterable<string>): void;
  /** Starts listening to one account. Call `close` when done. */
  subscribe(tenantId: string, accountId: string): FeedSubscription;
}

/** One watcher's view of the feed. */
export interface FeedSubscription {
  /**
   * Resolves once a change was published since the previous call returned
   * (at once if one already was), or when the signal aborts.
   */
  wait(signal?: AbortSignal): Promise<void>;
  close(): void;
}

/** The in-process feed. */
export class LocalBalanceFeed implements BalanceFeed {
  private readonly subscribers = new Map<string, Set<LocalSubscription>>();

  publish(tenantId: string, accountIds: Iterable<string>): void {
    for (const accountId of new Set(accountIds)) {
      const set = this.subscribers.get(feedKey(tenantId, accountId));
      if (set) for (const s of set) s.notify();
    }
  }

  subscribe(tenantId: string, accountId: string): FeedSubscription {
    const key = feedKey(tenantId, accountId);
    let set = this.subscribers.get(key);
    if (!set) {
      set = new Set();
      this.subscribers.set(key, set);
    }
    const sub = new LocalSubscription(() => {
      set.delete(sub);
      if (set.size === 0) this.subscribers.delete(key);
    });
    set.add(sub);
    return sub;
  }

  /**
   * Wakes every subscriber. Used after a gap in a remote feed (a dropped
   * notification connection): each watcher re-reads from its last sequence.
   */
  wakeAll(): void {
    for (const set of this.subscribers.values()) for (const s of set) s.notify();
  }

  /** Number of open subscriptions, for tests and metrics. */
  get size(): number {
    let n = 0;
    for (const s of this.subscribers.values()) n += s.size;
    return n;
  }
}

class LocalSubscription implements FeedSubscription {
  private dirty = false;
  private waiter: (() => void) | undefined;

  constructor(private readonly onClose: () => void) {}

  notify(): void {
    this.dirty = true;
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  wait(signal?: AbortSignal): Promise<void> {
    if (this.dirty || signal?.aborted) {
      this.dirty = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const onAbort = () => {
        this.waiter = undefined;
        resolve();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiter = () => {
        signal?.removeEventListener("abort", onAbort);
        this.dirty = false;
        resolve();
      };
    });
  }

  close(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
    this.onClose();
  }
}

function feedKey(tenantId: string, accountId: string): string {
  return `${tenantId}\u0000${accountId}`;
}
