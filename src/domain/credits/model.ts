/**
 * Commits and credits: balances with an access schedule of segments, drawn
 * down by usage. Times are epoch microseconds and amounts int64 counts of the
 * credit type's asset's smallest unit, both bigint, so nothing is ever rounded.
 */

/** PREPAID and POSTPAID are commits; CREDIT is a credit. */
export type BalanceKind = "PREPAID" | "POSTPAID" | "CREDIT";

/** Metronome's ledger entry type names, exactly as its API spells them. */
export const ENTRY_TYPES = [
  "PREPAID_COMMIT_SEGMENT_START",
  "PREPAID_COMMIT_AUTOMATED_INVOICE_DEDUCTION",
  "PREPAID_COMMIT_ROLLOVER",
  "PREPAID_COMMIT_EXPIRATION",
  "PREPAID_COMMIT_CANCELED",
  "PREPAID_COMMIT_CREDITED",
  "PREPAID_COMMIT_SEAT_BASED_ADJUSTMENT",
  "PREPAID_COMMIT_MANUAL",
  "POSTPAID_COMMIT_INITIAL_BALANCE",
  "POSTPAID_COMMIT_AUTOMATED_INVOICE_DEDUCTION",
  "POSTPAID_COMMIT_ROLLOVER",
  "POSTPAID_COMMIT_TRUEUP",
  "POSTPAID_COMMIT_MANUAL",
  "POSTPAID_COMMIT_EXPIRATION",
  "CREDIT_SEGMENT_START",
  "CREDIT_AUTOMATED_INVOICE_DEDUCTION",
  "CREDIT_EXPIRATION",
  "CREDIT_CANCELED",
  "CREDIT_CREDITED",
  "CREDIT_MANUAL",
  "CREDIT_SEAT_BASED_ADJUSTMENT",
  "CREDIT_ROLLOVER",
] as const;

/** One of {@link ENTRY_TYPES}. */
export type CreditEntryType = (typeof ENTRY_TYPES)[number];

/** One segment of an access schedule: active while startingAt <= t < endingBefore. */
export interface Segment {
  readonly id: string;
  readonly amount: bigint;
  readonly startingAt: bigint;
  readonly endingBefore: bigint;
}

/** A commit or credit. Only `archivedAt` ever changes. */
export interface CreditBalance {
  readonly tenantId: string;
  readonly id: string;
  readonly kind: BalanceKind;
  /** The account of the tenant the balance belongs to. */
  readonly customerId: string;
  /** Null for a customer-level balance. */
  readonly contractId: string | null;
  readonly name: string;
  readonly description: string;
  /** Lower burns first. */
  readonly priority: bigint;
  readonly productId: string;
  readonly productName: string;
  /** The asset code of the credit type. */
  readonly asset: string;
  readonly applicableProductIds: readonly string[];
  readonly applicableProductTags: readonly string[];
  readonly customFields: Readonly<Record<string, string>>;
  readonly uniquenessKey: string | null;
  readonly segments: readonly Segment[];
  readonly archivedAt: bigint | null;
  readonly createdAt: bigint;
  /** Creation order in the tenant (assigned by the store): the listing order and the last draw-down tie-break. */
  readonly ordinal: bigint;
}

/** A ledger entry before the store has given it a sequence. */
export interface NewCreditEntry {
  readonly tenantId: string;
  readonly balanceId: string;
  readonly segmentId: string;
  readonly type: CreditEntryType;
  readonly amount: bigint;
  /** When the change takes effect (not when it was written). */
  readonly timestamp: bigint;
  readonly invoiceId: string | null;
  readonly reason: string | null;
  readonly usageId: string | null;
  readonly createdAt: bigint;
}

/** A stored ledger entry: append-only, never edited. */
export interface CreditEntry extends NewCreditEntry {
  /**
   * The store's write order. 0n for a closing entry derived on read for a
   * segment that ended but whose closing entry is not materialised yet.
   */
  readonly sequence: bigint;
}

/** What one segment covered of a usage. */
export interface Draw {
  readonly balanceId: string;
  readonly segmentId: string;
  readonly amount: bigint;
}

/** The outcome of a usage: the draws in order, and what nothing covered. */
export interface UsageResult {
  readonly draws: readonly Draw[];
  readonly uncovered: bigint;
}

/** The stored outcome of a usage, kept for idempotent replays. */
export interface UsageRecord {
  readonly tenantId: string;
  readonly usageId: string;
  readonly requestHash: string;
  readonly result: string;
  readonly createdAt: bigint;
}

/**
 * The entry types that close a segment: what was left when it ended
 * (expiration, or the true-up of a postpaid commit), when its balance was
 * archived (canceled) or when it was rolled over into a new balance
 * (*_ROLLOVER). A segment has at most one. The stores' sweeper queries use
 * this set; migration 4's unique index lists the first six only (it predates
 * rollovers), so for a *_ROLLOVER the domain alone (under the customer's lock:
 * a rolled-over segment holds nothing and is skipped by every closing path)
 * keeps it to one until a migration adds them to the index.
 */
export const CLOSING_TYPES: ReadonlySet<CreditEntryType> = new Set<CreditEntryType>([
  "PREPAID_COMMIT_EXPIRATION",
  "POSTPAID_COMMIT_EXPIRATION",
  "CREDIT_EXPIRATION",
  "POSTPAID_COMMIT_TRUEUP",
  "PREPAID_COMMIT_CANCELED",
  "CREDIT_CANCELED",
  "PREPAID_COMMIT_ROLLOVER",
  "POSTPAID_COMMIT_ROLLOVER",
  "CREDIT_ROLLOVER",
]);

/**
 * A stored idempotency key, kept for replays: of a manual ledger entry, a
 * rollover or a credit-back (the latter two under their own key namespace, see
 * credits.ts).
 */
export interface CreditKeyRecord {
  readonly tenantId: string;
  readonly key: string;
  readonly requestHash: string;
  /** The entry first written, encoded by the domain (opaque to the store). */
  readonly result: string;
  readonly createdAt: bigint;
}

/** A customer with at least one segment due to be closed (see Store.dueCreditClosings). */
export interface DueCustomer {
  readonly tenantId: string;
  readonly customerId: string;
}

/** "USD (cents)" is Metronome's name of its default credit type; other assets go by their code. */
export function creditTypeName(asset: string): string {
  return asset === "USD" ? "USD (cents)" : asset;
}
