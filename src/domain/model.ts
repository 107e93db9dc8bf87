/**
 * The ledger's records. Times are Unix epoch microseconds as bigint, so that
 * a timestamp survives a round trip through any store without losing precision.
 */

/** A tenant owns accounts, assets, keys and idempotency keys. */
export interface Tenant {
  readonly id: string;
  readonly name: string;
  readonly createdAt: bigint;
}

/** A holder of balances, one per asset. */
export interface Account {
  readonly tenantId: string;
  readonly id: string;
  /** How far below zero `available` may go. */
  readonly overdraftLimit: bigint;
  /** No lower bound at all (system accounts). */
  readonly overdraftUnlimited: boolean;
  readonly metadata: Readonly<Record<string, string>>;
  /**
   * When an administrator froze the account (the API's `locked_at`; the column
   * is `locked_at`); null while it is not frozen. Not a row lock.
   */
  readonly frozenAt: bigint | null;
  /** When the account was opened: its effective time (the commit time unless the opening was backdated). */
  readonly createdAt: bigint;
  /**
   * The effective time of the account's last account-level event (opening,
   * freeze, unfreeze). No later write touching the account may be effective
   * before it (see Ledger's effective-time rule).
   */
  readonly effectiveAt: bigint;
}

/** Where a transfer stands. */
export type TransferStatus = "PENDING" | "POSTED" | "VOIDED";

/** One double-entry movement. Only `status`, `postedAmount` and the "after" fields change, on post or void. */
export interface Transfer {
  readonly tenantId: string;
  readonly id: string;
  readonly idempotencyKey: string;
  readonly debitAccountId: string;
  readonly creditAccountId: string;
  readonly asset: string;
  readonly amount: bigint;
  readonly postedAmount: bigint;
  readonly kind: string;
  readonly note: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly status: TransferStatus;
  /** When it was committed. */
  readonly createdAt: bigint;
  /** When it was last committed to (posted or voided). */
  readonly updatedAt: bigint;
  /** When it took effect: the client's backdated `effective_at`, or its commit time. */
  readonly effectiveAt: bigint;
  readonly sequence: bigint;
  readonly debitBalanceAfter: bigint;
  readonly creditBalanceAfter: bigint;
}

/** The maintained position of one account in one asset. */
export interface BalanceRow {
  readonly tenantId: string;
  readonly accountId: string;
  readonly asset: string;
  readonly posted: bigint;
  readonly pendingIn: bigint;
  readonly pendingOut: bigint;
  /** Sequence of the last entry that changed it; 0n when none. */
  readonly sequence: bigint;
  /**
   * The effective time of the last entry that changed it (the account's
   * opening time when none). Never decreases: writes may not be effective
   * before it.
   */
  readonly updatedAt: bigint;
}

/** A balance as callers see it: the row plus derived and account-level fields. */
export interface Balance extends BalanceRow {
  readonly scale: number;
  readonly available: bigint;
  /** The account's freeze (Account.frozenAt). */
  readonly frozenAt: bigint | null;
}

/** Which side of a transfer an entry records. */
export type Direction = "debit" | "credit";

/** A journal entry before the store has given it a sequence. */
export interface NewEntry {
  readonly tenantId: string;
  readonly transferId: string;
  readonly accountId: string;
  readonly counterpartyId: string;
  readonly asset: string;
  readonly direction: Direction;
  /** PENDING reserves, POSTED moves, VOIDED releases. */
  readonly status: TransferStatus;
  /** Signed from this account's side (negative for a debit). Moves `posted` only when status is POSTED. */
  readonly amount: bigint;
  /** Signed change of this side's pending total (pending_out for a debit, pending_in for a credit). */
  readonly pendingChange: bigint;
  readonly postedAfter: bigint;
  readonly pendingInAfter: bigint;
  readonly pendingOutAfter: bigint;
  /** When it was committed. */
  readonly createdAt: bigint;
  /**
   * When it took effect. Within one (account, asset) it never decreases along
   * the sequence, so the post-entry balances are the balances at those times.
   */
  readonly effectiveAt: bigint;
}

/** A journal entry: append-only, never edited. */
export interface Entry extends NewEntry {
  readonly sequence: bigint;
}

/** A journal entry joined with its transfer's descriptive fields. */
export interface EntryView extends Entry {
  readonly kind: string;
  readonly note: string;
  readonly metadata: Readonly<Record<string, string>>;
}

/** What an API key may do. */
export type KeyScope = "tenant_admin" | "account_read";

/** A stored API key; the secret itself is never stored, only its hash. */
export interface ApiKeyRecord {
  readonly id: string;
  readonly tenantId: string;
  readonly scope: KeyScope;
  readonly accountId: string | null;
  readonly operator: boolean;
  readonly label: string;
  readonly secretHash: Uint8Array;
  readonly createdAt: bigint;
  readonly revokedAt: bigint | null;
}

/** The stored outcome of an idempotent request. */
export interface IdempotencyRecord {
  readonly tenantId: string;
  readonly key: string;
  readonly requestHash: string;
  /** The transfer the request created: a replay rebuilds its answer from that row. */
  readonly transferId: string;
  /**
   * What the first answer said and the transfer row may no longer say (a
   * pending transfer's row changes when it is posted or voided): the sequence
   * and the two balances after the transfer was created.
   */
  readonly sequence: bigint;
  readonly debitBalanceAfter: bigint;
  readonly creditBalanceAfter: bigint;
}

/** One difference found by verify. */
export interface Discrepancy {
  readonly accountId: string;
  readonly asset: string;
  /** The ledger's fields, then the credit checks (src/domain/credits/verify.ts), where accountId is the customer. */
  readonly field: "posted" | "pending_in" | "pending_out" | "balance_after" | "asset_sum" | "credit_segment_start" | "credit_running" | "credit_closing";
  readonly stored: bigint;
  readonly recomputed: bigint;
  readonly sequence: bigint;
}

/** What verify found. */
export interface VerifyReport {
  readonly ok: boolean;
  readonly accountsChecked: bigint;
  readonly balancesChecked: bigint;
  readonly entriesChecked: bigint;
  readonly discrepancies: readonly Discrepancy[];
}

/**
 * A credential of a REST dialect: what a vendor's client presents instead of a
 * Tally API key. `kind` names the dialect's credential type.
 */
export interface CredentialRecord {
  readonly kind: string;
  readonly id: string;
  readonly tenantId: string;
  /** The account the credential acts for, when bound to one. */
  readonly accountId: string | null;
  /** The organization it acts for, when bound to one (Frontier). */
  readonly orgId: string | null;
  /** SHA-256 of a secret the client presents. */
  readonly secretHash: Uint8Array | null;
  /** A key needed to verify what the client presents (a public key, an HMAC key). */
  readonly verifyKey: Uint8Array | null;
  readonly scopes: readonly string[];
  readonly label: string;
  readonly createdAt: bigint;
  readonly revokedAt: bigint | null;
}
