import { CLOSING_TYPES } from "./model.js";
import type { BalanceKind, CreditBalance, CreditEntry, CreditEntryType, Draw, NewCreditEntry, Segment, UsageResult } from "./model.js";

/**
 * The pure rules of commits and credits: which segments are active, what a
 * balance is at an instant, what expired, and the draw-down order. No I/O, so
 * the property test can run them against a reference model directly.
 */

/** What happened to a segment, before it is named for the balance's kind. */
export type EntryAction = "start" | "deduction" | "closing" | "manual" | "cancel" | "rollover" | "credited";

const PREFIX: Record<BalanceKind, string> = { PREPAID: "PREPAID_COMMIT", POSTPAID: "POSTPAID_COMMIT", CREDIT: "CREDIT" };

/**
 * Metronome's type name for an action on a balance of a kind.
 * - start: a postpaid commit is owed, not granted: Metronome opens it with INITIAL_BALANCE.
 * - closing (a segment ended): what is left of a postpaid commit is owed by the
 *   customer, so it is trued up (POSTPAID_COMMIT_TRUEUP); prepaid commits and
 *   credits expire (*_EXPIRATION). POSTPAID_COMMIT_EXPIRATION is never written.
 * - cancel (the balance was archived): *_CANCELED. Metronome has no
 *   POSTPAID_COMMIT_CANCELED: archiving a postpaid commit settles the
 *   commitment early, so what is left is trued up at the archive instant
 *   (POSTPAID_COMMIT_TRUEUP). A manual entry would not do: manual entries count
 *   even before their date, which would rewrite the balance's past.
 * - rollover (what was left moved to a new balance): *_ROLLOVER, for every kind.
 * - credited (a deduction returned): *_CREDITED. Metronome has no
 *   POSTPAID_COMMIT_CREDITED, so a postpaid commit's deductions are never
 *   credited back (Credits.creditBackUsage refuses them); asking is a bug.
 */
export function entryTypeFor(kind: BalanceKind, action: EntryAction): CreditEntryType {
  switch (action) {
    case "start":
      return (kind === "POSTPAID" ? "POSTPAID_COMMIT_INITIAL_BALANCE" : `${PREFIX[kind]}_SEGMENT_START`) as CreditEntryType;
    case "deduction":
      return `${PREFIX[kind]}_AUTOMATED_INVOICE_DEDUCTION` as CreditEntryType;
    case "closing":
      return (kind === "POSTPAID" ? "POSTPAID_COMMIT_TRUEUP" : `${PREFIX[kind]}_EXPIRATION`) as CreditEntryType;
    case "cancel":
      return (kind === "POSTPAID" ? "POSTPAID_COMMIT_TRUEUP" : `${PREFIX[kind]}_CANCELED`) as CreditEntryType;
    case "manual":
      return `${PREFIX[kind]}_MANUAL` as CreditEntryType;
    case "rollover":
      return `${PREFIX[kind]}_ROLLOVER` as CreditEntryType;
    case "credited":
      if (kind === "POSTPAID") throw new Error("POSTPAID_COMMIT_CREDITED does not exist");
      return `${PREFIX[kind]}_CREDITED` as CreditEntryType;
  }
}

/** starting_at is inclusive, ending_before exclusive (Metronome's convention). */
export function isActive(s: Segment, t: bigint): boolean {
  return s.startingAt <= t && t < s.endingBefore;
}

function isManual(e: CreditEntry): boolean {
  return e.type.endsWith("_MANUAL");
}

/** Whether an entry closes its segment (expiration, true-up, cancellation, rollover). */
export function isClosing(e: { readonly type: CreditEntryType }): boolean {
  return CLOSING_TYPES.has(e.type);
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
 * What a segment still holds: the sum of all its stored entries, whatever
 * their timestamps, never below zero. Counting later-dated deductions too
 * means usage recorded out of time order can never overdraw a segment; a
 * stored closing entry brings it to zero, so a closed segment holds nothing.
 */
export function remaining(entries: readonly CreditEntry[] | undefined): bigint {
  let sum = 0n;
  for (const e of entries ?? []) sum += e.amount;
  return sum > 0n ? sum : 0n;
}

/**
 * A segment's balance at t: 0 unless active at t; else the sum of its entries
 * dated at or before t plus every manual entry (future-dated ones included),
 * clamped at 0 so that a negative manual entry larger than what is left
 * cannot eat into other segments. A stored expiration or true-up is dated
 * ending_before, when the segment is no longer active, so it never counts
 * here; a cancellation counts from the instant of the archive on.
 */
export function segmentBalanceAt(s: Segment, entries: readonly CreditEntry[] | undefined, t: bigint): bigint {
  if (!isActive(s, t)) return 0n;
  let sum = 0n;
  for (const e of entries ?? []) {
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
 * The closing entries due by `at` that are not stored yet: for every segment
 * that ended at or before `at`, has no stored closing entry and still holds
 * something, minus what it holds, dated ending_before (an expiration, or a
 * true-up for a postpaid commit). Reads add them to what is stored; writes
 * and the sweeper store them (materialise) once `at` is now. Either way the
 * amount is the same, because nothing can be added to a segment once it has
 * ended: a usage recorded later cannot draw from it (the write materialises
 * first) and a manual entry on it is refused.
 */
export function dueClosings(b: CreditBalance, entries: readonly CreditEntry[], at: bigint, createdAt: bigint): NewCreditEntry[] {
  const seg = bySegment(entries);
  const out: NewCreditEntry[] = [];
  for (const s of b.segments) {
    if (s.endingBefore > at) continue;
    const mine = seg.get(s.id);
    if (mine?.some(isClosing)) continue;
    const left = remaining(mine);
    if (left === 0n) continue;
    out.push({
      tenantId: b.tenantId,
      balanceId: b.id,
      segmentId: s.id,
      type: entryTypeFor(b.kind, "closing"),
      amount: -left,
      timestamp: s.endingBefore,
      invoiceId: null,
      reason: null,
      usageId: null,
      createdAt,
    });
  }
  return out;
}

/**
 * The ledger of a balance as of `at`: every stored entry, except closing
 * entries dated after `at`, plus the closing entries due by `at` that are not
 * stored yet. Ordered by timestamp; at one instant closing entries come after
 * everything else, in schedule order, and the rest in write order. So the
 * listing is the same before and after a closing entry is materialised.
 */
export function ledgerAt(b: CreditBalance, entries: readonly CreditEntry[], at: bigint): CreditEntry[] {
  const stored = entries.filter((e) => !isClosing(e) || e.timestamp <= at);
  const derived = dueClosings(b, entries, at, at).map((e): CreditEntry => ({ ...e, sequence: 0n }));
  const position = new Map(b.segments.map((s, i) => [s.id, BigInt(i)]));
  const key = (e: CreditEntry): [bigint, bigint, bigint] =>
    isClosing(e) ? [e.timestamp, 1n, position.get(e.segmentId) ?? 0n] : [e.timestamp, 0n, e.sequence];
  return [...stored, ...derived].sort((x, y) => {
    const a = key(x);
    const c = key(y);
    return cmp(a[0], c[0]) || cmp(a[1], c[1]) || cmp(a[2], c[2]);
  });
}

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A usage to draw down: what an invoice bills for one service period
 * [startingAt, endingBefore) (start inclusive, end exclusive, like segments).
 */
export interface UsageInput {
  readonly productId: string;
  readonly productTags: readonly string[];
  /** Null: customer-level balances only. */
  readonly contractId: string | null;
  readonly asset: string;
  readonly amount: bigint;
  /** The service period's start: the segments in effect then pay. */
  readonly startingAt: bigint;
  /** The service period's end (exclusive): the invoice is final then. */
  readonly endingBefore: bigint;
}

/**
 * When a segment's deduction for a usage is dated: the end of the service
 * period, when the invoice is final. A segment that ends inside the period
 * takes it at its own ending_before instead, the last instant it was in
 * effect, so that no deduction is ever dated after the segment's closing
 * entry (which is dated ending_before too, and listed after it).
 */
export function deductionDate(s: Segment, u: Pick<UsageInput, "endingBefore">): bigint {
  return u.endingBefore < s.endingBefore ? u.endingBefore : s.endingBefore;
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
 * What a plan would draw from a segment that is already closed: the usage
 * cannot be recorded as it should be (see {@link planDrawDown}).
 */
export interface ClosedDraw {
  readonly balance: CreditBalance;
  readonly segment: Segment;
  /** The closing entry that settled the segment. */
  readonly closing: CreditEntry;
  readonly amount: bigint;
}

/**
 * Plans a usage: consumes the applicable segments in effect at the start of
 * its service period in {@link drawOrder}, each at most down to zero.
 * Whatever is left is the uncovered remainder; no segment is ever drawn below
 * zero.
 *
 * A segment that was in effect then but has been closed since (its
 * expiration, true-up or rollover is stored, dated after the period's start)
 * takes its place in the order
 * with what it held before it was closed: if the usage would draw from it,
 * the plan lists that in `closed`, and the caller refuses the usage instead
 * of billing it to the next balance or leaving it uncovered, which would
 * charge the customer for what their balance should have paid.
 */
export function planDrawDown(
  candidates: readonly { balance: CreditBalance; entries: readonly CreditEntry[] }[],
  u: UsageInput,
): UsageResult & { readonly closed: readonly ClosedDraw[] } {
  const slots: { balance: CreditBalance; segment: Segment; index: number; available: bigint; closing: CreditEntry | undefined }[] = [];
  for (const c of candidates) {
    if (!applies(c.balance, u)) continue;
    const seg = bySegment(c.entries);
    c.balance.segments.forEach((segment, index) => {
      if (!isActive(segment, u.startingAt)) return;
      const mine = seg.get(segment.id) ?? [];
      const closing = mine.find(isClosing);
      // Closed (rolled over) before the period started: no longer in effect then.
      if (closing !== undefined && closing.timestamp <= u.startingAt) return;
      const available = remaining(closing === undefined ? mine : mine.filter((e) => e !== closing));
      if (available > 0n) slots.push({ balance: c.balance, segment, index, available, closing });
    });
  }
  slots.sort(drawOrder);
  let left = u.amount;
  const draws: Draw[] = [];
  const closed: ClosedDraw[] = [];
  for (const s of slots) {
    if (left === 0n) break;
    const take = s.available < left ? s.available : left;
    if (s.closing !== undefined) closed.push({ balance: s.balance, segment: s.segment, closing: s.closing, amount: take });
    else draws.push({ balanceId: s.balance.id, segmentId: s.segment.id, amount: take });
    left -= take;
  }
  return { draws, uncovered: left, closed };
}
