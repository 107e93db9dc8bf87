/**
 * Effective times and balances as of a time, on SQLite and (postgres project)
 * on PostgreSQL. A random mix of backdated and current transfers, against a
 * reference model: GetBalance(as_of = t) equals the sum of the entries
 * effective at or before t; a backdated write that breaks the rule (in the
 * future, or before what the accounts already recorded) is refused and
 * changes nothing. The ledger's clock is the test's, so nothing depends on
 * the machine's speed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Access } from "../src/domain/access.js";
import { LedgerError } from "../src/domain/errors.js";
import { Ledger } from "../src/domain/ledger.js";
import { effectiveTime } from "../src/domain/effective-time.js";
import { formatMicros } from "../src/domain/micros.js";
import type { Store } from "../src/domain/store.js";
import { seededRandom } from "./support/seeded-random.js";
import { openDomainStore } from "./support/domain-store.js";
import { payment } from "./support/transfer-input.js";

const T0 = 1_700_000_000_000_000n; // 2023-11-14, in µs
let clock = T0;
let store: Store;
let ledger: Ledger;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ store, close: cleanup } = await openDomainStore("effective"));
  ledger = new Ledger({ store, clock: () => clock });
  await new Access(store, () => clock).createTenant({ id: "t1", name: "t1" });
});
afterAll(async () => {
  await cleanup?.();
});

const refusal = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (e) {
    if (e instanceof LedgerError) return e.reason;
    throw e;
  }
  throw new Error("expected a refusal");
};

describe("the effective-time rule (unit)", () => {
  it("takes the requested time, the commit time, or the floor when a clock ran behind", () => {
    const floors = [{ at: 100n, accountId: "a" }, { at: 150n, accountId: "b" }];
    expect(effectiveTime(160n, 200n, floors)).toBe(160n);
    expect(effectiveTime(150n, 200n, floors)).toBe(150n);
    expect(effectiveTime(undefined, 200n, floors)).toBe(200n);
    expect(effectiveTime(undefined, 120n, floors)).toBe(150n);
    expect(() => effectiveTime(201n, 200n, floors)).toThrow(/in the future/);
    expect(() => effectiveTime(149n, 200n, floors)).toThrow(/account "b"/);
    expect(formatMicros(1_700_000_000_000_001n)).toBe("2023-11-14T22:13:20.000001Z");
  });
});

describe("effective times and balances as of a time", () => {
  it("backdated accounts, transfers and freezes follow the rule; a refused write changes nothing", async () => {
    clock = T0 + 1_000_000_000n;
    // Opened in the past, as an import would.
    const opened = await ledger.createAccount("t1", { id: "old", overdraftLimit: 0n, overdraftUnlimited: false, metadata: {}, effectiveAt: T0 });
    expect(opened.createdAt).toBe(T0);
    expect(await refusal(ledger.createAccount("t1", { id: "future", overdraftLimit: 0n, overdraftUnlimited: false, metadata: {}, effectiveAt: clock + 1n }))).toBe(
      "effective_at_in_future",
    );
    // Before the account was opened: refused.
    expect(await refusal(ledger.postTransfer("t1", { ...payment("k-early", "@world", "old", 5n), effectiveAt: T0 - 1n }))).toBe("effective_at_too_early");
    const r = await ledger.postTransfer("t1", { ...payment("k-1", "@world", "old", 5n), effectiveAt: T0 + 10n });
    expect(r.transfer.effectiveAt).toBe(T0 + 10n);
    expect(r.transfer.createdAt).toBe(clock);
    // Before that entry: refused, and nothing moved.
    expect(await refusal(ledger.postTransfer("t1", { ...payment("k-2", "@world", "old", 7n), effectiveAt: T0 + 9n }))).toBe("effective_at_too_early");
    expect((await ledger.getBalance("t1", "old", "USD")).posted).toBe(5n);
    // The key was not used by the refused write: it can be used now.
    await ledger.postTransfer("t1", { ...payment("k-2", "@world", "old", 7n), effectiveAt: T0 + 10n });
    // Same key, other effective time: another request.
    expect(await refusal(ledger.postTransfer("t1", { ...payment("k-2", "@world", "old", 7n), effectiveAt: T0 + 11n }))).toBe("idempotency_key_reused");
    // A freeze in the past, then nothing may be backdated before it.
    const frozen = await ledger.setFrozen("t1", "old", true, T0 + 20n);
    expect(frozen.frozenAt).toBe(T0 + 20n);
    await ledger.setFrozen("t1", "old", false, T0 + 30n);
    expect(await refusal(ledger.postTransfer("t1", { ...payment("k-3", "@world", "old", 1n), effectiveAt: T0 + 25n }))).toBe("effective_at_too_early");
    expect(await refusal(ledger.setFrozen("t1", "old", true, T0 + 29n))).toBe("effective_at_too_early");
    const b = await ledger.getBalance("t1", "old", "USD");
    expect(b.posted).toBe(12n);
    expect(b.updatedAt).toBe(T0 + 10n);
    expect((await ledger.getBalance("t1", "old", "USD", T0 + 9n)).posted).toBe(0n);
    expect((await ledger.getBalance("t1", "old", "USD", T0 + 10n)).posted).toBe(12n);
    expect((await ledger.getBalance("t1", "old", "USD", T0 + 21n)).frozenAt).toBe(null);
    expect(await refusal(ledger.getBalance("t1", "old", "USD", clock + 1n))).toBe("as_of_in_future");
    expect((await ledger.verify("t1")).ok).toBe(true);
  });

  it("for random backdated and current transfers, GetBalance(as_of) and GetMany(as_of) equal the reference model", async () => {
    const rnd = seededRandom();
    const accounts = ["a0", "a1", "a2", "a3"];
    const start = T0 + 10_000_000_000n;
    clock = start;
    for (const id of accounts) {
      await ledger.createAccount("t1", { id, overdraftLimit: 1_000n, overdraftUnlimited: false, metadata: {}, effectiveAt: start - 5_000_000n });
    }
    // Reference: every accepted entry (account, asset, effective time, signed amount).
    const ref: { account: string; asset: string; at: bigint; amount: bigint }[] = [];
    const latest = new Map<string, bigint>(accounts.map((a) => [a, start - 5_000_000n]));
    const posted = new Map<string, bigint>();
    const balanceKey = (a: string, asset: string) => `${a}/${asset}`;
    let refused = 0;
    for (let i = 0; i < 160; i++) {
      clock += BigInt(rnd.int(1, 3_000_000));
      const [from, to] = [rnd.pick(["@world", ...accounts]), rnd.pick(accounts)];
      if (from === to) continue;
      const asset = rnd.pick(["USD", "EUR"]);
      const amount = BigInt(rnd.int(1, 400));
      // Backdated half of the time, anywhere from the start to a bit into the future.
      const backdate = rnd.next() < 0.5;
      const effectiveAt = backdate ? start - 6_000_000n + BigInt(rnd.int(0, Number(clock - start) + 7_000_000)) : undefined;
      const floor = [from, to].filter((x) => x !== "@world").reduce((m, x) => (latest.get(x)! > m ? latest.get(x)! : m), 0n);
      const at = effectiveAt ?? (clock > floor ? clock : floor);
      const fromBalance = (posted.get(balanceKey(from, asset)) ?? 0n) - amount;
      const expectRefusal =
        (effectiveAt !== undefined && (effectiveAt > clock || effectiveAt < floor)) || (from !== "@world" && fromBalance < -1_000n);
      try {
        await ledger.postTransfer("t1", { ...payment(`p-${rnd.seed}-${i}`, from, to, amount), asset, effectiveAt });
        expect(expectRefusal, `transfer ${i} should have been refused`).toBe(false);
      } catch (e) {
        if (!(e instanceof LedgerError)) throw e;
        expect(expectRefusal, `transfer ${i} refused: ${e.message}`).toBe(true);
        refused++;
        continue;
      }
      for (const [acct, signed] of [[from, -amount], [to, amount]] as const) {
        if (acct !== "@world") {
          latest.set(acct, at);
          posted.set(balanceKey(acct, asset), (posted.get(balanceKey(acct, asset)) ?? 0n) + signed);
        }
        ref.push({ account: acct, asset, at, amount: signed });
      }
    }
    expect(refused, `seed=${rnd.seed}`).toBeGreaterThan(0);
    // Probe every entry's time, and the instants just before and after it.
    const probes = new Set<bigint>([start - 6_000_000n, clock]);
    for (const e of ref) for (const d of [-1n, 0n, 1n]) if (e.at + d <= clock) probes.add(e.at + d);
    for (const t of [...probes].slice(0, 120)) {
      for (const account of accounts) {
        const want = (asset: string) => ref.filter((e) => e.account === account && e.asset === asset && e.at <= t).reduce((s, e) => s + e.amount, 0n);
        for (const asset of ["USD", "EUR"]) {
          expect((await ledger.getBalance("t1", account, asset, t)).posted, `seed=${rnd.seed} ${account} ${asset} as_of ${t}`).toBe(want(asset));
        }
        const many = await ledger.getMany("t1", account, t);
        const wanted = ["EUR", "USD"].filter((a) => want(a) !== 0n).map((a) => [a, want(a)]);
        expect(many.map((b) => [b.asset, b.posted]), `seed=${rnd.seed} GetMany ${account} as_of ${t}`).toEqual(wanted);
      }
    }
    expect((await ledger.verify("t1")).ok).toBe(true);
  });
});
