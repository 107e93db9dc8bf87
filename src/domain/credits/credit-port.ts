import type { LedgerReader, LedgerTx } from "../ledger-port.js";
import type { Transactional } from "../transactional.js";
import type { CreditBalance, CreditEntry, CreditKeyRecord, DueCustomer, NewCreditEntry, UsageRecord } from "./model.js";

/** Reads of commits and credits (Metronome's balances). Scoped by tenant except the sweeper's work list. */
export interface CreditReader {
  /** A commit or credit with its segments. */
  getCreditBalance(tenantId: string, id: string): Promise<CreditBalance | undefined>;
  /**
   * A customer's commits and credits created after the one with ordinal
   * `afterOrdinal` (0n: from the first), in creation order (ordinal), archived
   * included: a keyset seek on (tenant, customer, ordinal).
   */
  listCreditBalances(tenantId: string, customerId: string, afterOrdinal: bigint, limit: number): Promise<CreditBalance[]>;
  /** The stored ledger entries of a commit or credit, in write order. */
  listCreditEntries(tenantId: string, balanceId: string): Promise<CreditEntry[]>;
  /**
   * Customers (across tenants) owning an unarchived balance with a segment
   * that ended at or before `cutoff` (the sweep's now less the usage window),
   * has no closing entry yet and still holds
   * something (sum of its entries > 0): the expiration sweeper's work list.
   * Distinct, ordered by (tenant, customer), at most `limit`.
   */
  dueCreditClosings(cutoff: bigint, limit: number): Promise<DueCustomer[]>;
}

/** Credit operations inside one atomic write. */
export interface CreditTx {
  getCreditBalance(tenantId: string, id: string): Promise<CreditBalance | undefined>;
  getCreditBalanceByUniquenessKey(tenantId: string, key: string): Promise<CreditBalance | undefined>;
  /** True when a segment id is taken in the tenant. */
  creditSegmentExists(tenantId: string, id: string): Promise<boolean>;
  /** Inserts a balance with its segments; the store assigns its ordinal (creation order). */
  insertCreditBalance(balance: Omit<CreditBalance, "ordinal">): Promise<CreditBalance>;
  /** Sets archived_at unless already set. */
  archiveCreditBalance(tenantId: string, id: string, archivedAt: bigint): Promise<void>;
  /**
   * The latest created_at of a customer's commits and credits, archived
   * included; undefined when it has none. What a backdated creation may not
   * go before (effective-time.ts).
   */
  latestCreditCreatedAt(tenantId: string, customerId: string): Promise<bigint | undefined>;
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

/** What the credit checks of verify read: every customer's balances and their entries. */
export type CreditVerifyReader = Pick<LedgerReader, "listAccounts"> & Pick<CreditReader, "listCreditBalances" | "listCreditEntries">;

/**
 * What {@link Credits} needs of a store: credit reads and writes, the
 * customer's account (its row lock serializes a customer's draw-downs) and
 * the credit types' assets.
 */
export type CreditPort = Transactional<CreditReader & Pick<LedgerReader, "getAccount" | "listAccounts" | "getAsset">, CreditWrite>;

/** The transaction half of {@link CreditPort}. */
export type CreditWrite = CreditTx & Pick<LedgerTx, "getAccount" | "lockAccounts" | "getAsset" | "insertAsset">;
