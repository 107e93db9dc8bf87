/**
 * What the migration-6 tests share: a ledger written before the upgrade, the
 * `result` copy the previous schema stored, and the replays after it.
 */
import { expect } from "vitest";
import { Access } from "../../src/domain/access.js";
import { Ledger } from "../../src/domain/ledger.js";
import type { TransferInput } from "../../src/domain/ledger.js";
import type { Transfer } from "../../src/domain/model.js";
import type { Store } from "../../src/domain/store.js";

/** The JSON copy the previous schema stored as `result` (bigints as decimal strings). */
export function legacyResult(t: Transfer): string {
  return JSON.stringify(t, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
}

const input = (key: string, amount: bigint, pending: boolean): TransferInput => ({
  idempotencyKey: key,
  debitAccountId: "@world",
  creditAccountId: "acct-m",
  asset: "USD",
  amount,
  kind: "payment",
  note: "before the upgrade",
  metadata: { z: "1", a: "2" },
  pending,
});

/** Writes two transfers (one pending, then partly posted) and returns their first answers. */
export async function writeBefore(store: Store): Promise<Transfer[]> {
  const ledger = new Ledger({ store });
  await new Access(store, () => ledger.now()).createTenant({ id: "t1", name: "t1" });
  await ledger.createAccount("t1", { id: "acct-m", overdraftLimit: 0n, overdraftUnlimited: false, metadata: {} });
  const posted = await ledger.postTransfer("t1", input("k-posted", 70n, false));
  const pending = await ledger.postTransfer("t1", input("k-pending", 30n, true));
  await ledger.postPending("t1", pending.transfer.id, 10n);
  return [posted.transfer, pending.transfer];
}

/** Replays both keys on the upgraded store and checks the answers and that nothing ran twice. */
export async function expectReplays(store: Store, first: Transfer[]): Promise<void> {
  const ledger = new Ledger({ store });
  const again = [await ledger.postTransfer("t1", input("k-posted", 70n, false)), await ledger.postTransfer("t1", input("k-pending", 30n, true))];
  expect(again.map((r) => r.replayed)).toEqual([true, true]);
  expect(again.map((r) => r.transfer)).toEqual(first);
  expect(again[1]!.transfer.status).toBe("PENDING");
  expect((await ledger.getTransfer("t1", first[1]!.id)).status).toBe("POSTED");
  expect((await ledger.getBalance("t1", "acct-m", "USD")).posted).toBe(80n);
  expect((await ledger.verify("t1")).ok).toBe(true);
}

