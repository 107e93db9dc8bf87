import { describe, expect, it } from "vitest";
import type { JournalSums } from "../src/domain/ledger-port.js";
import type { BalanceRow } from "../src/domain/model.js";
import { reconcile } from "../src/domain/verify.js";

// What counts as a discrepancy is decided once, in the domain, from the raw
// sums a store returns; these rules hold without a store or a socket.

const row = (accountId: string, asset: string, posted: bigint, pendingIn = 0n, pendingOut = 0n, sequence = 1n): BalanceRow => ({
  tenantId: "t",
  accountId,
  asset,
  posted,
  pendingIn,
  pendingOut,
  sequence,
  updatedAt: 0n,
});

const sum = (accountId: string, asset: string, posted: bigint, pendingIn = 0n, pendingOut = 0n, entries = 1n) => ({ accountId, asset, posted, pendingIn, pendingOut, entries });

const balanced: JournalSums = {
  sums: [sum("a", "USD", -100n, 0n, 0n, 2n), sum("b", "USD", 100n, 0n, 0n, 2n)],
  balances: [row("a", "USD", -100n), row("b", "USD", 100n)],
  running: [],
  overflow: false,
};

describe("reconcile (verify's rules)", () => {
  it("a journal that matches its balances and sums to zero per asset is ok, with the counts", () => {
    expect(reconcile(balanced)).toEqual({ ok: true, accountsChecked: 2n, balancesChecked: 2n, entriesChecked: 4n, discrepancies: [] });
  });

  it("a balance field that differs from its journal is one finding per field, with the row's sequence", () => {
    const r = reconcile({ ...balanced, balances: [row("a", "USD", -100n, 5n, 0n, 7n), row("b", "USD", 100n)] });
    expect(r.ok).toBe(false);
    expect(r.discrepancies).toEqual([{ accountId: "a", asset: "USD", field: "pending_in", stored: 5n, recomputed: 0n, sequence: 7n }]);
  });

  it("a balance row without journal entries, and entries without a balance row, are both found", () => {
    const r = reconcile({
      sums: [sum("a", "USD", -100n), sum("b", "USD", 100n)],
      balances: [row("a", "USD", -100n), row("c", "USD", 100n)],
      running: [],
      overflow: false,
    });
    expect(r.discrepancies).toEqual([
      { accountId: "c", asset: "USD", field: "posted", stored: 100n, recomputed: 0n, sequence: 1n },
      { accountId: "b", asset: "USD", field: "posted", stored: 0n, recomputed: 100n, sequence: 0n },
    ]);
  });

  it("an entry whose posted_after is not its running sum is a balance_after finding", () => {
    const r = reconcile({ ...balanced, running: [{ accountId: "b", asset: "USD", sequence: 3n, postedAfter: 90n, running: 100n }] });
    expect(r.discrepancies).toEqual([{ accountId: "b", asset: "USD", field: "balance_after", stored: 90n, recomputed: 100n, sequence: 3n }]);
  });

  it("posted balances of an asset that do not add up to zero break double entry", () => {
    const r = reconcile({ sums: [sum("a", "EUR", 5n)], balances: [row("a", "EUR", 5n)], running: [], overflow: false });
    expect(r.discrepancies).toEqual([{ accountId: "", asset: "EUR", field: "asset_sum", stored: 5n, recomputed: 0n, sequence: 0n }]);
  });

  it("a sum outside int64, or a store whose arithmetic overflowed, is the single finding", () => {
    const single = { ok: false, accountsChecked: 0n, balancesChecked: 0n, entriesChecked: 0n, discrepancies: [{ accountId: "", asset: "", field: "asset_sum", stored: 0n, recomputed: 0n, sequence: 0n }] };
    expect(reconcile({ ...balanced, sums: [sum("a", "USD", 2n ** 63n)] })).toEqual(single);
    expect(reconcile({ ...balanced, running: [{ accountId: "a", asset: "USD", sequence: 1n, postedAfter: 0n, running: -(2n ** 63n) - 1n }] })).toEqual(single);
    expect(reconcile({ sums: [], balances: [], running: [], overflow: true })).toEqual(single);
  });
});
