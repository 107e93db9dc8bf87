import type { BalanceKind, CreditBalance, CreditEntry, CreditEntryType, Draw, Segment, UsageResult } from "./model.js";

/**
 * The pure rules of commits and credits: which segments are active, what a
 * balance is at an instant, what expired, and the draw-down order. No I/O, so
 * the property test can run them against a reference model directly.
 */

/** What happened to a segment, before it is named for the balance's kind. */
export type EntryAction = "start" | "deduction" | "expiration" | "manual";

const PREFIX: Record<BalanceKind, string> = { PREPAID: "PREPAID_COMMIT", POSTPAID: "POSTPAID_COMMIT", CREDIT: "CREDIT" };

/** Metronome's type name for an action on a balance of a kind. */
export function entryTypeFor(kind: BalanceKind, action: EntryAction): CreditEntryType {
  // A postpaid commit is owed, not granted: Metronome opens it with INITIAL_BALANCE.
  if (action === "start") return (kind === "POSTPAID" ? "POSTPAID_COMMIT_INITIAL_BALANCE" : `${PREFIX[kind]}_SEGMENT_START`) as CreditEntryType;
  const suffix = action === "deduction" ? "AUTOMATED_INVOICE_DEDUCTION" : action === "expiration" ? "EXPIRATION" : "MANUAL";
  return `${PREFIX[kind]}_${suffix}` as CreditEntryType;
}

/** starting_at is inclusive, ending_before exclusive (Metronome's convention). */
export function isActive(s: Segment, t: bigint): boolean {
  return s.startingAt <= t && t < s.endingBefore;
}

function isManual(e: CreditEntry): boolean {
  return e.type.endsWith("_MANUAL");
}

function isExpiration(e: CreditEntry): boolean {
  return e.type.endsWith("_EXPIRATION");
}

/** Entries grouped by segment id. */
export function bySegment(entries: readonly CreditEntry[]): Map<string, CreditEntry[]> {
  const m = new Map<string, CreditEntry[]>();
  for (const e of entries) {
    const list = m.get(e.segmentId);
    if (list) list.push(e);
    else m.set(e.segmentId, [e]);
  }
  return m;
}

/**
 * What a segment still holds for drawing: the sum of all its stored entries,
 * whatever their timestamps, never below zero. Counting later-dated deductions
 * too means usage recorded out of time order can never overdraw a segment.
 */
export function remaining(entries: readonly CreditEntry[] | undefined): bigint {
  let sum = 0n;
  for (const e of entries ?? []) if (!isExpiration(e)) sum += e.amount;
  return sum > 0n ? sum : 0n;
}

/**
 * A segment's balance at t: 0 unless active at t; else the sum of its entries
 * dated at or before t plus every manual entry (future-dated ones included),
 * clamped at 0 so that a negative manual entry larger than what is left
 * cannot eat into other segments.
 */
export function segmentBalanceAt(s: Segment, entries: readonly CreditEntry[] | undefined, t: bigint): bigint {
  if (!isActive(s, t)) return 0n;
  let sum = 0n;
  for (const e of entries ?? []) {
    if (isExpiration(e)) continue;
    if (e.timestamp <= t || isManual(e)) sum += e.amount;
  }
  return sum > 0n ? sum : 0n;
}

/** The balance of a commit or credit at t: the sum of its segments' balances at t. */
export function balanceAt(b: CreditBalance, entries: readonly CreditEntry[], t: bigint): bigint {
  const seg = bySegment(entries);
  let total = 0n;
  for (const s of b.segments) total += segmentBalanceAt(s, seg.get(s.id), t);
  return total;
}

/**
 * The expiration entries of the segments that ended at or before `at`: what
 * was left when each ended, dated ending_before. They are derived, never
 * stored, so a late usage or manual entry can never contradict one; a
 * segment that ended with nothing left has none.
 */
export function expirations(b: CreditBalance, entries: readonly CreditEntry[], at: bigint, createdAt: bigint): CreditEntry[] {
  const seg = bySegment(entries);
  const out: CreditEntry[] = [];
  for (const s of b.segments) {
    if (s.endingBefore > at) continue;
    const left = remaining(seg.get(s.id));
    if (left === 0n) continue;
    out.push({
      tenantId: b.tenantId,
      balanceId: b.id,
      segmentId: s.id,
      type: entryTypeFor(b.kind, "expiration"),
      amount: -left,
      timestamp: s.endingBefore,
      invoiceId: null,
      reason: null,
      usageId: null,
      createdAt,
      sequence: 0n,
    });
  }
  return out;
}

/**
 * The ledger of a balance as of `at`: every stored entry plus the expirations
 * of segments ended by then, by timestamp, then in write order (an expiration
 * comes after everything else at its instant).
 */
export function ledgerAt(b: CreditBalance, entries: readonly CreditEntry[], at: bigint): CreditEntry[] {
  const all = [...entries, ...expirations(b, entries, at, at)];
  const rank = (e: CreditEntry) => (e.sequence === 0n ? 9223372036854775807n : e.sequence);
  return all.sort((x, y) => cmp(x.timestamp, y.timestamp) || cmp(rank(x), rank(y)));
}

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A usage to draw down. */
export interface UsageInput {
  readonly productId: string;
  readonly productTags: readonly string[];
  /** Null: customer-level balances only. */
  readonly contractId: string | null;
  readonly asset: string;
  readonly amount: bigint;
  readonly timestamp: bigint;
}

/**
 * Whether a balance may pay for a usage: not archived, same credit type, of
 * the usage's contract or customer-level, and the product listed by id or by a
 * tag (a balance listing neither applies to every product).
 */
export function applies(b: CreditBalance, u: UsageInput): boolean {
  if (b.archivedAt !== null || b.asset !== u.asset) return false;
  if (b.contractId !== null && b.contractId !== u.contractId) return false;
  if (b.applicableProductIds.length === 0 && b.applicableProductTags.length === 0) return true;
  return b.applicableProductIds.includes(u.productId) || u.productTags.some((t) => b.applicableProductTags.includes(t));
}

/**
 * The draw-down order of segments, documented in docs/credits.md:
 * 1. lower priority number first;
 * 2. then the segment that expires soonest (smaller ending_before);
 * 3. then the oldest: earlier starting_at, then the balance created first,
 *    then the segment listed first in its schedule.
 */
export function drawOrder(
  a: { balance: CreditBalance; segment: Segment; index: number },
  b: { balance: CreditBalance; segment: Segment; index: number },
): number {
  return (
    cmp(a.balance.priority, b.balance.priority) ||
    cmp(a.segment.endingBefore, b.segment.endingBefore) ||
    cmp(a.segment.startingAt, b.segment.startingAt) ||
    cmp(a.balance.ordinal, b.balance.ordinal) ||
    a.index - b.index
  );
}

/**
 * Plans a usage: consumes the applicable segments active at its timestamp in
 * {@link drawOrder}, each at most down to zero. Whatever is left is the
 * uncovered remainder; no segment is ever drawn below zero.
 */
export function planDrawDown(
  candidates: readonly { balance: CreditBalance; entries: readonly CreditEntry[] }[],
  u: UsageInput,
): UsageResult {
  const slots: { balance: CreditBalance; segment: Segment; index: number; available: bigint }[] = [];
  for (const c of candidates) {
    if (!applies(c.balance, u)) continue;
    const seg = bySegment(c.entries);
    c.balance.segments.forEach((segment, index) => {
      if (!isActive(segment, u.timestamp)) return;
      const available = remaining(seg.get(segment.id));
      if (available > 0n) slots.push({ balance: c.balance, segment, index, available });
    });
  }
  slots.sort(drawOrder);
  let left = u.amount;
  const draws: Draw[] = [];
  for (const s of slots) {
    if (left === 0n) break;
    const take = s.available < left ? s.available : left;
    draws.push({ balanceId: s.balance.id, segmentId: s.segment.id, amount: take });
    left -= take;
  }
  return { draws, uncovered: left };
}
