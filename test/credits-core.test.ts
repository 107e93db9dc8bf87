/**
 * Commits and credits through a real server over a real SQLite file: the
 * worked example of the Metronome contract, segment edges, every tie-break of
 * the draw-down order, every filter of ListBalances and GetNetBalance with a
 * case it must exclude, paging, page tokens, uniqueness keys, usage
 * idempotency and tenancy.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { AdminService, KeyScope } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { CreditService } from "../gen/tally/credits/v1/credits_pb.js";
import type { Balance, ScheduleItemInputSchema } from "../gen/tally/credits/v1/credits_pb.js";
import { timestampFromMicros } from "../src/services/convert.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";
import { expectRefused, secondFrom, uniq } from "./support/ledger-kit.js";

type Credits = Client<typeof CreditService>;

let server: TestServer;
let C: Credits;
let L: Client<typeof LedgerService>;

beforeAll(async () => {
  server = await startTestServer({ dialects: [] });
  C = clientFor(CreditService, server.url, "connect-binary", server.adminKey);
  L = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
});
afterAll(async () => {
  await server?.close();
});

/** Epoch microseconds of an ISO instant (with optional extra microseconds). */
function us(iso: string, extra = 0n): bigint {
  return BigInt(Date.parse(iso)) * 1000n + extra;
}
function ts(iso: string, extra = 0n): Timestamp {
  return timestampFromMicros(us(iso, extra));
}

async function customer(prefix = "cust"): Promise<string> {
  const id = uniq(prefix);
  await L.createAccount({ id });
  return id;
}

type Seg = MessageInitShape<typeof ScheduleItemInputSchema>;
/** The optional parts of a balance a test may set. */
interface Extra {
  readonly priority?: bigint;
  readonly contractId?: string;
  readonly creditTypeId?: string;
  readonly applicableProductIds?: string[];
  readonly applicableProductTags?: string[];
  readonly customFields?: Record<string, string>;
  readonly uniquenessKey?: string;
}
const seg = (amount: bigint, from: string, to: string, id = ""): Seg => ({ id, amount, startingAt: ts(from), endingBefore: ts(to) });

async function credit(customerId: string, items: Seg[], extra: Extra = {}): Promise<Balance> {
  const r = await C.createCredit({ balance: { customerId, name: "credit", product: { id: "p1", name: "Product 1" }, scheduleItems: items, ...extra } });
  return r.credit!;
}
async function commit(customerId: string, type: "PREPAID" | "POSTPAID", items: Seg[], extra: Extra = {}): Promise<Balance> {
  const r = await C.createCommit({ type, balance: { customerId, name: "commit", product: { id: "p1", name: "Product 1" }, scheduleItems: items, ...extra } });
  return r.commit!;
}

let usageSeq = 0;
async function use(customerId: string, amount: bigint, at: Timestamp, extra: { productId?: string; contractId?: string } = {}) {
  return C.recordUsage({ usageId: uniq(`u${usageSeq++}`), customerId, productId: extra.productId ?? "p1", amount, ...secondFrom(at), ...extra });
}

async function balanceOf(customerId: string, id: string, at: Timestamp): Promise<bigint | undefined> {
  const r = await C.listBalances({ customerId, id, includeBalance: true, includeContractBalances: true, includeArchived: true, balanceAt: at });
  expect(r.balances).toHaveLength(1);
  return r.balances[0]!.balance;
}

async function ids(req: Parameters<Credits["listBalances"]>[0]): Promise<string[]> {
  const r = await C.listBalances(req);
  return r.balances.map((b) => b.id).sort();
}

describe("the worked example: a 100-cent credit for 9/1-10/1", () => {
  // USD (cents) is the asset USD at scale 6: 1 cent = 10_000 units.
  const CENT = 10_000n;
  it("September's usage: starts +100 @ 9/1, deducts -63 @ 10/1 (the period's end), expires -37 @ 10/1 after it", async () => {
    const cust = await customer();
    const c = await credit(cust, [seg(100n * CENT, "2030-09-01T00:00:00Z", "2030-10-01T00:00:00Z")]);
    expect(c.type).toBe("CREDIT");
    expect(c.accessSchedule?.creditType).toMatchObject({ id: "USD", name: "USD (cents)", scale: 6 });
    const segId = c.accessSchedule!.scheduleItems[0]!.id;
    const september = { startingAt: ts("2030-09-01T00:00:00Z"), endingBefore: ts("2030-10-01T00:00:00Z") };
    const u = await C.recordUsage({ usageId: uniq("inv"), customerId: cust, productId: "p1", amount: 63n * CENT, ...september, invoiceId: "inv-525b" });
    expect(u.uncovered).toBe(0n);
    expect(u.draws.map((d) => [d.balanceId, d.segmentId, d.amount])).toEqual([[c.id, segId, 63n * CENT]]);

    expect(await balanceOf(cust, c.id, ts("2030-08-31T23:59:59Z"))).toBe(0n); // not started
    // The deduction is dated 10/1, when the segment no longer counts: inside September the
    // balance is the whole 100, and at 10/1 nothing (the -37 expires what is left).
    expect(await balanceOf(cust, c.id, ts("2030-09-10T00:00:00Z"))).toBe(100n * CENT);
    expect(await balanceOf(cust, c.id, ts("2030-09-30T23:59:59Z"))).toBe(100n * CENT);
    expect(await balanceOf(cust, c.id, ts("2030-10-01T00:00:00Z"))).toBe(0n);

    const r = await C.listBalances({ customerId: cust, includeLedgers: true, balanceAt: ts("2030-10-02T00:00:00Z") });
    const ledger = r.balances[0]!.ledger.map((e) => ({ type: e.type, at: e.timestamp?.seconds, amount: e.amount, seg: e.segmentId, inv: e.invoiceId }));
    expect(ledger).toEqual([
      { type: "CREDIT_SEGMENT_START", at: us("2030-09-01T00:00:00Z") / 1_000_000n, amount: 100n * CENT, seg: segId, inv: "" },
      { type: "CREDIT_AUTOMATED_INVOICE_DEDUCTION", at: us("2030-10-01T00:00:00Z") / 1_000_000n, amount: -63n * CENT, seg: segId, inv: "inv-525b" },
      { type: "CREDIT_EXPIRATION", at: us("2030-10-01T00:00:00Z") / 1_000_000n, amount: -37n * CENT, seg: segId, inv: "" },
    ]);
    // Before the segment ended, nothing has expired yet (the stored deduction is listed).
    const before = await C.listBalances({ customerId: cust, includeLedgers: true, balanceAt: ts("2030-09-30T00:00:00Z") });
    expect(before.balances[0]!.ledger.map((e) => e.type)).toEqual(["CREDIT_SEGMENT_START", "CREDIT_AUTOMATED_INVOICE_DEDUCTION"]);
    // Without include_balance / include_ledgers, neither is sent.
    const bare = await C.listBalances({ customerId: cust });
    expect(bare.balances[0]!.balance).toBeUndefined();
    expect(bare.balances[0]!.ledger).toEqual([]);
  });

  it("keeps a fractional cent (0.8 cents = 8000 units) exact", async () => {
    const cust = await customer();
    const c = await credit(cust, [seg(8_000n, "2030-09-01T00:00:00Z", "2030-10-01T00:00:00Z")]);
    expect(c.accessSchedule!.scheduleItems[0]!.amount).toBe(8_000n);
    await use(cust, 3_000n, ts("2030-09-02T00:00:00Z"));
    expect(await balanceOf(cust, c.id, ts("2030-09-03T00:00:00Z"))).toBe(5_000n);
  });

  it("names entries by kind: prepaid, postpaid and manual types; a postpaid segment that ends is trued up; manual entries count even when future-dated", async () => {
    const cust = await customer();
    const pre = await commit(cust, "PREPAID", [seg(100n, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")]);
    const post = await commit(cust, "POSTPAID", [seg(100n, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")], { priority: 5n });
    await use(cust, 150n, ts("2030-01-10T00:00:00Z"));
    const m = await C.addManualLedgerEntry({
      id: pre.id,
      customerId: cust,
      segmentId: pre.accessSchedule!.scheduleItems[0]!.id,
      amount: 30n,
      reason: "goodwill",
      timestamp: ts("2030-01-25T00:00:00Z"),
    });
    expect(m.entry).toMatchObject({ type: "PREPAID_COMMIT_MANUAL", amount: 30n, reason: "goodwill" });
    // At 1/15 the manual entry dated 1/25 already counts: 100 - 100 + 30.
    expect(await balanceOf(cust, pre.id, ts("2030-01-15T00:00:00Z"))).toBe(30n);
    expect(await balanceOf(cust, post.id, ts("2030-01-15T00:00:00Z"))).toBe(50n);
    const r = await C.listBalances({ customerId: cust, includeLedgers: true, balanceAt: ts("2030-03-01T00:00:00Z") });
    const types = Object.fromEntries(r.balances.map((b) => [b.id, b.ledger.map((e) => e.type)]));
    expect(types[pre.id]).toEqual(["PREPAID_COMMIT_SEGMENT_START", "PREPAID_COMMIT_AUTOMATED_INVOICE_DEDUCTION", "PREPAID_COMMIT_MANUAL", "PREPAID_COMMIT_EXPIRATION"]);
    // What is left of a postpaid commit when its segment ends is owed: a true-up, not an expiration.
    expect(types[post.id]).toEqual(["POSTPAID_COMMIT_INITIAL_BALANCE", "POSTPAID_COMMIT_AUTOMATED_INVOICE_DEDUCTION", "POSTPAID_COMMIT_TRUEUP"]);
    expect(r.balances.find((b) => b.id === post.id)!.ledger.at(-1)!.amount).toBe(-50n);
  });

  it("clamps a segment at zero when a negative manual entry exceeds what is left", async () => {
    const cust = await customer();
    const c = await credit(cust, [seg(100n, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")]);
    await C.addManualLedgerEntry({ id: c.id, segmentId: c.accessSchedule!.scheduleItems[0]!.id, amount: -250n, reason: "clawback" });
    expect(await balanceOf(cust, c.id, ts("2030-01-10T00:00:00Z"))).toBe(0n);
    const u = await use(cust, 10n, ts("2030-01-10T00:00:00Z"));
    expect(u.uncovered).toBe(10n);
    expect(u.draws).toEqual([]);
  });
});

describe("segment edges: starting_at inclusive, ending_before exclusive", () => {
  it("draws at starting_at and ending_before - 1us, not at starting_at - 1us or ending_before", async () => {
    const cust = await customer();
    await credit(cust, [seg(100n, "2030-03-01T00:00:00Z", "2030-04-01T00:00:00Z")]);
    const at = async (iso: string, extra: bigint) => (await use(cust, 1n, ts(iso, extra))).uncovered;
    expect(await at("2030-03-01T00:00:00Z", -1n)).toBe(1n);
    expect(await at("2030-03-01T00:00:00Z", 0n)).toBe(0n);
    expect(await at("2030-04-01T00:00:00Z", -1n)).toBe(0n);
    expect(await at("2030-04-01T00:00:00Z", 0n)).toBe(1n);
  });

  it("refuses a bad service period with invalid_argument and writes nothing", async () => {
    const cust = await customer();
    const c = await credit(cust, [seg(100n, "2030-01-01T00:00:00Z", "2031-06-01T00:00:00Z")]);
    const usageId = uniq("u");
    const base = { usageId, customerId: cust, productId: "p1", amount: 1n };
    const bad: [Parameters<Credits["recordUsage"]>[0], string][] = [
      [base, "invalid_service_period"],
      [{ ...base, startingAt: ts("2030-02-01T00:00:00Z") }, "invalid_service_period"],
      [{ ...base, endingBefore: ts("2030-02-01T00:00:00Z") }, "invalid_service_period"],
      [{ ...base, startingAt: ts("2030-02-01T00:00:00Z"), endingBefore: ts("2030-02-01T00:00:00Z") }, "invalid_service_period"],
      [{ ...base, startingAt: ts("2030-02-01T00:00:00Z"), endingBefore: ts("2030-01-01T00:00:00Z") }, "invalid_service_period"],
      // 367 days; 366 is the longest (a leap year's annual invoice).
      [{ ...base, startingAt: ts("2030-01-01T00:00:00Z"), endingBefore: ts("2031-01-03T00:00:00Z") }, "invalid_service_period"],
      [{ ...base, startingAt: { seconds: -62_135_596_801n, nanos: 0 }, endingBefore: ts("2030-01-01T00:00:00Z") }, "invalid_timestamp"],
      [{ ...base, startingAt: ts("2030-01-01T00:00:00Z"), endingBefore: { seconds: 1_900_000_000n, nanos: 1 } }, "invalid_timestamp"],
    ];
    for (const [req, reason] of bad) await expectRefused(C.recordUsage(req), Code.InvalidArgument, reason);
    expect(await balanceOf(cust, c.id, ts("2030-03-01T00:00:00Z"))).toBe(100n);
    // The usage id was not taken by any of them; a leap year's 366 days is accepted.
    const ok = await C.recordUsage({ ...base, startingAt: ts("2032-01-01T00:00:00Z"), endingBefore: ts("2033-01-01T00:00:00Z") });
    expect(ok.replayed).toBe(false);
  });

  it("refuses sub-microsecond timestamps instead of truncating them", async () => {
    const cust = await customer();
    await expectRefused(
      C.recordUsage({ usageId: uniq("u"), customerId: cust, amount: 1n, startingAt: { seconds: 1_900_000_000n, nanos: 1 }, endingBefore: { seconds: 1_900_000_001n, nanos: 0 } }),
      Code.InvalidArgument,
      "invalid_timestamp",
    );
  });
});

describe("draw-down order", () => {
  const A = "2030-05-01T00:00:00Z";
  const T = ts("2030-05-10T00:00:00Z");
  async function order(make: (cust: string) => Promise<Balance[]>): Promise<number[]> {
    const cust = await customer();
    const made = await make(cust);
    const segIds = made.flatMap((b) => b.accessSchedule!.scheduleItems.map((s) => s.id));
    const r = await use(cust, 1_000_000n, T);
    return r.draws.map((d) => segIds.indexOf(d.segmentId));
  }

  it("lower priority number first, even when it expires later and is newer", async () => {
    expect(
      await order(async (c) => [
        await credit(c, [seg(10n, A, "2030-06-01T00:00:00Z")], { priority: 2n }),
        await credit(c, [seg(10n, A, "2030-07-01T00:00:00Z")], { priority: 1n }),
      ]),
    ).toEqual([1, 0]);
  });

  it("same priority: the segment that expires soonest first, even when it started later and is newer", async () => {
    expect(
      await order(async (c) => [
        await credit(c, [seg(10n, "2030-04-01T00:00:00Z", "2030-07-01T00:00:00Z")]),
        await credit(c, [seg(10n, A, "2030-06-01T00:00:00Z")]),
      ]),
    ).toEqual([1, 0]);
  });

  it("same priority and expiry: the older segment (earlier starting_at) first, even when created later", async () => {
    expect(
      await order(async (c) => [
        await credit(c, [seg(10n, A, "2030-06-01T00:00:00Z")]),
        await credit(c, [seg(10n, "2030-04-01T00:00:00Z", "2030-06-01T00:00:00Z")]),
      ]),
    ).toEqual([1, 0]);
  });

  it("same priority, expiry and start: the balance created first, then schedule order", async () => {
    expect(
      await order(async (c) => [
        await credit(c, [seg(10n, A, "2030-06-01T00:00:00Z")]),
        await credit(c, [seg(10n, A, "2030-06-01T00:00:00Z"), seg(10n, A, "2030-06-01T00:00:00Z")]),
        await credit(c, [seg(10n, A, "2030-06-01T00:00:00Z")]),
      ]),
    ).toEqual([0, 1, 2, 3]);
  });

  it("commits and credits both qualify; inapplicable, archived, contract and expired balances do not; the rest is uncovered", async () => {
    const cust = await customer();
    const pre = await commit(cust, "PREPAID", [seg(10n, A, "2030-06-01T00:00:00Z")], { priority: 1n });
    const cr = await credit(cust, [seg(20n, A, "2030-06-01T00:00:00Z")], { priority: 2n });
    await credit(cust, [seg(40n, A, "2030-06-01T00:00:00Z")], { applicableProductIds: ["other"] });
    const tagged = await credit(cust, [seg(5n, A, "2030-06-01T00:00:00Z")], { priority: 3n, applicableProductTags: ["compute"] });
    const archived = await credit(cust, [seg(80n, A, "2030-06-01T00:00:00Z")]);
    await C.archiveBalance({ id: archived.id });
    await credit(cust, [seg(160n, A, "2030-06-01T00:00:00Z")], { contractId: "k1" });
    await credit(cust, [seg(320n, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")]);
    const r = await C.recordUsage({ usageId: uniq("u"), customerId: cust, productId: "p1", productTags: ["compute"], amount: 100n, ...secondFrom(T) });
    expect(r.draws.map((d) => [d.balanceId, d.amount])).toEqual([
      [pre.id, 10n],
      [cr.id, 20n],
      [tagged.id, 5n],
    ]);
    expect(r.uncovered).toBe(65n);
    // The same usage for the contract also reaches the contract's balance.
    const k = await C.recordUsage({ usageId: uniq("u"), customerId: cust, productId: "p1", contractId: "k1", amount: 100n, ...secondFrom(T) });
    expect(k.draws.map((d) => d.amount)).toEqual([100n]);
  });

  it("is idempotent by usage id; another usage under the same id is already_exists with nothing drawn", async () => {
    const cust = await customer();
    const c = await credit(cust, [seg(100n, A, "2030-06-01T00:00:00Z")]);
    const req = { usageId: uniq("u"), customerId: cust, productId: "p1", amount: 30n, ...secondFrom(T) };
    const first = await C.recordUsage(req);
    const again = await C.recordUsage(req);
    expect(again.replayed).toBe(true);
    expect(again.draws).toEqual(first.draws);
    await expectRefused(C.recordUsage({ ...req, amount: 31n }), Code.AlreadyExists, "usage_id_reused");
    expect(await balanceOf(cust, c.id, ts("2030-05-20T00:00:00Z"))).toBe(70n);
  });
});

describe("concurrent usage at the edge", () => {
  it("32 concurrent usages around ending_before never draw more than was granted; duplicate usage ids execute once", async () => {
    const cust = await customer();
    await credit(cust, [seg(100n, "2030-07-01T00:00:00Z", "2030-08-01T00:00:00Z")]);
    const edge = "2030-08-01T00:00:00Z";
    const results = await Promise.all(
      Array.from({ length: 32 }, (_, i) => use(cust, 7n, ts(edge, i % 2 === 0 ? -1n : 0n))),
    );
    const drawn = results.flatMap((r) => r.draws).reduce((a, d) => a + d.amount, 0n);
    const uncovered = results.reduce((a, r) => a + r.uncovered, 0n);
    expect(drawn).toBe(100n);
    expect(drawn + uncovered).toBe(32n * 7n);
    // Usages at exactly ending_before drew nothing.
    results.filter((_, i) => i % 2 === 1).forEach((r) => expect(r.draws).toEqual([]));
    // Their periods end after the segment: each deduction is dated its ending_before, before
    // the expiration there, which is then nothing.
    const led = (await C.listBalances({ customerId: cust, includeLedgers: true, balanceAt: ts(edge) })).balances[0]!.ledger;
    expect(led.filter((e) => e.type === "CREDIT_AUTOMATED_INVOICE_DEDUCTION").every((e) => e.timestamp!.seconds === us(edge) / 1_000_000n)).toBe(true);
    expect(led.map((e) => e.type)).not.toContain("CREDIT_EXPIRATION");

    const cust2 = await customer();
    await credit(cust2, [seg(100n, "2030-07-01T00:00:00Z", "2030-08-01T00:00:00Z")]);
    const req = { usageId: uniq("dup"), customerId: cust2, productId: "p1", amount: 10n, ...secondFrom(ts("2030-07-10T00:00:00Z")) };
    const dup = await Promise.all(Array.from({ length: 16 }, () => C.recordUsage(req)));
    expect(dup.filter((r) => !r.replayed)).toHaveLength(1);
    const r = await C.listBalances({ customerId: cust2, includeBalance: true, balanceAt: ts("2030-07-11T00:00:00Z") });
    expect(r.balances[0]!.balance).toBe(90n);
  });
});

describe("ListBalances filters", () => {
  let cust: string;
  const b: Record<string, string> = {};
  beforeAll(async () => {
    cust = await customer();
    b.A = (await credit(cust, [seg(10n, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")])).id;
    b.B = (await commit(cust, "PREPAID", [seg(10n, "2030-03-01T00:00:00Z", "2030-04-01T00:00:00Z")], { contractId: "k1" })).id;
    b.C = (await credit(cust, [seg(10n, "2030-01-01T00:00:00Z", "2030-12-01T00:00:00Z")])).id;
    await C.archiveBalance({ id: b.C });
    b.D = (await credit(cust, [seg(10n, "2030-05-01T00:00:00Z", "2030-06-01T00:00:00Z")], { applicableProductIds: ["pd"] })).id;
    await use(cust, 10n, ts("2030-05-10T00:00:00Z"), { productId: "pd" });
    // Another customer's balance never shows up.
    await credit(await customer(), [seg(10n, "2030-01-01T00:00:00Z", "2030-12-01T00:00:00Z")]);
  });
  const sorted = (...k: string[]) => k.map((x) => b[x]!).sort();

  it("customer-level, unarchived by default; contract balances and archived ones on request", async () => {
    expect(await ids({ customerId: cust })).toEqual(sorted("A", "D"));
    expect(await ids({ customerId: cust, includeContractBalances: true })).toEqual(sorted("A", "B", "D"));
    expect(await ids({ customerId: cust, includeArchived: true })).toEqual(sorted("A", "C", "D"));
    const withContract = await C.listBalances({ customerId: cust, id: b.B!, includeContractBalances: true });
    expect(withContract.balances[0]!.contract?.id).toBe("k1");
    expect((await C.listBalances({ customerId: cust, id: b.A! })).balances[0]!.contract).toBeUndefined();
  });

  it("id", async () => {
    expect(await ids({ customerId: cust, id: b.A! })).toEqual(sorted("A"));
    expect(await ids({ customerId: cust, id: b.C! })).toEqual([]);
  });

  it("covering_date, starting_at, effective_before", async () => {
    const all = { customerId: cust, includeContractBalances: true };
    expect(await ids({ ...all, coveringDate: ts("2030-01-15T00:00:00Z") })).toEqual(sorted("A"));
    expect(await ids({ ...all, coveringDate: ts("2030-02-01T00:00:00Z") })).toEqual([]);
    expect(await ids({ ...all, startingAt: ts("2030-03-15T00:00:00Z") })).toEqual(sorted("B", "D"));
    expect(await ids({ ...all, startingAt: ts("2030-04-01T00:00:00Z") })).toEqual(sorted("D"));
    expect(await ids({ ...all, effectiveBefore: ts("2030-03-01T00:00:00Z") })).toEqual(sorted("A"));
    expect(await ids({ ...all, effectiveBefore: ts("2030-03-01T00:00:00Z", 1n) })).toEqual(sorted("A", "B"));
  });

  it("exclude_zero_balances, at balance_at", async () => {
    const q = { customerId: cust, excludeZeroBalances: true };
    expect(await ids({ ...q, balanceAt: ts("2030-01-15T00:00:00Z") })).toEqual(sorted("A"));
    // D is active on 5/20 but drawn to zero; A has expired.
    expect(await ids({ ...q, balanceAt: ts("2030-05-20T00:00:00Z") })).toEqual([]);
    expect(await ids({ ...q, balanceAt: ts("2030-05-05T00:00:00Z") })).toEqual(sorted("D"));
  });

  it("include_balance and include_ledgers", async () => {
    const plain = await C.listBalances({ customerId: cust, id: b.D! });
    expect(plain.balances[0]!.balance).toBeUndefined();
    expect(plain.balances[0]!.ledger).toEqual([]);
    const full = await C.listBalances({ customerId: cust, id: b.D!, includeBalance: true, includeLedgers: true, balanceAt: ts("2030-05-20T00:00:00Z") });
    expect(full.balances[0]!.balance).toBe(0n);
    expect(full.balances[0]!.ledger.map((e) => e.amount)).toEqual([10n, -10n]);
  });

  it("page_size outside 1..25 is invalid_argument; an unknown customer is not_found", async () => {
    await expectRefused(C.listBalances({ customerId: cust, pageSize: 26 }), Code.InvalidArgument, "invalid_page_size");
    await expectRefused(C.listBalances({ customerId: uniq("ghost") }), Code.NotFound, "customer_not_found");
  });
});

describe("GetNetBalance filters", () => {
  let cust: string;
  const b: Record<string, string> = {};
  const at = ts("2030-01-15T00:00:00Z");
  beforeAll(async () => {
    cust = await customer();
    const s = () => [seg(0n, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")];
    const amount = (n: bigint) => s().map((x) => ({ ...x, amount: n }));
    b.pre = (await commit(cust, "PREPAID", amount(1n), { customFields: { region: "eu", tier: "gold" } })).id;
    b.post = (await commit(cust, "POSTPAID", amount(10n), { customFields: { region: "us" } })).id;
    b.cred = (await credit(cust, amount(100n), { customFields: { region: "us" } })).id;
    const neg = await credit(cust, amount(1000n), { customFields: { region: "eu" } });
    b.neg = neg.id;
    await C.addManualLedgerEntry({ id: neg.id, segmentId: neg.accessSchedule!.scheduleItems[0]!.id, amount: -5000n, reason: "clawback" });
    b.eur = (await credit(cust, amount(10000n), { creditTypeId: "EUR" })).id;
    const arch = await credit(cust, amount(100000n));
    await C.archiveBalance({ id: arch.id });
    b.contract = (await credit(cust, amount(1000000n), { contractId: "k9" })).id;
  });
  const net = async (filters: Parameters<Credits["getNetBalance"]>[0]["filters"] = [], creditTypeId = "") =>
    (await C.getNetBalance({ customerId: cust, creditTypeId, filters, balanceAt: at })).balance;

  it("sums every unarchived balance of the credit type; a negative segment counts as zero", async () => {
    expect(await net()).toBe(1_000_111n);
    expect(await net([], "EUR")).toBe(10_000n);
    const r = await C.getNetBalance({ customerId: cust, balanceAt: ts("2030-03-01T00:00:00Z") });
    expect(r).toMatchObject({ balance: 0n, creditTypeId: "USD" });
  });

  it("balance_types, custom_fields, ids; AND inside a filter, OR between filters", async () => {
    expect(await net([{ balanceTypes: ["CREDIT"] }])).toBe(1_000_100n);
    expect(await net([{ balanceTypes: ["PREPAID_COMMIT"] }])).toBe(1n);
    expect(await net([{ balanceTypes: ["POSTPAID_COMMIT"] }])).toBe(10n);
    expect(await net([{ customFields: { region: "us" } }])).toBe(110n);
    expect(await net([{ customFields: { region: "eu", tier: "gold" } }])).toBe(1n);
    expect(await net([{ ids: [b.post!, b.eur!] }])).toBe(10n);
    expect(await net([{ balanceTypes: ["CREDIT"], customFields: { region: "eu" } }])).toBe(0n);
    expect(await net([{ ids: [b.post!] }, { customFields: { tier: "gold" } }])).toBe(11n);
    await expectRefused(C.getNetBalance({ customerId: cust, filters: [{ balanceTypes: ["COMMIT"] }] }), Code.InvalidArgument, "invalid_balance_type");
  });
});

describe("paging, page tokens, uniqueness keys", () => {
  it("pages through 500 commits with page_size 25, each exactly once", { timeout: 120_000 }, async () => {
    const cust = await customer();
    const made = new Set<string>();
    for (let i = 0; i < 500; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: 50 }, () => commit(cust, "PREPAID", [seg(1n, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")])),
      );
      for (const c of batch) made.add(c.id);
    }
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const r = await C.listBalances({ customerId: cust, pageSize: 25, pageToken: token });
      expect(r.balances.length).toBeLessThanOrEqual(25);
      seen.push(...r.balances.map((b) => b.id));
      token = r.nextPageToken;
      pages++;
    } while (token !== "");
    expect(pages).toBe(20);
    expect(seen).toHaveLength(500);
    expect(new Set(seen)).toEqual(made);
    const first = await C.listBalances({ customerId: cust, pageSize: 25 });
    expect(first.balances).toHaveLength(25);
  });

  it("a forged, altered or re-targeted page token is invalid_argument", async () => {
    const cust = await customer();
    for (let i = 0; i < 3; i++) await credit(cust, [seg(1n, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")]);
    const { nextPageToken } = await C.listBalances({ customerId: cust, pageSize: 1 });
    expect(nextPageToken).not.toBe("");
    const flip = nextPageToken.slice(0, 5) + (nextPageToken[5] === "A" ? "B" : "A") + nextPageToken.slice(6);
    await expectRefused(C.listBalances({ customerId: cust, pageSize: 1, pageToken: flip }), Code.InvalidArgument, "invalid_page_token");
    await expectRefused(C.listBalances({ customerId: cust, pageSize: 1, pageToken: "forged.token" }), Code.InvalidArgument, "invalid_page_token");
    // The same token under another query (another filter) is refused too.
    await expectRefused(C.listBalances({ customerId: cust, pageSize: 1, includeArchived: true, pageToken: nextPageToken }), Code.InvalidArgument, "invalid_page_token");
    const other = await customer();
    await expectRefused(C.listBalances({ customerId: other, pageSize: 1, pageToken: nextPageToken }), Code.InvalidArgument, "invalid_page_token");
  });

  it("reusing a uniqueness_key is already_exists and writes nothing", async () => {
    const cust = await customer();
    const key = uniq("uk");
    await credit(cust, [seg(1n, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")], { uniquenessKey: key });
    await expectRefused(
      commit(cust, "PREPAID", [seg(5n, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z", uniq("s"))], { uniquenessKey: key }),
      Code.AlreadyExists,
      "uniqueness_key_reused",
    );
    expect(await ids({ customerId: cust, includeArchived: true, includeContractBalances: true })).toHaveLength(1);
  });

  it("refuses malformed schedules", async () => {
    const cust = await customer();
    await expectRefused(credit(cust, []), Code.InvalidArgument, "invalid_schedule");
    await expectRefused(credit(cust, [seg(1n, "2030-02-01T00:00:00Z", "2030-02-01T00:00:00Z")]), Code.InvalidArgument, "invalid_schedule");
    await expectRefused(credit(cust, [seg(0n, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")]), Code.InvalidArgument, "invalid_amount");
    // A schedule whose total leaves int64 is refused before anything is written.
    const big = 9223372036854775807n;
    await expectRefused(
      credit(cust, [seg(big, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z"), seg(1n, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")]),
      Code.OutOfRange,
      "int64_overflow",
    );
    await expectRefused(credit(cust, [seg(1n, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z", "bad id")]), Code.InvalidArgument, "invalid_id");
    expect(await ids({ customerId: cust, includeArchived: true })).toEqual([]);
    await expectRefused(C.createCommit({ type: "CREDIT", balance: { customerId: cust, scheduleItems: [] } }), Code.InvalidArgument, "invalid_commit_type");
  });
});

describe("tenancy and key scopes", () => {
  it("another tenant's customers and balances are not_found; account keys read only their own customer", async () => {
    const admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
    const cust = await customer();
    const c = await credit(cust, [seg(10n, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")]);
    const segId = c.accessSchedule!.scheduleItems[0]!.id;
    const t = await admin.createTenant({ id: uniq("tb") });
    const B = clientFor(CreditService, server.url, "connect-binary", t.adminKeySecret);
    await expectRefused(B.createCredit({ balance: { customerId: cust, scheduleItems: [seg(1n, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")] } }), Code.NotFound, "customer_not_found");
    await expectRefused(B.listBalances({ customerId: cust }), Code.NotFound, "customer_not_found");
    await expectRefused(B.getNetBalance({ customerId: cust }), Code.NotFound, "customer_not_found");
    await expectRefused(B.archiveBalance({ id: c.id }), Code.NotFound, "balance_not_found");
    await expectRefused(B.addManualLedgerEntry({ id: c.id, segmentId: segId, amount: 5n, reason: "x" }), Code.NotFound, "balance_not_found");
    await expectRefused(B.recordUsage({ usageId: uniq("u"), customerId: cust, amount: 1n, ...secondFrom(ts("2030-01-10T00:00:00Z")) }), Code.NotFound, "customer_not_found");
    // Nothing changed for tenant A.
    expect(await balanceOf(cust, c.id, ts("2030-01-10T00:00:00Z"))).toBe(10n);

    const other = await customer();
    const key = await admin.createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: cust });
    const K = clientFor(CreditService, server.url, "connect-json", key.secret);
    expect((await K.listBalances({ customerId: cust })).balances.map((x) => x.id)).toEqual([c.id]);
    expect((await K.getNetBalance({ customerId: cust, balanceAt: ts("2030-01-10T00:00:00Z") })).balance).toBe(10n);
    await expectRefused(K.listBalances({ customerId: other }), Code.NotFound);
    await expectRefused(K.recordUsage({ usageId: uniq("u"), customerId: cust, amount: 1n }), Code.PermissionDenied, "admin_key_required");
  });
});
