/**
 * Group commit keeps every write all-or-nothing: writes that arrive together
 * share one commit (asserted), each sees the writes before it, and
 * one that fails (insufficient funds, a frozen account, a reused key, a batch
 * item refused after its first item was applied) changes nothing while every
 * other write of the same commit lands exactly once. Runs on SQLite and, in
 * the postgres project, on PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Access } from "../src/domain/access.js";
import { Ledger } from "../src/domain/ledger.js";
import type { TransferResult } from "../src/domain/ledger.js";
import type { Store } from "../src/domain/store.js";
import { PostgresStore } from "../src/store/postgres/postgres-store.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { openDomainStore } from "./support/domain-store.js";
import { payment } from "./support/transfer-input.js";

let store: Store;
let ledger: Ledger;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ store, close: cleanup } = await openDomainStore("batch"));
  ledger = new Ledger({ store });
  await new Access(store, () => ledger.now()).createTenant({ id: "t1", name: "t1" });
});
afterAll(async () => {
  await cleanup?.();
});

const tr = payment;

const open = (id: string) => ledger.createAccount("t1", { id, overdraftLimit: 0n, overdraftUnlimited: false, metadata: {} });
const posted = async (id: string) => (await ledger.getBalance("t1", id, "USD")).posted;

/** What a settled call came to: "ok", "replayed" or the refusal's reason. */
function outcome(s: PromiseSettledResult<TransferResult | TransferResult[]>): string {
  if (s.status === "rejected") return (s.reason as { reason?: string }).reason ?? String(s.reason);
  const r = Array.isArray(s.value) ? s.value : [s.value];
  return r.every((x) => x.replayed) ? "replayed" : "ok";
}

describe("a group commit with failing writes", () => {
  it("commits every other write exactly once and the failed ones not at all", async () => {
    await Promise.all(["payer", "payee", "frozen"].map(open));
    await ledger.postTransfer("t1", tr("fund-payer", "@world", "payer", 100n));
    await ledger.postTransfer("t1", tr("fund-frozen", "@world", "frozen", 50n));
    await ledger.postTransfer("t1", tr("k-used", "payer", "payee", 5n));
    await ledger.setFrozen("t1", "frozen", true);
    const journalBefore = (await ledger.verify("t1")).entriesChecked;
    const commits = () => (store instanceof SqliteStore ? store.commitStats.commits : (store as PostgresStore).batchStats.commits);
    const commitsBefore = commits();

    // All issued in one turn: they form one batch, run in this order.
    const calls: [string, Promise<TransferResult | TransferResult[]>][] = [
      ["w1", ledger.postTransfer("t1", tr("k1", "payer", "payee", 10n))],
      ["w2 insufficient", ledger.postTransfer("t1", tr("k2", "payer", "payee", 1000n))],
      ["w3 frozen", ledger.postTransfer("t1", tr("k3", "frozen", "payee", 10n))],
      ["w4 reused key", ledger.postTransfer("t1", tr("k-used", "payer", "payee", 6n))],
      ["w5", ledger.postTransfer("t1", tr("k5", "payer", "payee", 20n))],
      ["w6 replay", ledger.postTransfer("t1", tr("k-used", "payer", "payee", 5n))],
      ["w7 replay of w1", ledger.postTransfer("t1", tr("k1", "payer", "payee", 10n))],
      // Its first item is applied before its second is refused: the whole item set goes.
      ["w8 batch refused", ledger.postTransfers("t1", [tr("k8a", "@world", "payee", 7n), tr("k8b", "payer", "payee", 1000n)])],
      // Refused only because w1 and w5 came before it in the same commit (65 left).
      ["w9 insufficient after w1+w5", ledger.postTransfer("t1", tr("k9", "payer", "payee", 70n))],
      ["w10 takes the rest", ledger.postTransfer("t1", tr("k10", "payer", "payee", 65n))],
    ];
    const settled = await Promise.allSettled(calls.map(([, p]) => p));
    expect(Object.fromEntries(calls.map(([name], i) => [name, outcome(settled[i]!)]))).toEqual({
      w1: "ok",
      "w2 insufficient": "insufficient_funds",
      "w3 frozen": "balance_locked",
      "w4 reused key": "idempotency_key_reused",
      w5: "ok",
      "w6 replay": "replayed",
      "w7 replay of w1": "replayed",
      "w8 batch refused": "insufficient_funds",
      "w9 insufficient after w1+w5": "insufficient_funds",
      "w10 takes the rest": "ok",
    });
    expect(commits() - commitsBefore).toBe(1);

    // Exactly the three executed writes are in the books, each once.
    expect(await posted("payer")).toBe(0n);
    expect(await posted("payee")).toBe(5n + 10n + 20n + 65n);
    expect(await posted("frozen")).toBe(50n);
    const report = await ledger.verify("t1");
    expect(report.ok).toBe(true);
    expect(report.entriesChecked - journalBefore).toBe(6n);
    const payeeJournal = await ledger.listTransactions("t1", "payee", undefined, undefined, 100);
    expect(payeeJournal.map((e) => e.amount)).toEqual([65n, 20n, 10n, 5n]);
    const w1 = (settled[0] as PromiseFulfilledResult<TransferResult>).value.transfer;
    expect((settled[6] as PromiseFulfilledResult<TransferResult>).value.transfer).toEqual(w1);

    // The refused keys were not memoised: once the cause is gone they execute.
    await ledger.postTransfer("t1", tr("refill", "@world", "payer", 3000n));
    await ledger.setFrozen("t1", "frozen", false);
    for (const [key, from, amount] of [["k2", "payer", 1000n], ["k3", "frozen", 10n], ["k9", "payer", 70n]] as const) {
      expect((await ledger.postTransfer("t1", tr(key, from, "payee", amount))).replayed).toBe(false);
    }
    expect((await ledger.postTransfers("t1", [tr("k8a", "@world", "payee", 7n), tr("k8b", "payer", "payee", 1000n)])).map((r) => r.replayed)).toEqual([false, false]);
    expect(await posted("payee")).toBe(100n + 1000n + 10n + 70n + 7n + 1000n);
    expect((await ledger.verify("t1")).ok).toBe(true);
  });
});
