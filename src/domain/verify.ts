import type { JournalSums } from "./ledger-port.js";
import type { Discrepancy, VerifyReport } from "./model.js";
import { isInt64 } from "./money.js";

/**
 * What counts as a discrepancy between a tenant's journal and its balance
 * rows, decided here once for every store (the stores only add up):
 *
 * - `posted`, `pending_in`, `pending_out`: a balance row's field differs from
 *   the sum of its journal (a journal with no balance row at all is a
 *   `posted` finding with `stored` 0);
 * - `balance_after`: an entry's posted_after is not the running sum of its
 *   journal up to it;
 * - `asset_sum`: an asset's posted balances do not add up to zero (double
 *   entry); also the single finding when a sum leaves int64, since then no
 *   other figure can be trusted.
 */
export function reconcile(j: JournalSums): VerifyReport {
  const overflow = () => ({
    ok: false,
    accountsChecked: 0n,
    balancesChecked: 0n,
    entriesChecked: 0n,
    discrepancies: [{ accountId: "", asset: "", field: "asset_sum" as const, stored: 0n, recomputed: 0n, sequence: 0n }],
  });
  if (j.overflow) return overflow();
  if (j.sums.some((s) => !isInt64(s.posted) || !isInt64(s.pendingIn) || !isInt64(s.pendingOut)) || j.running.some((r) => !isInt64(r.running))) {
    return overflow();
  }
  const discrepancies: Discrepancy[] = [];
  const sums = new Map<string, JournalSums["sums"][number]>();
  let entriesChecked = 0n;
  for (const s of j.sums) {
    sums.set(`${s.accountId}\u0000${s.asset}`, s);
    entriesChecked += s.entries;
  }
  const accounts = new Set<string>();
  const assetTotals = new Map<string, bigint>();
  let balancesChecked = 0n;
  for (const b of j.balances) {
    balancesChecked++;
    accounts.add(b.accountId);
    const key = `${b.accountId}\u0000${b.asset}`;
    const s = sums.get(key);
    sums.delete(key);
    const check = (field: Discrepancy["field"], stored: bigint, recomputed: bigint) => {
      if (stored !== recomputed) discrepancies.push({ accountId: b.accountId, asset: b.asset, field, stored, recomputed, sequence: b.sequence });
    };
    check("posted", b.posted, s?.posted ?? 0n);
    check("pending_in", b.pendingIn, s?.pendingIn ?? 0n);
    check("pending_out", b.pendingOut, s?.pendingOut ?? 0n);
    assetTotals.set(b.asset, (assetTotals.get(b.asset) ?? 0n) + b.posted);
  }
  // Journal rows with no balance row at all.
  for (const s of sums.values()) {
    discrepancies.push({ accountId: s.accountId, asset: s.asset, field: "posted", stored: 0n, recomputed: s.posted, sequence: 0n });
  }
  for (const r of j.running) {
    if (r.postedAfter === r.running) continue;
    discrepancies.push({ accountId: r.accountId, asset: r.asset, field: "balance_after", stored: r.postedAfter, recomputed: r.running, sequence: r.sequence });
  }
  for (const [asset, total] of assetTotals) {
    if (total !== 0n) discrepancies.push({ accountId: "", asset, field: "asset_sum", stored: total, recomputed: 0n, sequence: 0n });
  }
  return { ok: discrepancies.length === 0, accountsChecked: BigInt(accounts.size), balancesChecked, entriesChecked, discrepancies };
}
