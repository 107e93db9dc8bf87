import type Database from "better-sqlite3";
import { CLOSING_TYPES } from "../../domain/credits/model.js";
import type {
  BalanceKind,
  CreditBalance,
  CreditEntry,
  CreditEntryType,
  CreditKeyRecord,
  DueCustomer,
  NewCreditEntry,
  Segment,
  UsageRecord,
} from "../../domain/credits/model.js";

/** The closing types as an SQL list; the same list as migration 4's unique index. */
const CLOSING_SQL = [...CLOSING_TYPES].map((t) => `'${t}'`).join(", ");

/** The statements of commits and credits, prepared once per connection. */
export class CreditStatements {
  readonly getBalance;
  readonly getByUniquenessKey;
  readonly listByCustomer;
  readonly allOfCustomer;
  readonly segmentsOf;
  readonly segmentExists;
  readonly entriesOf;
  readonly nextOrdinal;
  readonly insertBalance;
  readonly insertSegment;
  readonly archive;
  readonly insertEntry;
  readonly getUsage;
  readonly putUsage;
  readonly dueClosings;
  readonly getManualKey;
  readonly putManualKey;

  constructor(db: Database.Database) {
    const ro = db.readonly;
    // Write statements cannot be prepared on a read-only connection.
    const w = (sql: string) => (ro ? (undefined as unknown as Database.Statement) : db.prepare(sql));
    this.getBalance = db.prepare("SELECT * FROM credit_balances WHERE tenant_id = ? AND id = ?");
    this.getByUniquenessKey = db.prepare("SELECT * FROM credit_balances WHERE tenant_id = ? AND uniqueness_key = ?");
    this.listByCustomer = db.prepare("SELECT * FROM credit_balances WHERE tenant_id = ? AND customer_id = ? AND id > ? ORDER BY id LIMIT ?");
    this.allOfCustomer = db.prepare("SELECT * FROM credit_balances WHERE tenant_id = ? AND customer_id = ? AND archived_at IS NULL ORDER BY ordinal");
    this.segmentsOf = db.prepare("SELECT * FROM credit_segments WHERE tenant_id = ? AND balance_id = ? ORDER BY position");
    this.segmentExists = db.prepare("SELECT 1 AS x FROM credit_segments WHERE tenant_id = ? AND id = ?");
    this.entriesOf = db.prepare("SELECT * FROM credit_entries WHERE tenant_id = ? AND balance_id = ? ORDER BY sequence");
    this.nextOrdinal = db.prepare("SELECT coalesce(max(ordinal), 0) + 1 AS n FROM credit_balances WHERE tenant_id = ?");
    this.insertBalance = w(
      `INSERT INTO credit_balances (tenant_id, id, ordinal, kind, customer_id, contract_id, name, description, priority, product_id,
         product_name, asset, applicable_product_ids, applicable_product_tags, custom_fields, uniqueness_key, archived_at, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.insertSegment = w(
      "INSERT INTO credit_segments (tenant_id, id, balance_id, position, amount, starting_at, ending_before) VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    this.archive = w("UPDATE credit_balances SET archived_at = ? WHERE tenant_id = ? AND id = ? AND archived_at IS NULL");
    this.insertEntry = w(
      `INSERT INTO credit_entries (tenant_id, balance_id, segment_id, type, amount, timestamp, invoice_id, reason, usage_id, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.getUsage = db.prepare("SELECT * FROM credit_usages WHERE tenant_id = ? AND usage_id = ?");
    this.putUsage = w("INSERT INTO credit_usages (tenant_id, usage_id, request_hash, result, created_at) VALUES (?, ?, ?, ?, ?)");
    // The sweeper's work list: segments ended, not closed, still holding something.
    this.dueClosings = db.prepare(
      `SELECT DISTINCT b.tenant_id, b.customer_id
       FROM credit_segments s
       JOIN credit_balances b ON b.tenant_id = s.tenant_id AND b.id = s.balance_id
       WHERE s.ending_before <= ?
         AND b.archived_at IS NULL
         AND NOT EXISTS (
           SELECT 1 FROM credit_entries c
           WHERE c.tenant_id = s.tenant_id AND c.segment_id = s.id AND c.type IN (${CLOSING_SQL}))
         AND (SELECT coalesce(sum(e.amount), 0) FROM credit_entries e
              WHERE e.tenant_id = s.tenant_id AND e.segment_id = s.id) > 0
       ORDER BY b.tenant_id, b.customer_id
       LIMIT ?`,
    );
    this.getManualKey = db.prepare("SELECT * FROM credit_manual_keys WHERE tenant_id = ? AND key = ?");
    this.putManualKey = w("INSERT INTO credit_manual_keys (tenant_id, key, request_hash, result, created_at) VALUES (?, ?, ?, ?, ?)");
  }

  /** A balance with its segments, or undefined. */
  balance(row: unknown): CreditBalance | undefined {
    if (row === undefined) return undefined;
    const x = row as Record<string, unknown>;
    const segments = (this.segmentsOf.all(x.tenant_id, x.id) as Record<string, unknown>[]).map(
      (s): Segment => ({
        id: s.id as string,
        amount: s.amount as bigint,
        startingAt: s.starting_at as bigint,
        endingBefore: s.ending_before as bigint,
      }),
    );
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

  /** The stored entries of a balance, in write order. */
  entries(tenantId: string, balanceId: string): CreditEntry[] {
    return (this.entriesOf.all(tenantId, balanceId) as Record<string, unknown>[]).map((x) => ({
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
    }));
  }

  /** Inserts a balance and its segments; returns it with its ordinal. */
  insert(b: Omit<CreditBalance, "ordinal">): CreditBalance {
    const ordinal = (this.nextOrdinal.get(b.tenantId) as { n: bigint }).n;
    this.insertBalance.run(
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
    );
    b.segments.forEach((s, i) => {
      this.insertSegment.run(b.tenantId, s.id, b.id, BigInt(i), s.amount, s.startingAt, s.endingBefore);
    });
    return { ...b, ordinal };
  }

  /** Appends entries, assigning increasing sequences in order. */
  append(list: readonly NewCreditEntry[]): CreditEntry[] {
    return list.map((e) => {
      const info = this.insertEntry.run(
        e.tenantId,
        e.balanceId,
        e.segmentId,
        e.type,
        e.amount,
        e.timestamp,
        e.invoiceId,
        e.reason,
        e.usageId,
        e.createdAt,
      );
      return { ...e, sequence: BigInt(info.lastInsertRowid) };
    });
  }

  /** A stored usage outcome, or undefined. */
  usage(tenantId: string, usageId: string): UsageRecord | undefined {
    const x = this.getUsage.get(tenantId, usageId) as Record<string, unknown> | undefined;
    if (!x) return undefined;
    return {
      tenantId: x.tenant_id as string,
      usageId: x.usage_id as string,
      requestHash: x.request_hash as string,
      result: x.result as string,
      createdAt: x.created_at as bigint,
    };
  }

  /** The sweeper's work list (Store.dueCreditClosings). */
  due(now: bigint, limit: number): DueCustomer[] {
    return (this.dueClosings.all(now, BigInt(limit)) as { tenant_id: string; customer_id: string }[]).map((x) => ({
      tenantId: x.tenant_id,
      customerId: x.customer_id,
    }));
  }

  /** A stored manual-entry idempotency key, or undefined. */
  manualKey(tenantId: string, key: string): CreditKeyRecord | undefined {
    const x = this.getManualKey.get(tenantId, key) as Record<string, unknown> | undefined;
    if (!x) return undefined;
    return {
      tenantId: x.tenant_id as string,
      key: x.key as string,
      requestHash: x.request_hash as string,
      result: x.result as string,
      createdAt: x.created_at as bigint,
    };
  }
}
