/**
 * AdminService.Verify (and `tally verify`) on SQLite reads the journal in a
 * worker thread, so that a verify of a long journal does not stall the
 * server's other calls: while the store adds up the journal, the event loop
 * keeps turning (counted, not timed), and the sums are the journal's.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Access } from "../src/domain/access.js";
import { Ledger } from "../src/domain/ledger.js";
import type { Store } from "../src/domain/store.js";
import { openDomainStore } from "./support/domain-store.js";
import { payment } from "./support/transfer-input.js";

let store: Store;
let close: () => Promise<void>;
let ledger: Ledger;

beforeAll(async () => {
  ({ store, close } = await openDomainStore("verify_loop"));
  ledger = new Ledger({ store });
  await new Access(store, () => BigInt(Date.now()) * 1000n).createTenant({ id: "t", name: "t" });
  for (const id of ["a", "b", "c"]) await ledger.createAccount("t", { id, overdraftLimit: 0n, overdraftUnlimited: false, metadata: {} });
  const batch = [];
  for (let i = 0; i < 600; i++) batch.push(payment(`k${i}`, "@world", ["a", "b", "c"][i % 3]!, BigInt(i + 1)));
  await ledger.postTransfers("t", batch.slice(0, 300));
  await ledger.postTransfers("t", batch.slice(300));
});
afterAll(async () => {
  await close?.();
});

describe("verify off the event loop", () => {
  it("lets the event loop turn while the journal is added up, and adds it up right", async () => {
    let turns = 0;
    let counting = true;
    const tick = () => {
      turns++;
      if (counting) setImmediate(tick);
    };
    setImmediate(tick);
    const sums = await store.journalSums("t");
    counting = false;
    expect(turns).toBeGreaterThan(0);
    const a = sums.sums.find((s) => s.accountId === "a" && s.asset === "USD")!;
    // a got transfers 1, 4, 7, … 598: 200 of them.
    expect([a.posted, a.entries]).toEqual([BigInt(Array.from({ length: 200 }, (_, k) => 3 * k + 1).reduce((x, y) => x + y, 0)), 200n]);
    expect(sums.running).toEqual([]);
    expect((await ledger.verify("t")).ok).toBe(true);
  });
});
