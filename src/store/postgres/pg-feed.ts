import pg from "pg";
import type { BalanceFeed, FeedSubscription } from "../../domain/feed.js";
import { LocalBalanceFeed } from "../../domain/feed.js";

/** Options for {@link PgBalanceFeed}. */
export interface PgBalanceFeedOptions {
  /** Connection string of the database the replicas share (without `schema`). */
  readonly url: string;
  /** The store's schema: replicas on different schemas do not wake each other. */
  readonly schema: string;
  /**
   * Every subscriber is also woken this often (ms), as a safety net for a
   * notification lost between a commit and its NOTIFY (the database went away
   * in between). 0 turns it off. Default 10 s.
   */
  readonly safetyWakeMs?: number;
  /** Longest wait between reconnection attempts of the listening connection (ms, default 5 s). */
  readonly maxReconnectDelayMs?: number;
  /** Called on connection trouble, for the log. */
  readonly onEvent?: (event: "listening" | "disconnected" | "notify_failed", detail?: string) => void;
}

/** Bytes PostgreSQL accepts in one NOTIFY payload (8000), with room to spare. */
const MAX_PAYLOAD = 7000;

/**
 * Wakes balance watchers across replicas with PostgreSQL LISTEN/NOTIFY.
 *
 * Notifications carry only (tenant, accounts) to wake; watchers then re-read
 * the journal after their last sequence (see {@link BalanceFeed}), so a lost or
 * duplicated notification can delay a change but never drop or repeat it. When
 * the listening connection drops, it reconnects with backoff and then wakes
 * every local watcher, which catches up from its own last sequence.
 */
export class PgBalanceFeed implements BalanceFeed {
  private readonly local = new LocalBalanceFeed();
  private readonly channel: string;
  private readonly notifier: pg.Pool;
  private listener: pg.Client | undefined;
  private closed = false;
  private readonly outbox = new Map<string, Set<string>>();
  private flushScheduled = false;
  private reconnectDelay = 100;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly safetyTimer: NodeJS.Timeout | undefined;
  private readonly ready: Promise<void>;

  constructor(private readonly opts: PgBalanceFeedOptions) {
    // Channel names are identifiers: at most 63 bytes.
    this.channel = `tally_balances_${opts.schema}`.slice(0, 63);
    this.notifier = new pg.Pool({ connectionString: opts.url, max: 2, connectionTimeoutMillis: 5000 });
    // Idle connections error when PostgreSQL restarts; the pool replaces them.
    this.notifier.on("error", () => {});
    // See PostgresStore.open: a kill between checkouts must not crash the process.
    this.notifier.on("connect", (client) => client.on("error", () => {}));
    const safety = opts.safetyWakeMs ?? 10_000;
    if (safety > 0) {
      this.safetyTimer = setInterval(() => this.local.wakeAll(), safety);
      this.safetyTimer.unref();
    }
    this.ready = this.connect();
  }

  /** Resolves once the first LISTEN attempt finished (it keeps retrying on failure). */
  whenListening(): Promise<void> {
    return this.ready;
  }

  publish(tenantId: string, accountIds: Iterable<string>): void {
    const accounts = [...new Set(accountIds)];
    // Local watchers need no round trip through the database.
    this.local.publish(tenantId, accounts);
    // Commits that end in the same event-loop turn share one NOTIFY per tenant:
    // under load that is one small transaction for many writes, not one each.
    let set = this.outbox.get(tenantId);
    if (!set) this.outbox.set(tenantId, (set = new Set()));
    for (const a of accounts) set.add(a);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = [...this.outbox];
    this.outbox.clear();
    for (const [tenantId, accounts] of batch) {
      let payload = JSON.stringify([tenantId, [...accounts]]);
      // Too many accounts for one payload: every remote watcher re-reads instead.
      if (Buffer.byteLength(payload) > MAX_PAYLOAD) payload = "*";
      this.notifier.query("SELECT pg_notify($1, $2)", [this.channel, payload]).catch((e: unknown) => {
        // The commit stands; remote watchers catch up on their next wake (safety net).
        this.opts.onEvent?.("notify_failed", e instanceof Error ? e.message : String(e));
      });
    }
  }

  subscribe(tenantId: string, accountId: string): FeedSubscription {
    return this.local.subscribe(tenantId, accountId);
  }

  /** Number of open local subscriptions. */
  get size(): number {
    return this.local.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.safetyTimer) clearInterval(this.safetyTimer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const l = this.listener;
    this.listener = undefined;
    await Promise.allSettled([l?.end(), this.notifier.end()]);
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.opts.url, connectionTimeoutMillis: 5000 });
    let failed = false;
    const onFailure = (e: unknown) => {
      if (failed) return;
      failed = true;
      if (this.listener === client) this.listener = undefined;
      client.end().catch(() => {});
      if (this.closed) return;
      this.opts.onEvent?.("disconnected", e instanceof Error ? e.message : String(e));
      this.reconnectTimer = setTimeout(() => void this.connect(), this.reconnectDelay);
      this.reconnectTimer.unref();
      this.reconnectDelay = Math.min(this.reconnectDelay * 2, this.opts.maxReconnectDelayMs ?? 5000);
    };
    client.on("error", onFailure);
    client.on("end", () => onFailure(new Error("connection ended")));
    client.on("notification", (msg) => this.onNotification(msg.payload));
    try {
      await client.connect();
      await client.query(`LISTEN "${this.channel}"`);
    } catch (e) {
      onFailure(e);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => {});
      return;
    }
    this.listener = client;
    this.reconnectDelay = 100;
    this.opts.onEvent?.("listening");
    // Whatever was committed while nobody listened: every watcher re-reads.
    this.local.wakeAll();
  }

  private onNotification(payload: string | undefined): void {
    if (payload === undefined || payload === "*") {
      this.local.wakeAll();
      return;
    }
    try {
      const [tenantId, accounts] = JSON.parse(payload) as [string, string[]];
      this.local.publish(tenantId, accounts);
    } catch {
      this.local.wakeAll();
    }
  }
}
