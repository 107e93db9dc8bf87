import Database from "better-sqlite3";
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
import type { AccountBalance, EntryPageQuery, EntryTailQuery, JournalSums, JournalWrite, PostedEntryPageQuery, Store, WriteTx } from "../../domain/store.js";
import { MIGRATIONS } from "./migrations.js";
import { acquireServeLock, type ServeLock } from "./serve-lock.js";
import { verifyInWorker } from "./verify-worker.js";
import { reportVersions } from "../schema-versions.js";
import type { SchemaVersions } from "../schema-versions.js";
import { SqliteStatements } from "./statements.js";
import { SqliteBatchTx } from "./batch-tx.js";
import { CreditStatements } from "./credit-statements.js";
import type { CreditBalance, CreditEntry, DueCustomer } from "../../domain/credits/model.js";
import * as rows from "../rows.js";
import type { StoreObserver } from "../store-observer.js";

/** Options for {@link SqliteStore.open}. */
export interface SqliteStoreOptions {
  /** Path of the database file (created when missing). */
  readonly path: string;
  /** How long a write waits for a lock held by another process, in ms. */
  readonly busyTimeoutMs?: number;
  /** Most writes that may share one commit. */
  readonly maxBatch?: number;
  /**
   * "full" (default): every acknowledged write survives power loss.
   * "normal": faster, but the last commits may be lost on power loss or an OS
   * crash (not on a process crash); see https://www.sqlite.org/pragma.html#pragma_synchronous.
   */
  readonly durability?: "full" | "normal";
  /**
   * Take `<path>.lock` for as long as the store is open (a server does): a
   * second process that asks for it is refused. See serve-lock.ts.
   */
  readonly exclusive?: boolean;
}

interface Job {
  readonly fn: (tx: WriteTx) => Promise<unknown>;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
  /** What the observer captured of the caller, if it captures anything. */
  readonly caller?: unknown;
}

/**
 * The embedded store: one SQLite file in WAL mode.
 *
 * Writes go through one queue and one connection. Writes that arrive while a
 * commit is in progress are run together in the next transaction, each inside
 * its own SAVEPOINT (so a failing write rolls back alone) and then committed
 * with one fsync (group commit). No write's promise resolves before COMMIT has
 * returned. Reads use a second connection, so they only ever see committed data.
 */
export class SqliteStore implements Store {
  private readonly writer: Database.Database;
  private readonly reader: Database.Database;
  private readonly w: SqliteStatements;
  private readonly r: SqliteStatements;
  private readonly cr: CreditStatements;
  private readonly tx: SqliteBatchTx;
  private readonly maxBatch: number;
  /** What group commit has done so far: commits, and the writes they carried (failed ones included). */
  readonly commitStats = { commits: 0, writes: 0 };
  /** Told of every transaction (metrics, traces); set by the server when it observes. */
  observer: StoreObserver | undefined;
  private queue: Job[] = [];
  private draining = false;
  private closed = false;
  /**
   * API keys by id (null: no such key), so that authenticating a call costs
   * no read. Emptied right after any commit of this process that wrote
   * api_keys (revocation is honoured by the next call), and whenever another
   * process has committed to the database (the writer connection's
   * data_version moves: a second server or the CLI on the same file may have
   * revoked a key).
   */
  private readonly keyCache = new Map<string, ApiKeyRecord | null>();
  private readonly assets = new Map<string, Asset>();
  private keyCacheVersion: unknown = undefined;
  private keysWritten = false;
  private readonly dataVersion: Database.Statement;
  /** The readiness probe's query, prepared once (it runs every probe interval). */
  private readonly pingStatement: Database.Statement;
  /** The schema versions before and after the migrations this open applied. */
  readonly schemaVersions: SchemaVersions;

  private readonly lock: ServeLock | undefined;
  /** The database file, for the verify worker's own connection. */
  private readonly path: string;
  private readonly busyMs: number;

  private constructor(opts: SqliteStoreOptions) {
    this.maxBatch = opts.maxBatch ?? 512;
    this.path = opts.path;
    this.lock = opts.exclusive ? acquireServeLock(opts.path) : undefined;
    try {
      this.writer = new Database(opts.path);
      const busy = opts.busyTimeoutMs ?? 2000;
      this.busyMs = busy;
      this.writer.defaultSafeIntegers(true);
      this.writer.pragma("journal_mode = WAL");
      this.writer.pragma(`synchronous = ${opts.durability === "normal" ? "NORMAL" : "FULL"}`);
      this.writer.pragma(`busy_timeout = ${busy}`);
      this.writer.pragma("foreign_keys = ON");
      this.schemaVersions = migrate(this.writer);
      this.reader = new Database(opts.path, { readonly: true, fileMustExist: true });
      this.reader.defaultSafeIntegers(true);
      this.reader.pragma(`busy_timeout = ${busy}`);
      this.w = new SqliteStatements(this.writer);
      this.r = new SqliteStatements(this.reader);
      this.cr = new CreditStatements(this.reader);
      this.tx = new SqliteBatchTx(this.w, new CreditStatements(this.writer), () => (this.keysWritten = true));
      this.dataVersion = this.writer.prepare("PRAGMA data_version").pluck();
      this.pingStatement = this.reader.prepare("SELECT 1");
    } catch (e) {
      this.lock?.release();
      throw e;
    }
  }

  /** Opens (creating and migrating when needed) the database at `opts.path`. */
  static open(opts: SqliteStoreOptions): SqliteStore {
    return new SqliteStore(opts);
  }

  /** The durability settings in force, as SQLite reports them. */
  pragmas(): { journalMode: string; synchronous: number } {
    return {
      journalMode: String(this.writer.pragma("journal_mode", { simple: true })),
      synchronous: Number(this.writer.pragma("synchronous", { simple: true })),
    };
  }

  write<T>(fn: (tx: WriteTx) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new LedgerError("unavailable", "store_closed", "the store is closed"));
    const caller = this.observer?.capture?.();
    return new Promise<T>((resolve, reject) => {
      this.queue.push(caller === undefined ? { fn, resolve: resolve as (v: unknown) => void, reject } : { fn, resolve: resolve as (v: unknown) => void, reject, caller });
      if (!this.draining) {
        this.draining = true;
        // Let requests that arrived in the same turn join this commit.
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        await this.commitBatch(batch);
      }
    } finally {
      this.draining = false;
      if (this.queue.length > 0 && !this.closed) {
        this.draining = true;
        setImmediate(() => void this.drain());
      }
    }
  }

  private async commitBatch(batch: Job[]): Promise<void> {
    const end = this.observer?.transaction(batch.length, this.observer.capture === undefined ? undefined : batch.map((j) => j.caller));
    const outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    try {
      this.writer.exec("BEGIN IMMEDIATE");
    } catch (e) {
      end?.(false);
      for (const job of batch) job.reject(storeError(e));
      return;
    }
    for (const job of batch) {
      this.tx.beginWrite();
      try {
        const value = await job.fn(this.tx);
        this.tx.endWrite();
        outcomes.push({ ok: true, value });
      } catch (error) {
        if (this.writer.inTransaction) {
          this.tx.abortWrite();
          outcomes.push({ ok: false, error });
        } else {
          // SQLite rolled the whole transaction back (disk full, I/O error):
          // the earlier writes of this batch are gone too, and none was acknowledged.
          this.tx.reset();
          for (const o of outcomes) if (o.ok) Object.assign(o, { ok: false, error: storeError(error) });
          outcomes.push({ ok: false, error });
          this.writer.exec("BEGIN IMMEDIATE");
        }
      }
    }
    try {
      this.tx.flush();
      this.writer.exec("COMMIT");
    } catch (e) {
      this.tx.reset();
      if (this.writer.inTransaction) this.writer.exec("ROLLBACK");
      this.forgetKeysIfWritten();
      end?.(false);
      for (const job of batch) job.reject(storeError(e));
      return;
    }
    this.tx.reset();
    end?.(true);
    this.commitStats.commits++;
    this.commitStats.writes += batch.length;
    // Right after COMMIT, before anything else runs: a read between the write and the
    // commit may have cached the old row.
    this.forgetKeysIfWritten();
    batch.forEach((job, i) => {
      const o = outcomes[i]!;
      if (o.ok) job.resolve(o.value);
      else job.reject(o.ok === false && o.error instanceof LedgerError ? o.error : storeError(o.error));
    });
  }

  /**
   * Empties the key cache when another connection has committed since the
   * last check. Checked once per event-loop turn, not per call (a per-call
   * PRAGMA cost tens of µs while the writer commits hundreds of times a
   * second): the calls of one turn were read from sockets that libuv found
   * ready before that turn's first check (one epoll_wait, unless more than
   * 1,024 sockets are ready at once), so a revocation committed before a
   * call was sent is still seen by that call.
   */
  private checkKeyCacheVersion(): void {
    if (this.keyCacheChecked) return;
    this.keyCacheChecked = true;
    setImmediate(this.endKeyCacheTurn);
    const version: unknown = this.dataVersion.get();
    if (version !== this.keyCacheVersion) {
      this.keyCache.clear();
      this.keyCacheVersion = version;
    }
  }
  private keyCacheChecked = false;
  private readonly endKeyCacheTurn = (): void => {
    this.keyCacheChecked = false;
  };

  private forgetKeysIfWritten(): void {
    if (!this.keysWritten) return;
    this.keysWritten = false;
    this.keyCache.clear();
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error("the store is closed");
    this.pingStatement.get();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Finish what was accepted before closing.
    while (this.draining || this.queue.length > 0) await new Promise((r) => setTimeout(r, 5));
    this.closed = true;
    this.reader.close();
    this.writer.close();
    this.lock?.release();
  }

  // ---- reads (committed data only) -----------------------------------------

  async getTenant(tenantId: string): Promise<Tenant | undefined> {
    return rows.tenant(this.r.getTenant.get(tenantId));
  }
  async countTenants(): Promise<number> {
    return Number((this.r.countTenants.get() as { n: bigint }).n);
  }
  async listTenantIds(): Promise<string[]> {
    return (this.r.listTenantIds.all() as { id: string }[]).map((x) => x.id);
  }
  async getAccount(tenantId: string, id: string): Promise<Account | undefined> {
    return rows.account(this.r.getAccount.get(tenantId, id));
  }
  async listAccounts(tenantId: string, afterId: string, limit: number): Promise<Account[]> {
    return this.r.listAccounts.all(tenantId, afterId, limit).map((x) => rows.account(x)!);
  }
  async getAsset(tenantId: string, code: string): Promise<Asset | undefined> {
    // An asset's scale never changes once defined, and this connection sees
    // only committed rows, so a found asset is cached for good (bounded).
    const k = `${tenantId}\u0000${code}`;
    const known = this.assets.get(k);
    if (known !== undefined) return known;
    const found = rows.asset(this.r.getAsset.get(tenantId, code));
    if (found !== undefined) {
      if (this.assets.size >= 10_000) this.assets.clear();
      this.assets.set(k, found);
    }
    return found;
  }
  async listAssets(tenantId: string): Promise<Asset[]> {
    return this.r.listAssets.all(tenantId).map((x) => rows.asset(x)!);
  }
  async getBalance(tenantId: string, accountId: string, asset: string): Promise<BalanceRow | undefined> {
    return rows.balance(this.r.getBalance.get(tenantId, accountId, asset));
  }
  async getAccountBalance(tenantId: string, accountId: string, asset: string): Promise<AccountBalance | undefined> {
    // Parameters in the statement's order: the join's asset first.
    return rows.accountBalance(this.r.getAccountBalance.get(asset, tenantId, accountId), asset);
  }
  async listBalances(tenantId: string, accountId: string): Promise<BalanceRow[]> {
    return this.r.listBalances.all(tenantId, accountId).map((x) => rows.balance(x)!);
  }
  async getTransfer(tenantId: string, id: string): Promise<Transfer | undefined> {
    return rows.transfer(this.r.getTransfer.get(tenantId, id));
  }
  async listEntries(q: EntryPageQuery): Promise<EntryView[]> {
    const before = q.beforeSequence ?? 9223372036854775807n;
    const list =
      q.asset === undefined
        ? this.r.entriesBefore.all(q.tenantId, q.accountId, before, q.limit)
        : this.r.entriesBeforeAsset.all(q.tenantId, q.accountId, q.asset, before, q.limit);
    return list.map(rows.entryView);
  }
  async postedEntriesPage(q: PostedEntryPageQuery): Promise<EntryView[]> {
    const list = this.r.postedEntriesPage.all({ tenant: q.tenantId, account: q.accountId, asset: q.asset, skip: q.skip, limit: q.limit });
    return list.map(rows.entryView);
  }
  async entriesAfter(q: EntryTailQuery): Promise<EntryView[]> {
    const list =
      q.asset === undefined
        ? this.r.entriesAfter.all(q.tenantId, q.accountId, q.afterSequence, q.limit)
        : this.r.entriesAfterAsset.all(q.tenantId, q.accountId, q.asset, q.afterSequence, q.limit);
    return list.map(rows.entryView);
  }
  async journalWrites(tenantId: string, afterSequence: bigint, limit: number): Promise<JournalWrite[]> {
    return this.r.journalWrites.all(tenantId, afterSequence, limit).map(rows.journalWrite);
  }
  async journalHead(): Promise<bigint> {
    return (this.r.headSequence.get() as { head: bigint }).head;
  }
  async lastEntryAtOrBefore(tenantId: string, accountId: string, asset: string, at: bigint): Promise<Entry | undefined> {
    const row = this.r.lastEntryAtOrBefore.get(tenantId, accountId, asset, at);
    return row === undefined ? undefined : rows.entry(row);
  }
  async lastEntryEffectiveBy(tenantId: string, accountId: string, asset: string, at: bigint): Promise<Entry | undefined> {
    const row = this.r.lastEntryEffectiveBy.get(tenantId, accountId, asset, at);
    return row === undefined ? undefined : rows.entry(row);
  }
  async assetsAtOrBefore(tenantId: string, accountId: string, at: bigint): Promise<string[]> {
    return (this.r.assetsAtOrBefore.all(tenantId, accountId, at) as { asset: string }[]).map((x) => x.asset);
  }
  async watchPoint(): Promise<bigint> {
    // One writer commits in sequence order: the head (highest committed sequence, 0n when empty) is always a safe start.
    return this.journalHead();
  }
  async getApiKey(id: string): Promise<ApiKeyRecord | undefined> {
    // All synchronous: no commit can fall between the version check, the read and the caching.
    this.checkKeyCacheVersion();
    const cached = this.keyCache.get(id);
    if (cached !== undefined) return cached ?? undefined;
    const key = rows.apiKey(this.r.getApiKey.get(id));
    // Unknown ids are kept too (as null): a first lookup costs a read whether the id
    // exists or not, so the time taken tells nothing about other tenants' keys.
    // Bounded: an id spray only empties the cache now and then.
    if (this.keyCache.size >= 10_000) this.keyCache.clear();
    this.keyCache.set(id, key === undefined ? null : Object.freeze(key));
    return key;
  }
  async listApiKeys(tenantId: string): Promise<ApiKeyRecord[]> {
    // Not through the key cache: a listing is rare, and must show revocations by any process.
    return this.r.listApiKeys.all(tenantId).map((x) => rows.apiKey(x)!);
  }
  async getMeta(key: string): Promise<string | undefined> {
    return (this.r.getMeta.get(key) as { value: string } | undefined)?.value;
  }
  async getCredential(kind: string, id: string): Promise<CredentialRecord | undefined> {
    return rows.credential(this.r.getCredential.get(kind, id));
  }
  async listCredentials(kind: string, tenantId?: string): Promise<CredentialRecord[]> {
    const list = tenantId === undefined ? this.r.listCredentials.all(kind) : this.r.listCredentialsInTenant.all(kind, tenantId);
    return list.map((x) => rows.credential(x)!);
  }

  async getCreditBalance(tenantId: string, id: string): Promise<CreditBalance | undefined> {
    return this.cr.balance(this.cr.getBalance.get(tenantId, id));
  }
  async listCreditBalances(tenantId: string, customerId: string, afterOrdinal: bigint, limit: number): Promise<CreditBalance[]> {
    // One read transaction, so balances and their segments are one snapshot.
    return this.reader.transaction(() => this.cr.listByCustomer.all(tenantId, customerId, afterOrdinal, limit).map((x) => this.cr.balance(x)!)).deferred();
  }
  async listCreditEntries(tenantId: string, balanceId: string): Promise<CreditEntry[]> {
    return this.cr.entries(tenantId, balanceId);
  }
  async dueCreditClosings(cutoff: bigint, limit: number): Promise<DueCustomer[]> {
    return this.cr.due(cutoff, limit);
  }

  async journalSums(tenantId: string): Promise<JournalSums> {
    const sql = { sums: this.r.verifySums.source, balances: this.r.verifyBalances.source, running: this.r.verifyRunning.source };
    const answer = await verifyInWorker(this.path, tenantId, sql, this.busyMs);
    if (answer.overflow) return { sums: [], balances: [], running: [], overflow: true };
    if (answer.rows === undefined) throw storeError(new Error(answer.error ?? "verify failed"));
    return {
      sums: answer.rows.sums.map(rows.journalSum),
      balances: answer.rows.balances.map((x) => rows.balance(x)!),
      running: answer.rows.running.map(rows.runningSum),
      overflow: false,
    };
  }


}

function migrate(db: Database.Database): SchemaVersions {
  db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT");
  const applied = new Set(
    (db.prepare("SELECT version FROM schema_migrations").all() as { version: bigint }[]).map((r) => Number(r.version)),
  );
  const report = reportVersions(applied, MIGRATIONS);
  for (const m of MIGRATIONS) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)").run(
        BigInt(m.version),
        m.name,
        BigInt(Date.now()) * 1000n,
      );
    }).immediate();
  }
  return report;
}

/** Storage failures become `unavailable`: the client may retry with the same idempotency key. */
function storeError(e: unknown): LedgerError {
  if (e instanceof LedgerError) return e;
  const code = String((e as { code?: unknown } | null)?.code ?? "");
  if (/^SQLITE_(BUSY|LOCKED|FULL|IOERR|READONLY|CANTOPEN|PROTOCOL|NOMEM)/.test(code)) {
    const detail = code.startsWith("SQLITE_FULL") ? "the disk is full" : code.startsWith("SQLITE_BUSY") ? "the database is busy" : "the database is unavailable";
    return new LedgerError("unavailable", "store_unavailable", `${detail}; nothing was written, the call may be retried`, { sqlite_code: code });
  }
  // Anything else is a bug of ours; the message stays generic so no internals reach the wire.
  return new LedgerError("internal", "internal", "internal error", code ? { sqlite_code: code } : {});
}
