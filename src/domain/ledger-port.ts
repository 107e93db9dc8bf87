import type { Asset } from "./asset.js";
import type { Account, BalanceRow, Entry, EntryView, IdempotencyRecord, NewEntry, Transfer } from "./model.js";
import type { CreditVerifyReader } from "./credits/credit-port.js";
import type { Transactional } from "./transactional.js";

/** An account with its balance in one asset (see LedgerReader.getAccountBalance). */
export interface AccountBalance {
  readonly account: Account;
  readonly balance: BalanceRow | undefined;
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

/**
 * A page of an account's POSTED entries in one asset, newest first, after
 * skipping the newest `skip` of them. A store answers it with one index seek
 * on the entries' posted ordinals, whatever `skip` is.
 */
export interface PostedEntryPageQuery {
  readonly tenantId: string;
  readonly accountId: string;
  readonly asset: string;
  /** How many of the newest POSTED entries to leave out: 0 to int64 max (past the end: an empty page). */
  readonly skip: bigint;
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
 * One write in a tenant's journal, as an export replays it: the credit-side
 * entry of a transfer's creation or settlement (its status, amount and
 * effective time), with what the transfer was asked for.
 */
export interface JournalWrite {
  readonly entry: Entry;
  readonly transfer: {
    readonly id: string;
    readonly idempotencyKey: string;
    readonly debitAccountId: string;
    readonly creditAccountId: string;
    readonly asset: string;
    /** The amount asked for (a hold's reservation), not what was posted. */
    readonly amount: bigint;
    readonly kind: string;
    readonly note: string;
    readonly metadata: Readonly<Record<string, string>>;
  };
}

/** The journal's sums for one (account, asset), as the store added them up. */
export interface JournalSum {
  readonly accountId: string;
  readonly asset: string;
  /** Sum of the amounts of posted entries. */
  readonly posted: bigint;
  /** Sum of the pending changes of credit entries. */
  readonly pendingIn: bigint;
  /** Sum of the pending changes of debit entries. */
  readonly pendingOut: bigint;
  readonly entries: bigint;
}

/** An entry whose stored posted_after is not the running sum of its (account, asset) journal up to it. */
export interface RunningSum {
  readonly accountId: string;
  readonly asset: string;
  readonly sequence: bigint;
  readonly postedAfter: bigint;
  readonly running: bigint;
}

/**
 * What a tenant's journal adds up to beside what its balance rows hold, read
 * in one snapshot. Raw sums: what counts as a discrepancy is decided once, in
 * the domain (`reconcile` in verify.ts). Sums are exact (they may fall
 * outside int64, which is itself a finding); a store that cannot add them
 * exactly says so with `overflow`.
 */
export interface JournalSums {
  readonly sums: readonly JournalSum[];
  readonly balances: readonly BalanceRow[];
  /**
   * Only the entries whose running sum differs from their posted_after: the
   * store filters them because the whole journal would not fit in memory.
   */
  readonly running: readonly RunningSum[];
  /** The store's own arithmetic overflowed int64 (SQLite's SUM raises). */
  readonly overflow: boolean;
}

/** The ledger's reads. Every method is scoped by tenant; a store never answers across tenants. */
export interface LedgerReader {
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
  /**
   * The POSTED entries of (account, asset), newest first, after the newest
   * `skip`: those whose posted ordinal (1, 2, 3 ... in sequence order) is at
   * most the account's posted count less `skip`.
   */
  postedEntriesPage(query: PostedEntryPageQuery): Promise<EntryView[]>;
  /** Entries of an account with sequence > afterSequence, oldest first. */
  entriesAfter(query: EntryTailQuery): Promise<EntryView[]>;
  /**
   * The tenant's journal writes with sequence > afterSequence, oldest first:
   * one per transfer creation or settlement (see {@link JournalWrite}).
   */
  journalWrites(tenantId: string, afterSequence: bigint, limit: number): Promise<JournalWrite[]>;
  /** The highest committed sequence of the whole journal (0n when empty): where an export stops. */
  journalHead(): Promise<bigint>;
  /** The last entry of (account, asset) with sequence <= atSequence. */
  lastEntryAtOrBefore(tenantId: string, accountId: string, asset: string, atSequence: bigint): Promise<Entry | undefined>;
  /**
   * The last entry of (account, asset) effective at or before `at` (latest
   * effective time, then latest sequence): one index seek, whatever the
   * journal's length.
   */
  lastEntryEffectiveBy(tenantId: string, accountId: string, asset: string, at: bigint): Promise<Entry | undefined>;
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
  /** The tenant's journal sums and balance rows, one snapshot (for verify). */
  journalSums(tenantId: string): Promise<JournalSums>;
}

/** The ledger's operations inside one atomic write. Reads here see the write's own changes. */
export interface LedgerTx {
  getAccount(tenantId: string, id: string): Promise<Account | undefined>;
  /**
   * Takes the accounts' row locks for the rest of the transaction, in the
   * given (sorted) order, so that concurrent writers cannot deadlock and every
   * account's journal grows in commit order. (Not the administrative freeze:
   * that is {@link LedgerTx.setAccountFrozen}.)
   */
  lockAccounts(tenantId: string, ids: readonly string[]): Promise<void>;
  insertAccount(account: Account): Promise<void>;
  /** Freezes an account (frozenAt set) or lifts its freeze (null), at an effective time that becomes the account's effectiveAt. */
  setAccountFrozen(tenantId: string, id: string, frozenAt: bigint | null, effectiveAt: bigint): Promise<void>;
  getAsset(tenantId: string, code: string): Promise<Asset | undefined>;
  insertAsset(tenantId: string, asset: Asset, createdAt: bigint): Promise<void>;
  getBalance(tenantId: string, accountId: string, asset: string): Promise<BalanceRow | undefined>;
  putBalance(row: BalanceRow): Promise<void>;
  /** The latest effective time of any of the account's balance rows (their updatedAt), 0n when it has none. */
  latestBalanceTime(tenantId: string, accountId: string): Promise<bigint>;
  /**
   * Appends entries, assigning increasing sequences in the given order, and
   * to each POSTED entry the next posted ordinal of its (account, asset): the
   * caller holds the account's lock, so the count it continues is exact.
   */
  appendEntries(entries: readonly NewEntry[]): Promise<Entry[]>;
  getTransfer(tenantId: string, id: string): Promise<Transfer | undefined>;
  insertTransfer(transfer: Transfer): Promise<void>;
  updateTransfer(transfer: Transfer): Promise<void>;
  getIdempotency(tenantId: string, key: string): Promise<IdempotencyRecord | undefined>;
  putIdempotency(record: IdempotencyRecord): Promise<void>;
}

/**
 * What the {@link Ledger} needs of a store: the ledger's reads and writes, and
 * the credit reads its verify adds.
 */
export type LedgerPort = Transactional<LedgerReader & CreditVerifyReader, LedgerTx>;
