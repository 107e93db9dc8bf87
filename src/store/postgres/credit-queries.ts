import { CLOSING_TYPES } from "../../domain/credits/model.js";
import type {
  CreditBalance,
  CreditEntry,
  CreditKeyRecord,
  DueCustomer,
  NewCreditEntry,
  Segment,
  UsageRecord,
} from "../../domain/credits/model.js";
import type { Db, Row, Sql } from "./pg-queries.js";
import { creditBalance, creditBalanceParams, creditEntry, creditEntryParams, creditKeyRecord, segment, usageRecord } from "../credit-rows.js";
import { all, one, run } from "./pg-queries.js";

/** The closing types as an SQL list; the same list as migration 4's unique index. */
const CLOSING_SQL = [...CLOSING_TYPES].map((t) => `'${t}'`).join(", ");

const sql = (name: string, text: string): Sql => ({ name: `tally_credit_${name}`, text });

/** The statements of commits and credits, the counterpart of the SQLite store's. */
const C = {
  getBalance: sql("get_balance", "SELECT * FROM credit_balances WHERE tenant_id = $1 AND id = $2"),
  getByUniquenessKey: sql("get_by_uniqueness_key", "SELECT * FROM credit_balances WHERE tenant_id = $1 AND uniqueness_key = $2"),
  listByCustomer: sql(
    "list_by_customer",
    // Creation order, a keyset seek on migration 9's (tenant_id, customer_id, ordinal) index.
    "SELECT * FROM credit_balances WHERE tenant_id = $1 AND customer_id = $2 AND ordinal > $3 ORDER BY ordinal LIMIT $4",
  ),
  allOfCustomer: sql(
    "all_of_customer",
    "SELECT * FROM credit_balances WHERE tenant_id = $1 AND customer_id = $2 AND archived_at IS NULL ORDER BY ordinal",
  ),
  // The customer's rows through migration 9's (tenant_id, customer_id, ordinal) index.
  latestCreated: sql("latest_created", "SELECT max(created_at) AS at FROM credit_balances WHERE tenant_id = $1 AND customer_id = $2"),
  segmentsOf: sql(
    "segments_of",
    "SELECT * FROM credit_segments WHERE tenant_id = $1 AND balance_id = ANY($2::text[]) ORDER BY balance_id, position",
  ),
  segmentExists: sql("segment_exists", "SELECT 1 AS x FROM credit_segments WHERE tenant_id = $1 AND id = $2"),
  entriesOf: sql("entries_of", "SELECT * FROM credit_entries WHERE tenant_id = $1 AND balance_id = $2 ORDER BY sequence"),
  nextOrdinal: sql("next_ordinal", "SELECT coalesce(max(ordinal), 0) + 1 AS n FROM credit_balances WHERE tenant_id = $1"),
  insertBalance: sql(
    "insert_balance",
    `INSERT INTO credit_balances (tenant_id, id, ordinal, kind, customer_id, contract_id, name, description, priority, product_id,
       product_name, asset, applicable_product_ids, applicable_product_tags, custom_fields, uniqueness_key, archived_at, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
  ),
  insertSegment: sql(
    "insert_segment",
    "INSERT INTO credit_segments (tenant_id, id, balance_id, position, amount, starting_at, ending_before) VALUES ($1, $2, $3, $4, $5, $6, $7)",
  ),
  archive: sql("archive", "UPDATE credit_balances SET archived_at = $1 WHERE tenant_id = $2 AND id = $3 AND archived_at IS NULL"),
  insertEntry: sql(
    "insert_entry",
    `INSERT INTO credit_entries (tenant_id, balance_id, segment_id, type, amount, timestamp, invoice_id, reason, usage_id, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING sequence`,
  ),
  getUsage: sql("get_usage", "SELECT * FROM credit_usages WHERE tenant_id = $1 AND usage_id = $2"),
  putUsage: sql("put_usage", "INSERT INTO credit_usages (tenant_id, usage_id, request_hash, result, created_at) VALUES ($1, $2, $3, $4, $5)"),
  // The sweeper's work list: segments ended by the cutoff, not closed, still holding something.
  dueClosings: sql(
    "due_closings",
    `SELECT DISTINCT b.tenant_id, b.customer_id
     FROM credit_segments s
     JOIN credit_balances b ON b.tenant_id = s.tenant_id AND b.id = s.balance_id
     WHERE s.ending_before <= $1
       AND b.archived_at IS NULL
       AND NOT EXISTS (
         SELECT 1 FROM credit_entries c
         WHERE c.tenant_id = s.tenant_id AND c.segment_id = s.id AND c.type IN (${CLOSING_SQL}))
       AND (SELECT coalesce(sum(e.amount), 0) FROM credit_entries e
            WHERE e.tenant_id = s.tenant_id AND e.segment_id = s.id) > 0
     ORDER BY b.tenant_id, b.customer_id
     LIMIT $2`,
  ),
  getManualKey: sql("get_manual_key", "SELECT * FROM credit_manual_keys WHERE tenant_id = $1 AND key = $2"),
  putManualKey: sql(
    "put_manual_key",
    "INSERT INTO credit_manual_keys (tenant_id, key, request_hash, result, created_at) VALUES ($1, $2, $3, $4, $5)",
  ),
} as const;

/** Balances with their segments, fetched in one query for all of them. */
async function withSegments(db: Db, tenantId: string, list: Row[]): Promise<CreditBalance[]> {
  if (list.length === 0) return [];
  const ids = list.map((x) => x.id as string);
  const byBalance = new Map<string, Segment[]>();
  for (const s of await all(db, C.segmentsOf, [tenantId, ids])) {
    const segs = byBalance.get(s.balance_id as string) ?? [];
    segs.push(segment(s));
    byBalance.set(s.balance_id as string, segs);
  }
  return list.map((x) => creditBalance(x, byBalance.get(x.id as string) ?? []));
}

async function single(db: Db, row: Row | undefined): Promise<CreditBalance | undefined> {
  if (row === undefined) return undefined;
  return (await withSegments(db, row.tenant_id as string, [row]))[0];
}

/** A commit or credit with its segments, or undefined. */
export async function getCreditBalance(db: Db, tenantId: string, id: string): Promise<CreditBalance | undefined> {
  return single(db, await one(db, C.getBalance, [tenantId, id]));
}

/** The balance holding a uniqueness key, or undefined. */
export async function getCreditBalanceByUniquenessKey(db: Db, tenantId: string, key: string): Promise<CreditBalance | undefined> {
  return single(db, await one(db, C.getByUniquenessKey, [tenantId, key]));
}

/** A customer's balances created after the one with ordinal afterOrdinal, in creation order (archived included). */
export async function listCreditBalances(db: Db, tenantId: string, customerId: string, afterOrdinal: bigint, limit: number): Promise<CreditBalance[]> {
  return withSegments(db, tenantId, await all(db, C.listByCustomer, [tenantId, customerId, afterOrdinal, limit]));
}

/** The latest created_at of a customer's balances (archived included), or undefined when it has none. */
export async function latestCreditCreatedAt(db: Db, tenantId: string, customerId: string): Promise<bigint | undefined> {
  return ((await one(db, C.latestCreated, [tenantId, customerId]))!.at as bigint | null) ?? undefined;
}

/** A customer's unarchived balances, in creation order. */
export async function activeCreditBalances(db: Db, tenantId: string, customerId: string): Promise<CreditBalance[]> {
  return withSegments(db, tenantId, await all(db, C.allOfCustomer, [tenantId, customerId]));
}

/** True when a segment id is taken in the tenant. */
export async function creditSegmentExists(db: Db, tenantId: string, id: string): Promise<boolean> {
  return (await one(db, C.segmentExists, [tenantId, id])) !== undefined;
}

/** The stored entries of a balance, in write order. */
export async function listCreditEntries(db: Db, tenantId: string, balanceId: string): Promise<CreditEntry[]> {
  return (await all(db, C.entriesOf, [tenantId, balanceId])).map(creditEntry);
}

/**
 * Inserts a balance and its segments; returns it with its ordinal. Two
 * concurrent inserts in a tenant may pick the same max+1: the unique index on
 * (tenant_id, ordinal) makes the second a unique violation, and the store
 * re-runs that write, which then picks the next ordinal.
 */
export async function insertCreditBalance(db: Db, b: Omit<CreditBalance, "ordinal">): Promise<CreditBalance> {
  const ordinal = (await one(db, C.nextOrdinal, [b.tenantId]))!.n as bigint;
  await run(db, C.insertBalance, creditBalanceParams(b, ordinal));
  for (const [i, s] of b.segments.entries()) {
    await run(db, C.insertSegment, [b.tenantId, s.id, b.id, BigInt(i), s.amount, s.startingAt, s.endingBefore]);
  }
  return { ...b, ordinal };
}

/** Sets archived_at unless already set. */
export async function archiveCreditBalance(db: Db, tenantId: string, id: string, archivedAt: bigint): Promise<void> {
  await run(db, C.archive, [archivedAt, tenantId, id]);
}

/** Appends entries one row at a time, so sequences increase in the given order. */
export async function appendCreditEntries(db: Db, list: readonly NewCreditEntry[]): Promise<CreditEntry[]> {
  const out: CreditEntry[] = [];
  for (const e of list) {
    const row = await one(db, C.insertEntry, creditEntryParams(e));
    out.push({ ...e, sequence: row!.sequence as bigint });
  }
  return out;
}

/** A stored usage outcome, or undefined. */
export async function getCreditUsage(db: Db, tenantId: string, usageId: string): Promise<UsageRecord | undefined> {
  return usageRecord(await one(db, C.getUsage, [tenantId, usageId]));
}

/** Records a usage outcome. */
export async function putCreditUsage(db: Db, r: UsageRecord): Promise<void> {
  await run(db, C.putUsage, [r.tenantId, r.usageId, r.requestHash, r.result, r.createdAt]);
}

/** Customers with a segment due to be closed (Store.dueCreditClosings). */
export async function dueCreditClosings(db: Db, cutoff: bigint, limit: number): Promise<DueCustomer[]> {
  return (await all(db, C.dueClosings, [cutoff, limit])).map((x) => ({ tenantId: x.tenant_id as string, customerId: x.customer_id as string }));
}

/** A stored manual-entry idempotency key, or undefined. */
export async function getCreditManualKey(db: Db, tenantId: string, key: string): Promise<CreditKeyRecord | undefined> {
  return creditKeyRecord(await one(db, C.getManualKey, [tenantId, key]));
}

/** Records a manual entry's idempotency key. */
export async function putCreditManualKey(db: Db, r: CreditKeyRecord): Promise<void> {
  await run(db, C.putManualKey, [r.tenantId, r.key, r.requestHash, r.result, r.createdAt]);
}
