import type { Asset } from "./asset.js";
import type {
  Account,
  ApiKeyRecord,
  BalanceRow,
  CredentialRecord,
  Entry,
  EntryView,
  IdempotencyRecord,
  NewEntry,
  Tenant,
  Transfer,
  VerifyReport,
} from "./model.js";
import type { CreditBalance, CreditEntry, CreditKeyRecord, DueCustomer, NewCreditEntry, UsageRecord } from "./credits/model.js";

/** An account with its balance in one asset (see StoreReader.getAccountBalance). */
export interface AccountBalance {
  readonly account: Account;
  readonly balance: BalanceRow | undefined;
}

/**
 * Reads that see only committed data. Every method is scoped by tenant; a store
 * never answers across tenants.
 */
export interface StoreReader {
  getTenant(tenantId: string): Promise<Tenant | undefined>;
  countTenants(): Promise<number>;
  listTenantIds(): Promise<string[]>;
  getAccount(tenantId: string, id: string): Promise<Account | undefined>;
  /** Accounts with id > afterId in id order. */
  listAccounts(tenantId: string, afterId: string, limit: number): Promise<Account[]>;
  getAsset(tenantId: string, code: string): Promise<Asset | undefined>;
  listAssets(tenantId: string): Promise<Asset[]>;
  getBalance(tenantId: string, accountId: string, asset: string): Promise<BalanceRow | undefined>;
  /**
   * An account and its balance in one asset, read together in one query (a
   * balance read is the hottest call); undefined when the account does not
   * exist, `balance` undefined when it never held the asset.
   */
  getAccountBalance(tenantId: string, accountId: string, asset: string): Promise<AccountBalance | undefined>;
  listBalances(tenantId: string, accountId: string): Promise<BalanceRow[]>;
  getTransfer(tenantId: string, id: string): Promise<Transfer | undefined>;
  /** Entries of an account with sequence < beforeSequence, newest first. */
  listEntries(query: EntryPageQuery): Promise<EntryView[]>;
  /** Entries of an account with sequence > afterSequence, oldest first. */
  entriesAfter(query: EntryTailQuery): Promise<EntryView[]>;
  /** The last entry of (account, asset) with sequence <= atSequence. */
  lastEntryAtOrBefore(tenantId: string, accountId: string, asset: string, atSequence: bigint): Promise<Entry | undefined>;
  /** Assets an account had entries in up to atSequence. */
  assetsAtOrBefore(tenantId: string, accountId: string, atSequence: bigint): Promise<string[]>;
  /**
   * A sequence S at which a watcher of this account can start: every entry of
   * the account with sequence <= S is committed (and visible), and every entry
   * of it committed later gets a sequence > S. With one writer (SQLite) that is
   * the journal's head; with concurrent writers (PostgreSQL) a head read while another
   * transaction holds the account's lock could skip that transaction's entries.
   */
  watchPoint(tenantId: string, accountId: string): Promise<bigint>;
  getApiKey(id: string): Promise<ApiKeyRecord | undefined>;
  /** Recomputes a tenant's balances from its journal. */
  verify(tenantId: string): Promise<VerifyReport>;
  getMeta(key: string): Promise<string | undefined>;
  getCredential(kind: string, id: string): Promise<CredentialRecord | undefined>;
  /** Credentials of one kind in a tenant (or every tenant when tenantId is undefined). */
  listCredentials(kind: string, tenantId?: string): Promise<CredentialRecord[]>;
  /** A commit or credit with its segments. */
  getCreditBalance(tenantId: string, id: string): Promise<CreditBalance | undefined>;
  /** A customer's commits and credits with id > afterId, in id order (archived included). */
  listCreditBalances(tenantId: string, customerId: string, afterId: string, limit: number): Promise<CreditBalance[]>;
  /** The stored ledger entries of a commit or credit, in write order. */
  listCreditEntries(tenantId: string, balanceId: string): Promise<CreditEntry[]>;
  /**
   * Customers (across tenants) owning an unarchived balance with a segment
   * that ended at or before `now`, has no closing entry yet and still holds
   * something (sum of its entries > 0): the expiration sweeper's work list.
   * Distinct, ordered by (tenant, customer), at most `limit`.
   */
  dueCreditClosings(now: bigint, limit: number): Promise<DueCustomer[]>;
}

/** A page of an account's journal, newest first. */
export interface EntryPageQuery {
  readonly tenantId: string;
  readonly accountId: string;
  readonly asset?: string | undefined;
  /** Exclusive upper bound; undefined starts at the newest entry. */
  readonly beforeSequence?: bigint | undefined;
  readonly limit: number;
}

/** The journal of an account after a sequence, oldest first. */
export interface EntryTailQuery {
  readonly tenantId: string;
  readonly accountId: string;
  readonly asset?: string | undefined;
  readonly afterSequence: bigint;
  readonly limit: number;
}

/**
 * Operations inside one atomic write. Reads here see the write's own changes.
 * A store may run several writes in one commit (group commit), but each write
 * is still all-or-nothing: when its function throws, none of its changes stay.
 */
export interface WriteTx {
  getAccount(tenantId: string, id: string): Promise<Account | undefined>;
  /**
   * Takes the accounts' write locks for the rest of the transaction, in the
   * given (sorted) order, so that concurrent writers cannot deadlock and every
   * account's journal grows in commit order.
   */
  lockAccounts(tenantId: string, ids: readonly string[]): Promise<void>;
  insertAccount(account: Account): Promise<void>;
  setAccountLock(tenantId: string, id: string, lockedAt: bigint | null): Promise<void>;
  getAsset(tenantId: string, code: string): Promise<Asset | undefined>;
  insertAsset(tenantId: string, asset: Asset, createdAt: bigint): Promise<void>;
  getBalance(tenantId: string, accountId: string, asset: string): Promise<BalanceRow | undefined>;
  putBalance(row: BalanceRow): Promise<void>;
  /** Appends entries, assigning increasing sequences in the given order. */
  appendEntries(entries: readonly NewEntry[]): Promise<Entry[]>;
  getTransfer(tenantId: string, id: string): Promise<Transfer | undefined>;
  insertTransfer(transfer: Transfer): Promise<void>;
  updateTransfer(transfer: Transfer): Promise<void>;
  getIdempotency(tenantId: string, key: string): Promise<IdempotencyRecord | undefined>;
  putIdempotency(record: IdempotencyRecord): Promise<void>;
  insertTenant(tenant: Tenant): Promise<void>;
  getTenant(tenantId: string): Promise<Tenant | undefined>;
  insertApiKey(key: ApiKeyRecord): Promise<void>;
  getApiKey(id: string): Promise<ApiKeyRecord | undefined>;
  revokeApiKey(id: string, revokedAt: bigint): Promise<void>;
  /** Stores `value` under `key` unless the key is set; returns the value in force. */
  initMeta(key: string, value: string): Promise<string>;
  getMeta(key: string): Promise<string | undefined>;
  insertCredential(c: CredentialRecord): Promise<void>;
  getCredential(kind: string, id: string): Promise<CredentialRecord | undefined>;
  revokeCredential(kind: string, id: string, revokedAt: bigint): Promise<void>;
  /**
   * Records a nonce; false when it was already recorded and has not expired.
   * Expired nonces are purged as a side effect.
   */
  claimNonce(scope: string, nonce: string, expiresAt: bigint, now: bigint): Promise<boolean>;
  getCreditBalance(tenantId: string, id: string): Promise<CreditBalance | undefined>;
  getCreditBalanceByUniquenessKey(tenantId: string, key: string): Promise<CreditBalance | undefined>;
  /** True when a segment id is taken in the tenant. */
  creditSegmentExists(tenantId: string, id: string): Promise<boolean>;
  /** Inserts a balance with its segments; the store assigns its ordinal (creation order). */
  insertCreditBalance(balance: Omit<CreditBalance, "ordinal">): Promise<CreditBalance>;
  /** Sets archived_at unless already set. */
  archiveCreditBalance(tenantId: string, id: string, archivedAt: bigint): Promise<void>;
  /** A customer's unarchived commits and credits, in creation order. */
  activeCreditBalances(tenantId: string, customerId: string): Promise<CreditBalance[]>;
  listCreditEntries(tenantId: string, balanceId: string): Promise<CreditEntry[]>;
  /** Appends ledger entries, assigning increasing sequences in the given order. */
  appendCreditEntries(entries: readonly NewCreditEntry[]): Promise<CreditEntry[]>;
  getCreditUsage(tenantId: string, usageId: string): Promise<UsageRecord | undefined>;
  putCreditUsage(record: UsageRecord): Promise<void>;
  /** The stored idempotency key of a manual ledger entry, or undefined. */
  getCreditManualKey(tenantId: string, key: string): Promise<CreditKeyRecord | undefined>;
  /** Records a manual entry's idempotency key, in the same write as the entry. */
  putCreditManualKey(record: CreditKeyRecord): Promise<void>;
}

/** What a write declares before it runs; see {@link Store.write}. */
export interface WriteOptions {
  /**
   * The accounts the write will lock (its `lockAccounts` call), when they are
   * known before it runs. A store that commits several writes together may
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

/** The persistence the domain needs. SQLite and PostgreSQL implement it. */
export interface Store extends StoreReader {
  /**
   * Runs `fn` atomically and resolves only after its changes are durably
   * committed. Rejects (and keeps nothing) when `fn` throws or the commit fails.
   */
  write<T>(fn: (tx: WriteTx) => Promise<T>, options?: WriteOptions): Promise<T>;
  close(): Promise<void>;
}
