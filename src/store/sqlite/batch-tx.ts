import type { Asset } from "../../domain/asset.js";
import type { Account, BalanceRow, IdempotencyRecord, NewEntry } from "../../domain/model.js";
import type { WriteTx } from "../../domain/store.js";
import type { CreditStatements } from "./credit-statements.js";
import type { SqliteStatements } from "./statements.js";
import * as rows from "../rows.js";

/** One cache change of the running write, so that a failing write can take it back. */
interface Undo {
  readonly map: Map<string, unknown>;
  readonly key: string;
  readonly had: boolean;
  readonly value: unknown;
}

const key3 = (a: string, b: string, c: string) => `${a}\u0000${b}\u0000${c}`;
const key2 = (a: string, b: string) => `${a}\u0000${b}`;

/**
 * The write transaction of one group commit: every write of the batch runs
 * against it in turn, on the writer connection inside one BEGIN IMMEDIATE.
 *
 * What the writes of a batch keep reading and rewriting is held in memory for
 * the batch: balances (the payer of a busy account is read and rewritten by
 * every transfer), accounts and assets. Each write sees the effects of the
 * writes before it; balance rows reach the database once per batch, in
 * {@link flush}, just before COMMIT. A write that fails takes back its own
 * changes: its cache changes from an undo log, its statements by rolling
 * back to a savepoint, which is only opened once the write issues its first
 * statement that changes the database (a transfer refused for insufficient
 * funds or a frozen account never does, and costs no savepoint).
 */
export class SqliteBatchTx implements WriteTx {
  private readonly balances = new Map<string, BalanceRow | null>();
  private readonly dirty = new Map<string, BalanceRow>();
  /** The latest balance time per account among the rows in `dirty` (see latestBalanceTime). */
  private readonly balanceTimes = new Map<string, bigint>();
  private readonly accounts = new Map<string, Account | null>();
  private readonly assets = new Map<string, Asset | null>();
  /**
   * The newest posted ordinal of each (tenant, account, asset) this batch has
   * appended to or looked up: the batch's own entries are in the table already
   * (this connection sees them), so only the first POSTED entry of a key costs
   * a seek.
   */
  private readonly ordinals = new Map<string, bigint>();
  private undo: Undo[] = [];
  private savepointOpen = false;

  constructor(
    private readonly s: SqliteStatements,
    private readonly c: CreditStatements,
    /** Called before any write to api_keys: the store's key cache must be emptied after the commit. */
    private readonly onKeyWrite: () => void,
  ) {}

  // ---- the batch and its writes --------------------------------------------

  /** Starts the next write of the batch. */
  beginWrite(): void {
    this.undo = [];
    this.savepointOpen = false;
  }

  /** The write succeeded: its changes stay in the batch. */
  endWrite(): void {
    if (this.savepointOpen) this.s.release.run();
    this.savepointOpen = false;
    this.undo = [];
  }

  /** The write failed: none of its changes stay. */
  abortWrite(): void {
    if (this.savepointOpen) {
      this.s.rollbackTo.run();
      this.s.release.run();
    }
    this.savepointOpen = false;
    for (let i = this.undo.length - 1; i >= 0; i--) {
      const u = this.undo[i]!;
      if (u.had) u.map.set(u.key, u.value);
      else u.map.delete(u.key);
    }
    this.undo = [];
  }

  /** Writes the balances the batch changed; runs just before COMMIT. */
  flush(): void {
    for (const b of this.dirty.values()) {
      this.s.putBalance.run(b.tenantId, b.accountId, b.asset, b.posted, b.pendingIn, b.pendingOut, b.sequence, b.updatedAt);
    }
    this.dirty.clear();
  }

  /** Forgets the batch (after COMMIT, or after the transaction was lost). */
  reset(): void {
    this.balances.clear();
    this.dirty.clear();
    this.balanceTimes.clear();
    this.accounts.clear();
    this.assets.clear();
    this.ordinals.clear();
    this.undo = [];
    this.savepointOpen = false;
  }

  private set<V>(map: Map<string, V>, key: string, value: V): void {
    this.undo.push({ map: map as Map<string, unknown>, key, had: map.has(key), value: map.get(key) });
    map.set(key, value);
  }

  private forget<V>(map: Map<string, V>, key: string): void {
    if (!map.has(key)) return;
    this.undo.push({ map: map as Map<string, unknown>, key, had: true, value: map.get(key) });
    map.delete(key);
  }

  /** Opens the write's savepoint before its first statement that changes the database. */
  private mutating(): void {
    if (this.savepointOpen) return;
    this.s.savepoint.run();
    this.savepointOpen = true;
  }

  // ---- ledger --------------------------------------------------------------

  async getAccount(tenantId: string, id: string): Promise<Account | undefined> {
    const k = key2(tenantId, id);
    const known = this.accounts.get(k);
    if (known !== undefined) return known ?? undefined;
    const found = rows.account(this.s.getAccount.get(tenantId, id));
    this.set(this.accounts, k, found ?? null);
    return found;
  }
  async lockAccounts(): Promise<void> {
    // One writer at a time holds the database lock: nothing more to take.
  }
  async insertAccount(a: Account): Promise<void> {
    this.mutating();
    this.s.insertAccount.run(...rows.accountParams(a));
    this.set(this.accounts, key2(a.tenantId, a.id), a);
  }
  async setAccountFrozen(tenantId: string, id: string, frozenAt: bigint | null, effectiveAt: bigint): Promise<void> {
    this.mutating();
    this.s.setAccountFrozen.run(frozenAt, effectiveAt, tenantId, id);
    // Re-read on next use rather than patching a copy.
    this.forget(this.accounts, key2(tenantId, id));
  }
  async getAsset(tenantId: string, code: string): Promise<Asset | undefined> {
    const k = key2(tenantId, code);
    const known = this.assets.get(k);
    if (known !== undefined) return known ?? undefined;
    const found = rows.asset(this.s.getAsset.get(tenantId, code));
    this.set(this.assets, k, found ?? null);
    return found;
  }
  async insertAsset(tenantId: string, asset: Asset, createdAt: bigint): Promise<void> {
    this.mutating();
    this.s.insertAsset.run(tenantId, asset.code, BigInt(asset.scale), createdAt);
    this.set(this.assets, key2(tenantId, asset.code), asset);
  }
  async getBalance(tenantId: string, accountId: string, asset: string): Promise<BalanceRow | undefined> {
    const k = key3(tenantId, accountId, asset);
    const known = this.balances.get(k);
    if (known !== undefined) return known ?? undefined;
    const found = rows.balance(this.s.getBalance.get(tenantId, accountId, asset));
    this.set(this.balances, k, found ?? null);
    return found;
  }
  async putBalance(b: BalanceRow): Promise<void> {
    const k = key3(b.tenantId, b.accountId, b.asset);
    this.set(this.balances, k, b);
    this.set(this.dirty, k, b);
    const ka = key2(b.tenantId, b.accountId);
    const t = this.balanceTimes.get(ka);
    if (t === undefined || b.updatedAt > t) this.set(this.balanceTimes, ka, b.updatedAt);
  }
  async latestBalanceTime(tenantId: string, accountId: string): Promise<bigint> {
    const at = this.s.latestBalanceTime.get(tenantId, accountId) as bigint;
    // Rows this batch changed and has not flushed yet (a balance's time only grows).
    const held = this.balanceTimes.get(key2(tenantId, accountId));
    return held !== undefined && held > at ? held : at;
  }
  async appendEntries(list: readonly NewEntry[]) {
    this.mutating();
    return list.map((e) => {
      const info = this.s.insertEntry.run(...rows.entryParams(e), this.nextOrdinal(e));
      return { ...e, sequence: BigInt(info.lastInsertRowid) };
    });
  }
  /** The posted ordinal of a new entry: the next of its (account, asset) when POSTED, else null. */
  private nextOrdinal(e: NewEntry): bigint | null {
    if (e.status !== "POSTED") return null;
    const k = key3(e.tenantId, e.accountId, e.asset);
    const last = this.ordinals.get(k) ?? ((this.s.lastPostedOrdinal.get(e.tenantId, e.accountId, e.asset) as bigint | undefined) ?? 0n);
    // Through the undo log: a write that fails takes its ordinals back with its rows.
    this.set(this.ordinals, k, last + 1n);
    return last + 1n;
  }
  async getTransfer(tenantId: string, id: string) {
    return rows.transfer(this.s.getTransfer.get(tenantId, id));
  }
  async insertTransfer(t: Parameters<WriteTx["insertTransfer"]>[0]): Promise<void> {
    this.mutating();
    this.s.insertTransfer.run(...rows.transferParams(t));
  }
  async updateTransfer(t: Parameters<WriteTx["updateTransfer"]>[0]): Promise<void> {
    this.mutating();
    this.s.updateTransfer.run(t.status, t.postedAmount, t.updatedAt, t.sequence, t.debitBalanceAfter, t.creditBalanceAfter, t.tenantId, t.id);
  }
  async getIdempotency(tenantId: string, key: string): Promise<IdempotencyRecord | undefined> {
    return rows.idempotency(this.s.getIdempotency.get(tenantId, key));
  }
  async putIdempotency(r: IdempotencyRecord): Promise<void> {
    this.mutating();
    this.s.putIdempotency.run(r.tenantId, r.key, r.requestHash, r.transferId, r.sequence, r.debitBalanceAfter, r.creditBalanceAfter);
  }

  // ---- access --------------------------------------------------------------

  async insertTenant(t: Parameters<WriteTx["insertTenant"]>[0]): Promise<void> {
    this.mutating();
    this.s.insertTenant.run(t.id, t.name, t.createdAt);
  }
  async getTenant(tenantId: string) {
    return rows.tenant(this.s.getTenant.get(tenantId));
  }
  async insertApiKey(k: Parameters<WriteTx["insertApiKey"]>[0]): Promise<void> {
    this.mutating();
    this.onKeyWrite();
    this.s.insertApiKey.run(k.id, k.tenantId, k.scope, k.accountId, k.operator ? 1n : 0n, k.label, Buffer.from(k.secretHash), k.createdAt, k.revokedAt);
  }
  async getApiKey(id: string) {
    return rows.apiKey(this.s.getApiKey.get(id));
  }
  async revokeApiKey(id: string, revokedAt: bigint): Promise<void> {
    this.mutating();
    this.onKeyWrite();
    this.s.revokeApiKey.run(revokedAt, id);
  }
  async initMeta(key: string, value: string): Promise<string> {
    this.mutating();
    this.s.initMeta.run(key, value);
    return (this.s.getMeta.get(key) as { value: string }).value;
  }
  async getMeta(key: string): Promise<string | undefined> {
    return (this.s.getMeta.get(key) as { value: string } | undefined)?.value;
  }
  async insertCredential(cr: Parameters<WriteTx["insertCredential"]>[0]): Promise<void> {
    this.mutating();
    this.s.insertCredential.run(...rows.credentialParams(cr));
  }
  async getCredential(kind: string, id: string) {
    return rows.credential(this.s.getCredential.get(kind, id));
  }
  async revokeCredential(kind: string, id: string, revokedAt: bigint): Promise<void> {
    this.mutating();
    this.s.revokeCredential.run(revokedAt, kind, id);
  }
  async claimNonce(scope: string, nonce: string, expiresAt: bigint, now: bigint): Promise<boolean> {
    this.mutating();
    this.s.purgeNonces.run(now);
    return this.s.claimNonce.run(scope, nonce, expiresAt).changes === 1;
  }

  // ---- credits -------------------------------------------------------------

  async getCreditBalance(tenantId: string, id: string) {
    return this.c.balance(this.c.getBalance.get(tenantId, id));
  }
  async getCreditBalanceByUniquenessKey(tenantId: string, key: string) {
    return this.c.balance(this.c.getByUniquenessKey.get(tenantId, key));
  }
  async creditSegmentExists(tenantId: string, id: string): Promise<boolean> {
    return this.c.segmentExists.get(tenantId, id) !== undefined;
  }
  async insertCreditBalance(b: Parameters<WriteTx["insertCreditBalance"]>[0]) {
    this.mutating();
    return this.c.insert(b);
  }
  async archiveCreditBalance(tenantId: string, id: string, archivedAt: bigint): Promise<void> {
    this.mutating();
    this.c.archive.run(archivedAt, tenantId, id);
  }
  async latestCreditCreatedAt(tenantId: string, customerId: string): Promise<bigint | undefined> {
    return (this.c.latestCreated.get(tenantId, customerId) as { at: bigint | null }).at ?? undefined;
  }
  async activeCreditBalances(tenantId: string, customerId: string) {
    return this.c.allOfCustomer.all(tenantId, customerId).map((x) => this.c.balance(x)!);
  }
  async listCreditEntries(tenantId: string, balanceId: string) {
    return this.c.entries(tenantId, balanceId);
  }
  async appendCreditEntries(list: Parameters<WriteTx["appendCreditEntries"]>[0]) {
    this.mutating();
    return this.c.append(list);
  }
  async getCreditUsage(tenantId: string, usageId: string) {
    return this.c.usage(tenantId, usageId);
  }
  async putCreditUsage(r: Parameters<WriteTx["putCreditUsage"]>[0]): Promise<void> {
    this.mutating();
    this.c.putUsage.run(r.tenantId, r.usageId, r.requestHash, r.result, r.createdAt);
  }
  async getCreditManualKey(tenantId: string, key: string) {
    return this.c.manualKey(tenantId, key);
  }
  async putCreditManualKey(r: Parameters<WriteTx["putCreditManualKey"]>[0]): Promise<void> {
    this.mutating();
    this.c.putManualKey.run(r.tenantId, r.key, r.requestHash, r.result, r.createdAt);
  }
}
