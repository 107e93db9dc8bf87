import type Database from "better-sqlite3";
import { creditBalance, creditBalanceParams, creditEntry, creditEntryParams, creditKeyRecord, segment, usageRecord } from "../credit-rows.js";
import { CLOSING_TYPES } from "../../domain/credits/model.js";
import type {
  CreditBalance,
  CreditEntry,
  CreditKeyRecord,
  DueCustomer,
  NewCreditEntry,
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
  readonly latestCreated;
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
    // Creation order, a keyset seek on migration 9's (tenant_id, customer_id, ordinal) index.
    this.listByCustomer = db.prepare("SELECT * FROM credit_balances WHERE tenant_id = ? AND customer_id = ? AND ordinal > ? ORDER BY ordinal LIMIT ?");
    this.allOfCustomer = db.prepare("SELECT * FROM credit_balances WHERE tenant_id = ? AND customer_id = ? AND archived_at IS NULL ORDER BY ordinal");
    // The customer's rows through migration 9's (tenant_id, customer_id, ordinal) index.
    this.latestCreated = db.prepare("SELECT max(created_at) AS at FROM credit_balances WHERE tenant_id = ? AND customer_id = ?");
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
    // The sweeper's work list: segments ended by the cutoff, not closed, still holding something.
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
    return creditBalance(x, (this.segmentsOf.all(x.tenant_id, x.id) as Record<string, unknown>[]).map(segment));
  }

  /** The stored entries of a balance, in write order. */
  entries(tenantId: string, balanceId: string): CreditEntry[] {
    return (this.entriesOf.all(tenantId, balanceId) as Record<string, unknown>[]).map(creditEntry);
  }

  /** Inserts a balance and its segments; returns it with its ordinal. */
  insert(b: Omit<CreditBalance, "ordinal">): CreditBalance {
    const ordinal = (this.nextOrdinal.get(b.tenantId) as { n: bigint }).n;
    this.insertBalance.run(...creditBalanceParams(b, ordinal));
    b.segments.forEach((s, i) => {
      this.insertSegment.run(b.tenantId, s.id, b.id, BigInt(i), s.amount, s.startingAt, s.endingBefore);
    });
    return { ...b, ordinal };
  }

  /** Appends entries, assigning increasing sequences in order. */
  append(list: readonly NewCreditEntry[]): CreditEntry[] {
    return list.map((e) => {
      const info = this.insertEntry.run(...creditEntryParams(e));
      return { ...e, sequence: BigInt(info.lastInsertRowid) };
    });
  }

  /** A stored usage outcome, or undefined. */
  usage(tenantId: string, usageId: string): UsageRecord | undefined {
    return usageRecord(this.getUsage.get(tenantId, usageId) as Record<string, unknown> | undefined);
  }

  /** The sweeper's work list (Store.dueCreditClosings). */
  due(cutoff: bigint, limit: number): DueCustomer[] {
    return (this.dueClosings.all(cutoff, BigInt(limit)) as { tenant_id: string; customer_id: string }[]).map((x) => ({
      tenantId: x.tenant_id,
      customerId: x.customer_id,
    }));
  }

  /** A stored manual-entry idempotency key, or undefined. */
  manualKey(tenantId: string, key: string): CreditKeyRecord | undefined {
    return creditKeyRecord(this.getManualKey.get(tenantId, key) as Record<string, unknown> | undefined);
  }
}
