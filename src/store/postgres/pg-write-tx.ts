import type pg from "pg";
import type { Asset } from "../../domain/asset.js";
import type { Account, BalanceRow, Entry, IdempotencyRecord, NewEntry, Transfer } from "../../domain/model.js";
import type { WriteTx } from "../../domain/store.js";
import * as rows from "../rows.js";
import * as credit from "./credit-queries.js";
import { Q, all, one, run } from "./pg-queries.js";

/** Most assets a process remembers: clients can create assets, memory must stay bounded. */
const MAX_CACHED_ASSETS = 10_000;

/** Keeps a committed asset in a store's shared cache (bounded). */
export function rememberAsset(cache: Map<string, Asset>, k: string, a: Asset): void {
  if (cache.size >= MAX_CACHED_ASSETS) cache.clear();
  cache.set(k, a);
}

const key2 = (a: string, b: string) => `${a}\u0000${b}`;

/** A journal entry held for the flush, with the posted ordinal the transaction gave it (null unless POSTED). */
type HeldEntry = Entry & { readonly postedOrdinal: bigint | null };
const key3 = (a: string, b: string, c: string) => `${a}\u0000${b}\u0000${c}`;

/**
 * One PostgreSQL write transaction, for one write or for a batch of them
 * (group commit), on its own connection.
 *
 * What a transfer writes is held until {@link flush}, just before COMMIT:
 * journal entries (their sequences reserved up front from the table's
 * identity, after the accounts are locked), transfer rows, idempotency
 * records and balance rows, each written by one multi-row statement for the
 * whole transaction. So a transfer costs about one round trip (its
 * idempotency lookup) instead of ten, and the rows of a batch reach the
 * database together. Reads inside the transaction see what it holds.
 *
 * A write of a batch that fails takes back its own changes: what it held,
 * from an undo log; what it wrote at once (anything but the above), by
 * rolling back to a savepoint opened before its first such statement, so a
 * transfer refused by a rule costs no savepoint and no round trip.
 */
export class PgWriteTx implements WriteTx {
  /** Assets this transaction created: not committed yet, so not for the shared cache. */
  private readonly created = new Set<string>();
  /**
   * Accounts this transaction has locked, as read under the lock: nobody else
   * can change them before it ends, so getAccount answers them without a
   * round trip (setAccountFrozen forgets the one it changes).
   */
  private readonly locked = new Map<string, Account>();
  /**
   * Balances of the locked accounts, by asset (absent: no row yet). Only a
   * writer holding the account's lock changes them, so they stay exact.
   */
  private readonly balances = new Map<string, Map<string, BalanceRow>>();
  private readonly dirtyBalances = new Map<string, BalanceRow>();
  /**
   * The newest posted ordinal of each (tenant, account, asset) of the locked
   * accounts (absent: none yet), read with their balances and continued by
   * every POSTED entry this transaction appends. Exact for the same reason as
   * the balances: only the lock's holder appends to the account's journal.
   */
  private readonly ordinals = new Map<string, bigint>();
  private readonly entries: HeldEntry[] = [];
  private readonly transfers = new Map<string, Transfer>();
  private readonly keys = new Map<string, IdempotencyRecord>();
  /** Idempotency records read ahead for a batch (null: no record when read). */
  private readonly knownKeys = new Map<string, IdempotencyRecord | null>();
  /** Journal sequences reserved for this transaction and not used yet, ascending. */
  private sequences: bigint[] = [];
  private undo: (() => void)[] = [];
  /** Whether the running write of a batch has opened its savepoint. */
  private savepointOpen = false;

  constructor(
    private readonly c: pg.PoolClient,
    /** Committed assets, shared by every transaction of the store. */
    private readonly assets: Map<string, Asset>,
    /** True when several writes share the transaction: each then needs a way back. */
    private readonly batch = false,
  ) {}

  // ---- the transaction and its writes ---------------------------------------

  /** Starts the next write of a batch. */
  beginWrite(): void {
    this.undo = [];
    this.savepointOpen = false;
  }

  /** The write succeeded: its changes stay in the transaction. */
  async endWrite(): Promise<void> {
    if (this.savepointOpen) await this.c.query("RELEASE tally_write");
    this.savepointOpen = false;
    this.undo = [];
  }

  /** The write failed with a refusal: none of its changes stay. */
  async abortWrite(): Promise<void> {
    if (this.savepointOpen) await this.c.query("ROLLBACK TO tally_write; RELEASE tally_write");
    this.savepointOpen = false;
    for (let i = this.undo.length - 1; i >= 0; i--) this.undo[i]!();
    this.undo = [];
  }

  /**
   * Reads the idempotency records of a batch's keys in one query, after its
   * locks. A record another replica commits later is still caught: inserting
   * the same key then fails, and the batch runs again.
   */
  async prefetchKeys(tenantId: string, keys: readonly string[]): Promise<void> {
    for (const k of keys) this.knownKeys.set(key2(tenantId, k), null);
    for (const row of await all(this.c, Q.getIdempotencies, [tenantId, keys])) {
      const r = rows.idempotency(row)!;
      this.knownKeys.set(key2(r.tenantId, r.key), r);
    }
  }

  /** Reserves `n` journal sequences in one round trip (a batch asks for what it will likely need). */
  async reserveSequences(n: number): Promise<void> {
    const got = (await all(this.c, Q.reserveSequences, [n])).map((r) => r.sequence as bigint);
    got.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    this.sequences.push(...got);
  }

  /** Writes everything held, one statement per table; runs just before COMMIT. */
  async flush(): Promise<void> {
    if (this.entries.length > 0) {
      const list = this.entries.splice(0);
      const col = (f: (e: HeldEntry) => unknown) => list.map((e) => String(f(e)));
      await run(this.c, Q.insertEntries, [
        col((e) => e.sequence),
        col((e) => e.tenantId),
        col((e) => e.transferId),
        col((e) => e.accountId),
        col((e) => e.counterpartyId),
        col((e) => e.asset),
        col((e) => e.direction),
        col((e) => e.status),
        col((e) => e.amount),
        col((e) => e.pendingChange),
        col((e) => e.postedAfter),
        col((e) => e.pendingInAfter),
        col((e) => e.pendingOutAfter),
        col((e) => e.createdAt),
        col((e) => e.effectiveAt),
        list.map((e) => (e.postedOrdinal === null ? null : String(e.postedOrdinal))),
      ]);
    }
    if (this.transfers.size > 0) {
      const list = [...this.transfers.values()];
      this.transfers.clear();
      const params = list.map(rows.transferParams);
      await run(this.c, Q.insertTransfers, params[0]!.map((_, i) => params.map((p) => (p[i] === null ? null : String(p[i])))));
    }
    if (this.keys.size > 0) {
      const list = [...this.keys.values()];
      this.keys.clear();
      const col = (f: (r: IdempotencyRecord) => unknown) => list.map((r) => String(f(r)));
      await run(this.c, Q.putIdempotencies, [
        col((r) => r.tenantId),
        col((r) => r.key),
        col((r) => r.requestHash),
        col((r) => r.transferId),
        col((r) => r.sequence),
        col((r) => r.debitBalanceAfter),
        col((r) => r.creditBalanceAfter),
      ]);
    }
    if (this.dirtyBalances.size > 0) {
      const list = [...this.dirtyBalances.values()];
      this.dirtyBalances.clear();
      const col = (f: (b: BalanceRow) => unknown) => list.map((b) => String(f(b)));
      await run(this.c, Q.putBalances, [
        col((b) => b.tenantId),
        col((b) => b.accountId),
        col((b) => b.asset),
        col((b) => b.posted),
        col((b) => b.pendingIn),
        col((b) => b.pendingOut),
        col((b) => b.sequence),
        col((b) => b.updatedAt),
      ]);
    }
  }

  /** Sets (or with undefined, deletes) a map entry, remembering how to take it back. */
  private set<K, V>(map: Map<K, V>, k: K, v: V | undefined): void {
    const had = map.has(k);
    const before = map.get(k);
    this.undo.push(() => (had ? map.set(k, before as V) : map.delete(k)));
    if (v === undefined) map.delete(k);
    else map.set(k, v);
  }

  /** Before a statement that changes the database at once: a batch's write opens its savepoint. */
  private async mutating(): Promise<void> {
    if (!this.batch || this.savepointOpen) return;
    await this.c.query("SAVEPOINT tally_write");
    this.savepointOpen = true;
  }

  // ---- ledger ---------------------------------------------------------------

  async getAccount(tenantId: string, id: string): Promise<Account | undefined> {
    return this.locked.get(key2(tenantId, id)) ?? rows.account(await one(this.c, Q.getAccount, [tenantId, id]));
  }
  async lockAccounts(tenantId: string, ids: readonly string[]): Promise<void> {
    // Accounts a batch already locked for all its writes cost no round trip.
    const wanted = ids.filter((id) => !this.balances.has(key2(tenantId, id)));
    if (wanted.length === 0) return;
    // A lock taken inside a write's savepoint is released by rolling back to it.
    await this.mutating();
    await this.lockRows(tenantId, wanted);
  }

  /** Takes a batch's locks before its first write (sorted ids; tenants in sorted order). */
  async lockBatch(tenantId: string, ids: readonly string[]): Promise<void> {
    await this.lockRows(tenantId, ids);
    this.undo = [];
  }

  private async lockRows(tenantId: string, ids: readonly string[]): Promise<void> {
    const held: string[] = [];
    for (const row of await all(this.c, Q.lockAccounts, [tenantId, ids])) {
      const a = rows.account(row)!;
      const k = key2(a.tenantId, a.id);
      this.set(this.locked, k, a);
      this.set(this.balances, k, new Map<string, BalanceRow>());
      held.push(a.id);
    }
    if (held.length === 0) return;
    // One query for every balance of the locked accounts instead of one per getBalance.
    for (const row of await all(this.c, Q.balancesOfAccounts, [tenantId, held])) {
      const b = rows.balance(row)!;
      this.balances.get(key2(b.tenantId, b.accountId))!.set(b.asset, b);
      if (row.last_posted_ordinal !== null) this.set(this.ordinals, key3(b.tenantId, b.accountId, b.asset), row.last_posted_ordinal as bigint);
    }
  }
  async insertAccount(a: Account): Promise<void> {
    await this.mutating();
    await run(this.c, Q.insertAccount, rows.accountParams(a));
  }
  async setAccountFrozen(tenantId: string, id: string, frozenAt: bigint | null, effectiveAt: bigint): Promise<void> {
    await this.mutating();
    this.set(this.locked, key2(tenantId, id), undefined);
    await run(this.c, Q.setAccountFrozen, [frozenAt, effectiveAt, tenantId, id]);
  }
  async getAsset(tenantId: string, code: string): Promise<Asset | undefined> {
    const k = key2(tenantId, code);
    const known = this.assets.get(k);
    if (known) return known;
    const found = rows.asset(await one(this.c, Q.getAsset, [tenantId, code]));
    if (found && !this.created.has(k)) rememberAsset(this.assets, k, found);
    return found;
  }
  async insertAsset(tenantId: string, asset: Asset, createdAt: bigint): Promise<void> {
    await this.mutating();
    this.created.add(key2(tenantId, asset.code));
    await run(this.c, Q.insertAsset, [tenantId, asset.code, BigInt(asset.scale), createdAt]);
  }
  async getBalance(tenantId: string, accountId: string, asset: string): Promise<BalanceRow | undefined> {
    const held = this.balances.get(key2(tenantId, accountId));
    if (held) return held.get(asset);
    return rows.balance(await one(this.c, Q.getBalance, [tenantId, accountId, asset]));
  }
  async putBalance(b: BalanceRow): Promise<void> {
    const held = this.balances.get(key2(b.tenantId, b.accountId));
    if (!held) {
      // Not locked by this transaction: no copy to keep exact, so written at once.
      await this.mutating();
      await run(this.c, Q.putBalance, [b.tenantId, b.accountId, b.asset, b.posted, b.pendingIn, b.pendingOut, b.sequence, b.updatedAt]);
      return;
    }
    this.set(held, b.asset, b);
    this.set(this.dirtyBalances, key3(b.tenantId, b.accountId, b.asset), b);
  }
  async latestBalanceTime(tenantId: string, accountId: string): Promise<bigint> {
    const held = this.balances.get(key2(tenantId, accountId));
    if (!held) return (await one(this.c, Q.latestBalanceTime, [tenantId, accountId]))!.at as bigint;
    let at = 0n;
    for (const b of held.values()) if (b.updatedAt > at) at = b.updatedAt;
    return at;
  }
  async appendEntries(list: readonly NewEntry[]): Promise<Entry[]> {
    if (this.sequences.length < list.length) await this.reserveSequences(list.length - this.sequences.length);
    const out = list.map((e) => ({ ...e, sequence: this.sequences.shift()! }));
    const held: HeldEntry[] = [];
    for (const e of out) held.push({ ...e, postedOrdinal: await this.nextOrdinal(e) });
    const before = this.entries.length;
    this.entries.push(...held);
    this.undo.push(() => void this.entries.splice(before));
    return out;
  }

  /** The posted ordinal of a new entry: the next of its (account, asset) when POSTED, else null. */
  private async nextOrdinal(e: NewEntry): Promise<bigint | null> {
    if (e.status !== "POSTED") return null;
    const k = key3(e.tenantId, e.accountId, e.asset);
    let last = this.ordinals.get(k);
    if (last === undefined) {
      // A locked account's count was read with its balances (absent: no posted entry yet).
      // Every ledger write locks its accounts first; an unlocked one is read here, held entries aside.
      last = this.balances.has(key2(e.tenantId, e.accountId))
        ? 0n
        : (((await one(this.c, Q.lastPostedOrdinal, [e.tenantId, e.accountId, e.asset]))?.posted_ordinal as bigint | undefined) ?? 0n);
    }
    // Through the undo log: a write of a batch that fails takes its ordinals back.
    this.set(this.ordinals, k, last + 1n);
    return last + 1n;
  }
  async getTransfer(tenantId: string, id: string): Promise<Transfer | undefined> {
    return this.transfers.get(key2(tenantId, id)) ?? rows.transfer(await one(this.c, Q.getTransfer, [tenantId, id]));
  }
  async insertTransfer(t: Transfer): Promise<void> {
    this.set(this.transfers, key2(t.tenantId, t.id), t);
  }
  async updateTransfer(t: Transfer): Promise<void> {
    const k = key2(t.tenantId, t.id);
    if (this.transfers.has(k)) return this.set(this.transfers, k, t);
    await this.mutating();
    await run(this.c, Q.updateTransfer, [t.status, t.postedAmount, t.updatedAt, t.sequence, t.debitBalanceAfter, t.creditBalanceAfter, t.tenantId, t.id]);
  }
  async getIdempotency(tenantId: string, key: string): Promise<IdempotencyRecord | undefined> {
    const k = key2(tenantId, key);
    const held = this.keys.get(k);
    if (held) return held;
    const known = this.knownKeys.get(k);
    if (known !== undefined) return known ?? undefined;
    return rows.idempotency(await one(this.c, Q.getIdempotency, [tenantId, key]));
  }
  async putIdempotency(r: IdempotencyRecord): Promise<void> {
    this.set(this.keys, key2(r.tenantId, r.key), r);
  }

  // ---- access ---------------------------------------------------------------

  async insertTenant(t: Parameters<WriteTx["insertTenant"]>[0]): Promise<void> {
    await this.mutating();
    await run(this.c, Q.insertTenant, [t.id, t.name, t.createdAt]);
  }
  async getTenant(tenantId: string) {
    return rows.tenant(await one(this.c, Q.getTenant, [tenantId]));
  }
  async insertApiKey(k: Parameters<WriteTx["insertApiKey"]>[0]): Promise<void> {
    await this.mutating();
    await run(this.c, Q.insertApiKey, [k.id, k.tenantId, k.scope, k.accountId, k.operator ? 1n : 0n, k.label, Buffer.from(k.secretHash), k.createdAt, k.revokedAt]);
  }
  async getApiKey(id: string) {
    return rows.apiKey(await one(this.c, Q.getApiKey, [id]));
  }
  async revokeApiKey(id: string, revokedAt: bigint): Promise<void> {
    await this.mutating();
    await run(this.c, Q.revokeApiKey, [revokedAt, id]);
  }
  async initMeta(key: string, value: string): Promise<string> {
    await this.mutating();
    // A concurrent insert of the same key waits for that writer, then does nothing.
    await run(this.c, Q.initMeta, [key, value]);
    return (await one(this.c, Q.getMeta, [key]))!.value as string;
  }
  async getMeta(key: string): Promise<string | undefined> {
    return (await one(this.c, Q.getMeta, [key]))?.value as string | undefined;
  }
  async insertCredential(r: Parameters<WriteTx["insertCredential"]>[0]): Promise<void> {
    await this.mutating();
    await run(this.c, Q.insertCredential, rows.credentialParams(r));
  }
  async getCredential(kind: string, id: string) {
    return rows.credential(await one(this.c, Q.getCredential, [kind, id]));
  }
  async revokeCredential(kind: string, id: string, revokedAt: bigint): Promise<void> {
    await this.mutating();
    await run(this.c, Q.revokeCredential, [revokedAt, kind, id]);
  }
  async claimNonce(scope: string, nonce: string, expiresAt: bigint, now: bigint): Promise<boolean> {
    await this.mutating();
    await run(this.c, Q.purgeNonces, [now]);
    return (await run(this.c, Q.claimNonce, [scope, nonce, expiresAt])) === 1;
  }

  // ---- credits --------------------------------------------------------------

  async getCreditBalance(tenantId: string, id: string) {
    return credit.getCreditBalance(this.c, tenantId, id);
  }
  async getCreditBalanceByUniquenessKey(tenantId: string, key: string) {
    return credit.getCreditBalanceByUniquenessKey(this.c, tenantId, key);
  }
  async creditSegmentExists(tenantId: string, id: string): Promise<boolean> {
    return credit.creditSegmentExists(this.c, tenantId, id);
  }
  async insertCreditBalance(b: Parameters<WriteTx["insertCreditBalance"]>[0]) {
    await this.mutating();
    return credit.insertCreditBalance(this.c, b);
  }
  async archiveCreditBalance(tenantId: string, id: string, archivedAt: bigint): Promise<void> {
    await this.mutating();
    await credit.archiveCreditBalance(this.c, tenantId, id, archivedAt);
  }
  async latestCreditCreatedAt(tenantId: string, customerId: string): Promise<bigint | undefined> {
    return credit.latestCreditCreatedAt(this.c, tenantId, customerId);
  }
  async activeCreditBalances(tenantId: string, customerId: string) {
    return credit.activeCreditBalances(this.c, tenantId, customerId);
  }
  async listCreditEntries(tenantId: string, balanceId: string) {
    return credit.listCreditEntries(this.c, tenantId, balanceId);
  }
  async appendCreditEntries(list: Parameters<WriteTx["appendCreditEntries"]>[0]) {
    await this.mutating();
    return credit.appendCreditEntries(this.c, list);
  }
  async getCreditUsage(tenantId: string, usageId: string) {
    return credit.getCreditUsage(this.c, tenantId, usageId);
  }
  async putCreditUsage(r: Parameters<WriteTx["putCreditUsage"]>[0]): Promise<void> {
    await this.mutating();
    await credit.putCreditUsage(this.c, r);
  }
  async getCreditManualKey(tenantId: string, key: string) {
    return credit.getCreditManualKey(this.c, tenantId, key);
  }
  async putCreditManualKey(r: Parameters<WriteTx["putCreditManualKey"]>[0]): Promise<void> {
    await this.mutating();
    await credit.putCreditManualKey(this.c, r);
  }
}
