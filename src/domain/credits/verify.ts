import type { Discrepancy, VerifyReport } from "../model.js";
import type { CreditVerifyReader } from "./credit-port.js";
import type { CreditBalance, CreditEntry } from "./model.js";
import { entryTypeFor, isClosing } from "./rules.js";

/**
 * The credit part of `verify`, over the store's ordinary reads (so it holds
 * for every store without store-specific SQL). For every segment of every
 * commit and credit of the tenant, from its stored entries in write order:
 *
 * - `credit_segment_start`: exactly one opening entry (*_SEGMENT_START, or
 *   POSTPAID_COMMIT_INITIAL_BALANCE), equal to the segment's amount;
 * - `credit_running`: the running sum never goes below zero right after an
 *   automated deduction (draw-down takes at most what is left; only manual
 *   entries may push a segment below zero, and reads clamp those); and a
 *   *_CREDITED entry is positive, names its usage, and what has been credited
 *   back of that usage on the segment never exceeds what the usage deducted
 *   there (`stored` is the credited total, `recomputed` the deducted one);
 * - `credit_closing`: a closing entry (expiration, true-up, cancellation,
 *   rollover) of a type the balance's kind calls for, equal to minus what was
 *   left (the running sum before it, at least zero), at most one per segment,
 *   and nothing written on the segment after it.
 *
 * Findings are {@link Discrepancy} rows: `accountId` is the customer, `asset`
 * the credit type, `sequence` the entry concerned (0 when an entry is missing).
 */
export async function verifyCredits(store: CreditVerifyReader, tenantId: string): Promise<{ balancesChecked: bigint; entriesChecked: bigint; discrepancies: Discrepancy[] }> {
  const discrepancies: Discrepancy[] = [];
  let balancesChecked = 0n;
  let entriesChecked = 0n;
  let afterAccount = "";
  for (;;) {
    const accounts = await store.listAccounts(tenantId, afterAccount, 500);
    for (const a of accounts) {
      let afterBalance = 0n;
      for (;;) {
        const balances = await store.listCreditBalances(tenantId, a.id, afterBalance, 500);
        for (const b of balances) {
          const entries = await store.listCreditEntries(tenantId, b.id);
          balancesChecked++;
          entriesChecked += BigInt(entries.length);
          discrepancies.push(...checkBalance(b, entries));
        }
        if (balances.length < 500) break;
        afterBalance = balances[balances.length - 1]!.ordinal;
      }
    }
    if (accounts.length < 500) break;
    afterAccount = accounts[accounts.length - 1]!.id;
  }
  return { balancesChecked, entriesChecked, discrepancies };
}

/** The findings of one balance (see {@link verifyCredits}). */
export function checkBalance(b: CreditBalance, entries: readonly CreditEntry[]): Discrepancy[] {
  const out: Discrepancy[] = [];
  const found = (field: Discrepancy["field"], stored: bigint, recomputed: bigint, sequence: bigint) =>
    out.push({ accountId: b.customerId, asset: b.asset, field, stored, recomputed, sequence });
  const start = entryTypeFor(b.kind, "start");
  const closingTypes = new Set([entryTypeFor(b.kind, "closing"), entryTypeFor(b.kind, "cancel"), entryTypeFor(b.kind, "rollover")]);
  // Metronome has no POSTPAID_COMMIT_CREDITED: on a postpaid commit any *_CREDITED is wrong.
  const credited = b.kind === "POSTPAID" ? null : entryTypeFor(b.kind, "credited");
  for (const s of b.segments) {
    const mine = entries.filter((e) => e.segmentId === s.id);
    const starts = mine.filter((e) => e.type === start);
    const first = starts[0];
    if (starts.length !== 1 || first!.amount !== s.amount || first!.timestamp !== s.startingAt) {
      found("credit_segment_start", starts.reduce((x, e) => x + e.amount, 0n), s.amount, first?.sequence ?? 0n);
    }
    let running = 0n;
    let closed = false;
    // Per usage: what it deducted on this segment, and what was credited back.
    const deducted = new Map<string, bigint>();
    const back = new Map<string, bigint>();
    for (const e of mine) {
      if (isClosing(e)) {
        const left = running > 0n ? running : 0n;
        if (closed || !closingTypes.has(e.type) || e.amount !== -left) found("credit_closing", e.amount, closed ? 0n : -left, e.sequence);
        closed = true;
      } else if (closed) {
        // A closed segment settled what was left; anything written later contradicts it.
        found("credit_closing", e.amount, 0n, e.sequence);
      }
      running += e.amount;
      if (e.type.endsWith("_AUTOMATED_INVOICE_DEDUCTION")) {
        if (running < 0n) found("credit_running", running, 0n, e.sequence);
        if (e.usageId !== null) deducted.set(e.usageId, (deducted.get(e.usageId) ?? 0n) - e.amount);
      }
      if (e.type.endsWith("_CREDITED")) {
        const usage = e.usageId ?? "";
        const total = (back.get(usage) ?? 0n) + e.amount;
        back.set(usage, total);
        const limit = deducted.get(usage) ?? 0n;
        if (e.type !== credited || e.amount <= 0n || e.usageId === null || total > limit) found("credit_running", total, limit, e.sequence);
      }
    }
  }
  return out;
}

/**
 * A ledger report with the credit findings added. The counts stay the
 * journal's (clients compare them across calls); only `ok` and the
 * discrepancies take the credits into account.
 */
export function withCredits(report: VerifyReport, credits: Awaited<ReturnType<typeof verifyCredits>>): VerifyReport {
  if (credits.discrepancies.length === 0) return report;
  return { ...report, ok: false, discrepancies: [...report.discrepancies, ...credits.discrepancies] };
}
