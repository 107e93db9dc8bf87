import type {
  BalanceKind,
  CreditBalance,
  CreditEntry,
  CreditEntryType,
  CreditKeyRecord,
  NewCreditEntry,
  Segment,
  UsageRecord,
} from "../domain/credits/model.js";

/**
 * Row mappers of commits and credits, shared by the SQL stores: both read
 * int64 columns as bigint and keep lists and maps as JSON text.
 */

type Row = Record<string, unknown>;

/** A credit_segments row. */
export function segment(s: Row): Segment {
  return { id: s.id as string, amount: s.amount as bigint, startingAt: s.starting_at as bigint, endingBefore: s.ending_before as bigint };
}

/** A credit_balances row with its segments. */
export function creditBalance(x: Row, segments: Segment[]): CreditBalance {
  return {
    tenantId: x.tenant_id as string,
    id: x.id as string,
    kind: x.kind as BalanceKind,
    customerId: x.customer_id as string,
    contractId: (x.contract_id as string | null) ?? null,
    name: x.name as string,
    description: x.description as string,
    priority: x.priority as bigint,
    productId: x.product_id as string,
    productName: x.product_name as string,
    asset: x.asset as string,
    applicableProductIds: JSON.parse(x.applicable_product_ids as string) as string[],
    applicableProductTags: JSON.parse(x.applicable_product_tags as string) as string[],
    customFields: JSON.parse(x.custom_fields as string) as Record<string, string>,
    uniquenessKey: (x.uniqueness_key as string | null) ?? null,
    segments,
    archivedAt: (x.archived_at as bigint | null) ?? null,
    createdAt: x.created_at as bigint,
    ordinal: x.ordinal as bigint,
  };
}

/** The credit_balances column values of a balance, in the INSERT's column order. */
export function creditBalanceParams(b: Omit<CreditBalance, "ordinal">, ordinal: bigint): unknown[] {
  return [
    b.tenantId,
    b.id,
    ordinal,
    b.kind,
    b.customerId,
    b.contractId,
    b.name,
    b.description,
    b.priority,
    b.productId,
    b.productName,
    b.asset,
    JSON.stringify(b.applicableProductIds),
    JSON.stringify(b.applicableProductTags),
    JSON.stringify(b.customFields),
    b.uniquenessKey,
    b.archivedAt,
    b.createdAt,
  ];
}

/** A credit_entries row. */
export function creditEntry(x: Row): CreditEntry {
  return {
    sequence: x.sequence as bigint,
    tenantId: x.tenant_id as string,
    balanceId: x.balance_id as string,
    segmentId: x.segment_id as string,
    type: x.type as CreditEntryType,
    amount: x.amount as bigint,
    timestamp: x.timestamp as bigint,
    invoiceId: (x.invoice_id as string | null) ?? null,
    reason: (x.reason as string | null) ?? null,
    usageId: (x.usage_id as string | null) ?? null,
    createdAt: x.created_at as bigint,
  };
}

/** The credit_entries column values of an entry, in the INSERT's column order. */
export function creditEntryParams(e: NewCreditEntry): unknown[] {
  return [e.tenantId, e.balanceId, e.segmentId, e.type, e.amount, e.timestamp, e.invoiceId, e.reason, e.usageId, e.createdAt];
}

/** A credit_usages row, or undefined. */
export function usageRecord(x: Row | undefined): UsageRecord | undefined {
  if (!x) return undefined;
  return {
    tenantId: x.tenant_id as string,
    usageId: x.usage_id as string,
    requestHash: x.request_hash as string,
    result: x.result as string,
    createdAt: x.created_at as bigint,
  };
}

/** A credit_manual_keys row, or undefined. */
export function creditKeyRecord(x: Row | undefined): CreditKeyRecord | undefined {
  if (!x) return undefined;
  return {
    tenantId: x.tenant_id as string,
    key: x.key as string,
    requestHash: x.request_hash as string,
    result: x.result as string,
    createdAt: x.created_at as bigint,
  };
}

/**
 * Migration 9, the same SQL on both stores: balances are listed in creation
 * order (ordinal, assigned at insert) with keyset cursors over it, and this
 * index makes each page a seek. It serves every other lookup by customer too
 * (the draw-down's unarchived balances, in ordinal order), so the id-ordered
 * index it replaces has no reader left.
 */
export const CREDIT_CREATION_ORDER_MIGRATION = {
  version: 9,
  name: "credit balances listed in creation order",
  sql: `
CREATE INDEX credit_balances_by_customer_ordinal ON credit_balances (tenant_id, customer_id, ordinal);
DROP INDEX credit_balances_by_customer;
`,
} as const;
