import pg from "pg";
import type { Asset } from "../../domain/asset.js";
import { LedgerError } from "../../domain/errors.js";
import type {
  Account,
  ApiKeyRecord,
  BalanceRow,
  CredentialRecord,
  Entry,
  EntryView,
  Tenant,
  Transfer,
} from "../../domain/model.js";
import type { CreditBalance, CreditEntry, DueCustomer } from "../../domain/credits/model.js";
import type {
  AccountBalance,
  EntryPageQuery,
  EntryTailQuery,
  JournalSums,
  PostedEntryPageQuery,
  Store,
  WriteOptions,
  WriteTx,
  JournalWrite,
} from "../../domain/store.js";
import * as rows from "../rows.js";
import * as credit from "./credit-queries.js";
import { PG_MIGRATIONS } from "./migrations.js";
import { reportVersions } from "../schema-versions.js";
import type { SchemaVersions } from "../schema-versions.js";
import { RETRYABLE_SQLSTATES, conflictError, errorCode, isConnectionBroken, storeError } from "./pg-errors.js";
import type { FailurePhase } from "./pg-errors.js";
import { Q, all, one } from "./pg-queries.js";
import { PgWriteTx, rememberAsset } from "./pg-write-tx.js";
import type { Db, Row } from "./pg-queries.js";
import type { StoreObserver } from "../store-observer.js";

/** How one transaction ended; `code` is set when re-running the write may succeed. */
type Outcome<T> = { ok: true; value: T } | { ok: false; error: LedgerError; code?: string };

/** A write waiting for a batch. */
interface BatchJob {
  readonly fn: (tx: WriteTx) => Promise<unknown>;
  readonly locks: NonNullable<WriteOptions["locks"]>;
  readonly keys: readonly string[];
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
  /** What the observer captured of the caller, if it captures anything. */
  readonly caller?: unknown;
}

/** How one write of a batch ended. */
type BatchResult = { ok: true; value: unknown } | { ok: false; error: LedgerError };

/** Options for {@link PostgresStore.open}. */
export interface PostgresStoreOptions {
  /** Connection string; a `schema` query parameter is taken as the schema (see {@link pgUrlSchema}). */
  readonly url: string;
  /** The schema holding Tally's tables (created when missing); wins over the URL's. Default "public". */
  readonly schema?: string | undefined;
  /** Connections of this process (default 10). */
  readonly poolSize?: number;
  /** statement_timeout of every connection, in ms (default 10 000). */
  readonly statementTimeoutMs?: number;
  /** How long to wait for a connection, new or from the pool, in ms (default 5 000). */
  readonly connectTimeoutMs?: number;
  /** Most writes of one group commit (default 256; 1 turns group commit off). */
  readonly maxBatch?: number;
  /** Group commits this process runs at once (default 2, at most the pool's write connections). */
  readonly maxBatches?: number;
  /** How often a write that lost a race (serialization failure, deadlock, duplicate key) is re-run (default 8). */
  readonly maxRetries?: number;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const INT64_MAX = 2n ** 63n - 1n;

/**
 * Splits a `schema` query parameter off a connection string, for the store and
 * the balance feed (PostgreSQL itself does not know that parameter). A string
 * that is not a URL is returned as it is.
 */
export function pgUrlSchema(url: string): { url: string; schema: string | undefined } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { url, schema: undefined };
  }
  if (!u.searchParams.has("schema")) return { url, schema: undefined };
  const schema = u.searchParams.get("schema") ?? undefined;
  u.searchParams.delete("schema");
  return { url: u.toString(), schema: schema === "" ? undefined : schema };
}

/**
 * int8 (bigint columns, count) and numeric (sums of bigint) as JS bigint, for
 * this store's connections only: pg's global parsers stay untouched.
 */
const BIGINT_TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) => {
    if ((oid === 20 || oid === 1700) && format !== "binary") return (v: string) => BigInt(v);
    return pg.types.getTypeParser(oid, format as "text");
  }) as pg.CustomTypesConfig["getTypeParser"],
};

/**
 * The shared store: PostgreSQL, for several replicas over one database.
 *
 * Writes run in READ COMMITTED transactions on pooled connections, each
 * serialised per account by row locks taken in sorted id order
 * (`lockAccounts`), so writers of disjoint accounts run in parallel and
 * writers of the same accounts queue without deadlocking. A write that still
 * loses a race (a deadlock, a serialization failure, or a concurrent insert of
 * the same key) is rolled back and re-run from scratch; its function must
 * therefore only touch the database through the transaction it is given.
 * Reads are autocommit queries on the pool; verify and credit listings read
 * one REPEATABLE READ snapshot.
 */
export class PostgresStore implements Store {
  /** Re-runs of writes, by the SQLSTATE that caused them (40001, 40P01, 23505). */
  readonly retries: Record<string, number> = {};
  // Assets never change once committed (code and scale are fixed at creation),
  // so every replica may keep the ones it has seen committed.
  private readonly assets = new Map<string, Asset>();
  private readonly maxRetries: number;
  private closed = false;
  private closing: Promise<void> | undefined;
  private inFlight = 0;
  private idle: (() => void) | undefined;

  // Writes take a connection through this FIFO rather than waiting in the
  // pool's queue, whose wait is bounded by the connect timeout: a burst on one
  // hot account queues here (as it would in SQLite's write queue) instead of
  // failing after a few seconds. One connection stays free for reads, so
  // writers queued on a hot account's lock never starve them.
  private writeSlots: number;
  private readonly writeQueue: (() => void)[] = [];
  /** Writes waiting for the next batch, and the batches in flight (see startBatches). */
  private readonly batchQueue: BatchJob[] = [];
  private batchesRunning = 0;
  private batchScheduled = false;
  private readonly maxBatch: number;
  private readonly maxBatches: number;
  /** What group commit has done so far: commits of batches, and the writes they carried. */
  readonly batchStats = { commits: 0, writes: 0 };
  /** Told of every write transaction (metrics, traces); set by the server when it observes. */
  observer: StoreObserver | undefined;
  private migrated: SchemaVersions = { before: 0, after: 0, applied: [] };

  private constructor(
    private readonly pool: pg.Pool,
    /** The schema holding the tables. */
    readonly schema: string,
    maxRetries: number,
    poolSize: number,
    batching: { maxBatch: number; maxBatches: number },
  ) {
    this.maxRetries = maxRetries;
    this.writeSlots = Math.max(1, poolSize - 1);
    this.maxBatch = batching.maxBatch;
    this.maxBatches = Math.min(batching.maxBatches, this.writeSlots);
  }

  private async takeWriteSlot(): Promise<void> {
    if (this.writeSlots > 0) {
      this.writeSlots--;
      return;
    }
    await new Promise<void>((r) => this.writeQueue.push(r));
  }

  private giveWriteSlot(): void {
    const next = this.writeQueue.shift();
    if (next) next();
    else this.writeSlots++;
  }

  /** Connects, creates the schema when missing and applies missing migrations. */
  static async open(opts: PostgresStoreOptions): Promise<PostgresStore> {
    const split = pgUrlSchema(opts.url);
    const schema = opts.schema ?? split.schema ?? "public";
    if (!SCHEMA_NAME.test(schema)) {
      throw new Error(`invalid schema name ${JSON.stringify(schema)}: 1-63 characters of [a-z0-9_], not starting with a digit`);
    }
    const poolSize = opts.poolSize ?? 10;
    const conn = withoutUrlOptions(split.url);
    const pool = new pg.Pool({
      connectionString: conn.url,
      max: poolSize,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5_000,
      statement_timeout: opts.statementTimeoutMs ?? 10_000,
      // A process that stalls inside a write must not hold account locks forever.
      idle_in_transaction_session_timeout: 60_000,
      keepAlive: true,
      application_name: "tally",
      options: `${conn.options}-c search_path=${schema}`,
      types: BIGINT_TYPES,
    });
    // Idle connections error when PostgreSQL restarts or kills them; the pool
    // drops them and opens new ones. Without a handler the process would crash.
    pool.on("error", () => {});
    // A connection killed in the instant between two checkouts (pg-pool removes
    // its listener before handing a client over, the next user adds one after)
    // would otherwise emit an unhandled "error" and crash the process. The dead
    // client is still discarded: pg marks it unusable and the next query fails.
    pool.on("connect", (client) => client.on("error", () => {}));
    const store = new PostgresStore(pool, schema, opts.maxRetries ?? 8, poolSize, {
      maxBatch: opts.maxBatch ?? 256,
      maxBatches: opts.maxBatches ?? 2,
    });
    try {
      store.migrated = await store.migrate();
    } catch (e) {
      await pool.end().catch(() => {});
      throw e;
    }
    return store;
  }

  /** The schema versions before and after the migrations this open applied. */
  get schemaVersions(): SchemaVersions {
    return this.migrated;
  }

  /** The durability settings in force, as PostgreSQL reports them. */
  async settings(): Promise<{ fsync: string; synchronousCommit: string }> {
    return this.read(async () => {
      const f = await this.pool.query("SHOW fsync");
      const s = await this.pool.query("SHOW synchronous_commit");
      return { fsync: String(f.rows[0].fsync), synchronousCommit: String(s.rows[0].synchronous_commit) };
    });
  }

  /** Errors stay as PostgreSQL raised them: this runs at start, for an operator to read. */
  private async migrate(): Promise<SchemaVersions> {
    const c = await this.pool.connect();
    let broken: unknown;
    c.on("error", (e: unknown) => (broken ??= e));
    try {
      await c.query("BEGIN");
      // Replicas starting together take turns: the first migrates, the others then find nothing to do.
      await c.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [`tally.migrate.${this.schema}`]);
      // Checked first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when the schema exists.
      const exists = await c.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [this.schema]);
      if (exists.rowCount === 0) await c.query(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
      // The connection's search_path named the schema before it existed.
      await c.query(`SET LOCAL search_path TO "${this.schema}"`);
      await c.query("CREATE TABLE IF NOT EXISTS schema_migrations (version bigint PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)");
      const applied = new Set((await c.query("SELECT version FROM schema_migrations")).rows.map((r: Row) => Number(r.version as bigint)));
      const report = reportVersions(applied, PG_MIGRATIONS);
      for (const m of PG_MIGRATIONS) {
        if (applied.has(m.version)) continue;
        await c.query(m.sql);
        await c.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [
          BigInt(m.version),
          m.name,
          BigInt(Date.now()) * 1000n,
        ]);
      }
      await c.query("COMMIT");
      return report;
    } catch (e) {
      await c.query("ROLLBACK").catch(() => {});
      broken ??= e;
      throw e;
    } finally {
      c.release(broken === undefined ? undefined : asError(broken));
    }
  }

  async write<T>(fn: (tx: WriteTx) => Promise<T>, options?: WriteOptions): Promise<T> {
    if (this.closed) throw new LedgerError("unavailable", "store_closed", "the store is closed");
    this.inFlight++;
    try {
      const caller = this.observer?.capture?.();
      if (options?.locks === undefined || this.maxBatch <= 1) return await this.runWrite(fn, caller);
      const locks = options.locks;
      const keys = options.idempotencyKeys ?? [];
      return await new Promise<T>((resolve, reject) => {
        const job = { fn, locks, keys, resolve: resolve as (v: unknown) => void, reject };
        this.batchQueue.push(caller === undefined ? job : { ...job, caller });
        if (!this.batchScheduled) {
          this.batchScheduled = true;
          // Let writes that arrive in the same turn join one batch.
          setImmediate(() => {
            this.batchScheduled = false;
            this.startBatches();
          });
        }
      });
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) this.idle?.();
    }
  }

  /**
   * Group commit: writes that declared their locks and arrive while this
   * replica's batches are in flight wait, then go together into the next
   * batch (one transaction, one commit).
   */
  private startBatches(): void {
    while (this.batchesRunning < this.maxBatches && this.batchQueue.length > 0) {
      const batch = this.batchQueue.splice(0, this.maxBatch);
      this.batchesRunning++;
      void this.runBatch(batch).finally(() => {
        this.batchesRunning--;
        this.startBatches();
      });
    }
  }

  /** Runs a batch to its end: every write resolved or rejected, re-running the batch after a lost race. */
  private async runBatch(batch: BatchJob[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      await this.takeWriteSlot();
      let outcome: Outcome<BatchResult[]>;
      try {
        outcome = await this.attemptBatch(batch);
      } finally {
        this.giveWriteSlot();
      }
      if (outcome.ok) {
        this.batchStats.commits++;
        this.batchStats.writes += batch.length;
        batch.forEach((job, i) => {
          const r = outcome.value[i]!;
          if (r.ok) job.resolve(r.value);
          else job.reject(r.error);
        });
        return;
      }
      const code = outcome.code;
      if (code === undefined || attempt >= this.maxRetries) {
        const error = code === undefined ? outcome.error : conflictError(code);
        for (const job of batch) job.reject(error);
        return;
      }
      this.retries[code] = (this.retries[code] ?? 0) + 1;
      const base = Math.min(50, 2 * 2 ** attempt);
      await new Promise((r) => setTimeout(r, base / 2 + Math.random() * (base / 2)));
    }
  }

  /**
   * One transaction for a batch: the locks every write declared, taken at
   * once in (tenant, account) order so that batches never deadlock; then each
   * write under a savepoint, so that one that fails (a refusal, or a
   * duplicate key raced in by another replica, which is re-run in place)
   * leaves the others; then the balances, and one COMMIT.
   */
  private attemptBatch(batch: BatchJob[]): Promise<Outcome<BatchResult[]>> {
    const callers = this.observer?.capture === undefined ? undefined : batch.map((j) => j.caller);
    return this.transaction(true, batch.length, callers, async (tx, broken) => {
      const byTenant = new Map<string, Set<string>>();
      for (const job of batch) {
        const set = byTenant.get(job.locks.tenantId) ?? new Set<string>();
        for (const id of job.locks.accountIds) set.add(id);
        byTenant.set(job.locks.tenantId, set);
      }
      for (const tenantId of [...byTenant.keys()].sort()) await tx.lockBatch(tenantId, [...byTenant.get(tenantId)!].sort());
      const keysByTenant = new Map<string, string[]>();
      for (const job of batch) {
        const list = keysByTenant.get(job.locks.tenantId) ?? [];
        list.push(...job.keys);
        keysByTenant.set(job.locks.tenantId, list);
      }
      for (const [tenantId, keys] of keysByTenant) if (keys.length > 0) await tx.prefetchKeys(tenantId, keys);
      // Two journal entries per transfer; more are reserved on demand.
      await tx.reserveSequences(2 * batch.length);
      const results: BatchResult[] = [];
      for (const job of batch) {
        for (let rerun = 0; ; rerun++) {
          tx.beginWrite();
          try {
            const value = await job.fn(tx);
            await tx.endWrite();
            results.push({ ok: true, value });
            break;
          } catch (e) {
            if (broken() || isConnectionBroken(e)) throw e;
            const code = e instanceof LedgerError ? undefined : errorCode(e);
            // Another replica committed the same key first: re-run this write, which now sees it.
            // Any other failed statement fails the batch (re-run as a whole when the race may end).
            if (code !== undefined && (code !== "23505" || rerun >= this.maxRetries)) throw e;
            await tx.abortWrite();
            if (code === undefined) {
              results.push({ ok: false, error: e as LedgerError });
              break;
            }
            this.retries[code] = (this.retries[code] ?? 0) + 1;
          }
        }
      }
      return results;
    });
  }

  private async runWrite<T>(fn: (tx: WriteTx) => Promise<T>, caller: unknown): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      await this.takeWriteSlot();
      let outcome: Outcome<T>;
      try {
        outcome = await this.attempt(fn, caller);
      } finally {
        this.giveWriteSlot();
      }
      if (outcome.ok) return outcome.value;
      const code = outcome.code;
      if (code === undefined) throw outcome.error;
      if (attempt >= this.maxRetries) throw conflictError(code);
      this.retries[code] = (this.retries[code] ?? 0) + 1;
      // Jittered and growing (2..50 ms), so that the racers do not meet again.
      const base = Math.min(50, 2 * 2 ** attempt);
      await new Promise((r) => setTimeout(r, base / 2 + Math.random() * (base / 2)));
    }
  }

  /** One write in its own transaction. */
  private attempt<T>(fn: (tx: WriteTx) => Promise<T>, caller: unknown): Promise<Outcome<T>> {
    return this.transaction(false, 1, this.observer?.capture === undefined ? undefined : [caller], (tx) => fn(tx));
  }

  /**
   * One transaction on a connection of its own: BEGIN, `body`, what the
   * transaction holds written (PgWriteTx.flush), COMMIT. The value, or an
   * error (with the SQLSTATE when re-running may help).
   */
  private async transaction<V>(
    batch: boolean,
    writes: number,
    callers: readonly unknown[] | undefined,
    body: (tx: PgWriteTx, broken: () => boolean) => Promise<V>,
  ): Promise<Outcome<V>> {
    const end = this.observer?.transaction(writes, callers);
    const outcome = await this.transactionOnce(batch, body);
    end?.(outcome.ok);
    return outcome;
  }

  private async transactionOnce<V>(batch: boolean, body: (tx: PgWriteTx, broken: () => boolean) => Promise<V>): Promise<Outcome<V>> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (e) {
      return { ok: false, error: storeError(e, "write") };
    }
    // A checked-out client emits "error" when its connection dies; unhandled, that would crash the process.
    let broken: unknown;
    const onError = (e: unknown) => (broken ??= e);
    client.on("error", onError);
    let phase: FailurePhase = "write";
    try {
      await client.query("BEGIN");
      const tx = new PgWriteTx(client, this.assets, batch);
      const value = await body(tx, () => broken !== undefined);
      await tx.flush();
      // A connection already dead never sent COMMIT: then nothing was written for sure.
      if (broken === undefined) phase = "commit";
      await client.query("COMMIT");
      client.removeListener("error", onError);
      client.release();
      return { ok: true, value };
    } catch (e) {
      const dead = broken !== undefined || isConnectionBroken(e);
      if (!dead) {
        try {
          await client.query("ROLLBACK");
        } catch (rollbackError) {
          broken ??= rollbackError;
        }
      }
      client.removeListener("error", onError);
      // A broken connection goes back with its error, so the pool discards it.
      if (dead || broken !== undefined) client.release(asError(broken ?? e));
      else client.release();
      if (e instanceof LedgerError) return { ok: false, error: e };
      const code = errorCode(e);
      // An error answer to COMMIT means it rolled back; only a lost connection leaves the outcome unknown.
      if (!dead && RETRYABLE_SQLSTATES.has(code)) return { ok: false, error: storeError(e, phase), code };
      return { ok: false, error: storeError(broken !== undefined && !isConnectionBroken(e) ? broken : e, phase) };
    }
  }

  async ping(): Promise<void> {
    await this.pool.query("SELECT 1");
  }

  /** The pool's connections now: open, idle, and checkouts waiting for one (read when metrics are scraped). */
  poolStats(): { total: number; idle: number; waiting: number } {
    return { total: this.pool.totalCount, idle: this.pool.idleCount, waiting: this.pool.waitingCount };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      // Writes already accepted finish (or fail) before the connections go.
      if (this.inFlight > 0) await new Promise<void>((r) => (this.idle = r));
      await this.pool.end();
    })();
    return this.closing;
  }

  /** Runs reads on a client of its own, inside one REPEATABLE READ snapshot. */
  private snapshot<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    return this.withClient("read", async (c) => {
      await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      try {
        const value = await fn(c);
        await c.query("COMMIT");
        return value;
      } catch (e) {
        if (!isConnectionBroken(e)) await c.query("ROLLBACK").catch(() => {});
        throw e;
      }
    });
  }

  /** Checks a client out for `fn`, with errors mapped and a dead connection discarded. */
  private async withClient<T>(phase: FailurePhase, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (e) {
      throw storeError(e, phase);
    }
    let broken: unknown;
    const onError = (e: unknown) => (broken ??= e);
    client.on("error", onError);
    try {
      const value = await fn(client);
      client.removeListener("error", onError);
      client.release();
      return value;
    } catch (e) {
      client.removeListener("error", onError);
      client.release(broken !== undefined || isConnectionBroken(e) ? asError(broken ?? e) : undefined);
      throw storeError(e, phase);
    }
  }

  /** Autocommit reads on the pool, with errors mapped. */
  private async read<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw storeError(e, "read");
    }
  }

  // ---- reads (committed data only) -----------------------------------------

  async getTenant(tenantId: string): Promise<Tenant | undefined> {
    return this.read(async () => rows.tenant(await one(this.pool, Q.getTenant, [tenantId])));
  }
  async countTenants(): Promise<number> {
    return this.read(async () => Number((await one(this.pool, Q.countTenants, []))!.n as bigint));
  }
  async listTenantIds(): Promise<string[]> {
    return this.read(async () => (await all(this.pool, Q.listTenantIds, [])).map((x) => x.id as string));
  }
  async getAccount(tenantId: string, id: string): Promise<Account | undefined> {
    return this.read(async () => rows.account(await one(this.pool, Q.getAccount, [tenantId, id])));
  }
  async listAccounts(tenantId: string, afterId: string, limit: number): Promise<Account[]> {
    return this.read(async () => (await all(this.pool, Q.listAccounts, [tenantId, afterId, limit])).map((x) => rows.account(x)!));
  }
  async getAsset(tenantId: string, code: string): Promise<Asset | undefined> {
    const k = `${tenantId}\u0000${code}`;
    const known = this.assets.get(k);
    if (known) return known;
    const found = await this.read(async () => rows.asset(await one(this.pool, Q.getAsset, [tenantId, code])));
    if (found) rememberAsset(this.assets, k, found);
    return found;
  }
  async listAssets(tenantId: string): Promise<Asset[]> {
    return this.read(async () => (await all(this.pool, Q.listAssets, [tenantId])).map((x) => rows.asset(x)!));
  }
  async getBalance(tenantId: string, accountId: string, asset: string): Promise<BalanceRow | undefined> {
    return this.read(async () => rows.balance(await one(this.pool, Q.getBalance, [tenantId, accountId, asset])));
  }
  async getAccountBalance(tenantId: string, accountId: string, asset: string): Promise<AccountBalance | undefined> {
    return this.read(async () => rows.accountBalance(await one(this.pool, Q.getAccountBalance, [tenantId, accountId, asset]), asset));
  }
  async listBalances(tenantId: string, accountId: string): Promise<BalanceRow[]> {
    return this.read(async () => (await all(this.pool, Q.listBalances, [tenantId, accountId])).map((x) => rows.balance(x)!));
  }
  async getTransfer(tenantId: string, id: string): Promise<Transfer | undefined> {
    return this.read(async () => rows.transfer(await one(this.pool, Q.getTransfer, [tenantId, id])));
  }
  async listEntries(q: EntryPageQuery): Promise<EntryView[]> {
    const before = q.beforeSequence ?? INT64_MAX;
    return this.read(async () => {
      const list =
        q.asset === undefined
          ? await all(this.pool, Q.entriesBefore, [q.tenantId, q.accountId, before, q.limit])
          : await all(this.pool, Q.entriesBeforeAsset, [q.tenantId, q.accountId, q.asset, before, q.limit]);
      return list.map(rows.entryView);
    });
  }
  async postedEntriesPage(q: PostedEntryPageQuery): Promise<EntryView[]> {
    return this.read(async () =>
      (await all(this.pool, Q.postedEntriesPage, [q.tenantId, q.accountId, q.asset, q.skip, q.limit])).map(rows.entryView),
    );
  }
  async entriesAfter(q: EntryTailQuery): Promise<EntryView[]> {
    return this.read(async () => {
      const list =
        q.asset === undefined
          ? await all(this.pool, Q.entriesAfter, [q.tenantId, q.accountId, q.afterSequence, q.limit])
          : await all(this.pool, Q.entriesAfterAsset, [q.tenantId, q.accountId, q.asset, q.afterSequence, q.limit]);
      return list.map(rows.entryView);
    });
  }
  async journalWrites(tenantId: string, afterSequence: bigint, limit: number): Promise<JournalWrite[]> {
    return this.read(async () => (await all(this.pool, Q.journalWrites, [tenantId, afterSequence, limit])).map(rows.journalWrite));
  }
  async journalHead(): Promise<bigint> {
    return this.read(async () => (await one(this.pool, Q.headSequence, []))!.head as bigint);
  }
  async lastEntryAtOrBefore(tenantId: string, accountId: string, asset: string, at: bigint): Promise<Entry | undefined> {
    return this.read(async () => {
      const row = await one(this.pool, Q.lastEntryAtOrBefore, [tenantId, accountId, asset, at]);
      return row === undefined ? undefined : rows.entry(row);
    });
  }
  async lastEntryEffectiveBy(tenantId: string, accountId: string, asset: string, at: bigint): Promise<Entry | undefined> {
    return this.read(async () => {
      const row = await one(this.pool, Q.lastEntryEffectiveBy, [tenantId, accountId, asset, at]);
      return row === undefined ? undefined : rows.entry(row);
    });
  }
  async assetsAtOrBefore(tenantId: string, accountId: string, at: bigint): Promise<string[]> {
    return this.read(async () => (await all(this.pool, Q.assetsAtOrBefore, [tenantId, accountId, at])).map((x) => x.asset as string));
  }
  async watchPoint(tenantId: string, accountId: string): Promise<bigint> {
    // A writer holding the account's lock has drawn its sequences but may not
    // have committed: a head read now could lie beyond entries still to
    // appear. FOR SHARE waits for that writer; any later writer of the
    // account draws its sequences after this head.
    return this.withClient("read", async (c) => {
      await c.query("BEGIN");
      try {
        await one(c, Q.shareAccount, [tenantId, accountId]);
        const head = (await one(c, Q.headSequence, []))!.head as bigint;
        await c.query("COMMIT");
        return head;
      } catch (e) {
        if (!isConnectionBroken(e)) await c.query("ROLLBACK").catch(() => {});
        throw e;
      }
    });
  }
  async getApiKey(id: string): Promise<ApiKeyRecord | undefined> {
    return this.read(async () => rows.apiKey(await one(this.pool, Q.getApiKey, [id])));
  }
  async listApiKeys(tenantId: string): Promise<ApiKeyRecord[]> {
    return this.read(async () => (await all(this.pool, Q.listApiKeys, [tenantId])).map((x) => rows.apiKey(x)!));
  }
  async getMeta(key: string): Promise<string | undefined> {
    return this.read(async () => (await one(this.pool, Q.getMeta, [key]))?.value as string | undefined);
  }
  async getCredential(kind: string, id: string): Promise<CredentialRecord | undefined> {
    return this.read(async () => rows.credential(await one(this.pool, Q.getCredential, [kind, id])));
  }
  async listCredentials(kind: string, tenantId?: string): Promise<CredentialRecord[]> {
    return this.read(async () => {
      const list =
        tenantId === undefined
          ? await all(this.pool, Q.listCredentials, [kind])
          : await all(this.pool, Q.listCredentialsInTenant, [kind, tenantId]);
      return list.map((x) => rows.credential(x)!);
    });
  }

  async getCreditBalance(tenantId: string, id: string): Promise<CreditBalance | undefined> {
    // Balance and segments in one snapshot, like listCreditBalances.
    return this.snapshot((db) => credit.getCreditBalance(db, tenantId, id));
  }
  async listCreditBalances(tenantId: string, customerId: string, afterOrdinal: bigint, limit: number): Promise<CreditBalance[]> {
    return this.snapshot((db) => credit.listCreditBalances(db, tenantId, customerId, afterOrdinal, limit));
  }
  async listCreditEntries(tenantId: string, balanceId: string): Promise<CreditEntry[]> {
    return this.read(() => credit.listCreditEntries(this.pool, tenantId, balanceId));
  }
  async dueCreditClosings(cutoff: bigint, limit: number): Promise<DueCustomer[]> {
    return this.read(() => credit.dueCreditClosings(this.pool, cutoff, limit));
  }

  async journalSums(tenantId: string): Promise<JournalSums> {
    // One snapshot, so the journal and the balances agree with each other.
    // PostgreSQL sums into numeric: exact, never overflowing (reconcile checks the range).
    return this.snapshot(async (db) => ({
      sums: (await all(db, Q.verifySums, [tenantId])).map(rows.journalSum),
      balances: (await all(db, Q.verifyBalances, [tenantId])).map((x) => rows.balance(x)!),
      running: (await all(db, Q.verifyRunning, [tenantId])).map(rows.runningSum),
      overflow: false,
    }));
  }
}

/**
 * Takes an `options` query parameter off the URL, to be combined with the
 * store's own: pg lets the URL's win over the config's, which would silently
 * drop the search_path (and put the tables in another schema).
 */
function withoutUrlOptions(url: string): { url: string; options: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { url, options: "" };
  }
  const options = u.searchParams.get("options");
  if (options === null) return { url, options: "" };
  u.searchParams.delete("options");
  return { url: u.toString(), options: `${options} ` };
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}


