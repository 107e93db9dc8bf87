/**
 * RolloverBalance and CreditBackUsage: what is left of a commit or credit moved
 * into a new balance (*_ROLLOVER closings), and usage deductions returned to
 * the segments they came from (*_CREDITED). Through a real server with a clock
 * the test sets; AdminService.Verify must stay ok after all of it.
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
import { Credits } from "../src/domain/credits/credits.js";
import type { CreditBalance, CreditEntry } from "../src/domain/credits/model.js";
import { checkBalance } from "../src/domain/credits/verify.js";
import { timestampFromMicros } from "../src/services/convert.js";
import { PROTOCOLS, clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";
import { expectRefused, secondFrom, uniq } from "./support/ledger-kit.js";

/** Epoch microseconds of an ISO instant. */
function us(iso: string): bigint {
  return BigInt(Date.parse(iso)) * 1000n;
}
function ts(iso: string): Timestamp {
  return timestampFromMicros(us(iso));
}

/** The server's clock, set by each test. */
let now = us("2026-08-01T00:00:00Z");
let server: TestServer;
let C: Client<typeof CreditService>;
let L: Client<typeof LedgerService>;
let A: Client<typeof AdminService>;
/** The expiration sweeper the app runs periodically, over the server's store. */
let sweeper: Credits;

beforeAll(async () => {
  server = await startTestServer({ clock: () => now });
  C = clientFor(CreditService, server.url, "connect-binary", server.adminKey);
  L = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
  A = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
  sweeper = new Credits(server.tally.store, () => now);
});
afterAll(async () => {
  await server?.close();
});

async function customer(): Promise<string> {
  const id = uniq("ro");
  await L.createAccount({ id });
  return id;
}

type Seg = MessageInitShape<typeof ScheduleItemInputSchema>;
const seg = (amount: bigint, from: string, to: string): Seg => ({ amount, startingAt: ts(from), endingBefore: ts(to) });

async function credit(customerId: string, items: Seg[], priority = 1n): Promise<Balance> {
  return (
    await C.createCredit({
      balance: { customerId, name: "promo", priority, product: { id: "p", name: "P" }, scheduleItems: items, customFields: { team: "x" }, applicableProductIds: ["p"] },
    })
  ).credit!;
}
async function commit(customerId: string, type: "PREPAID" | "POSTPAID", items: Seg[], priority = 1n): Promise<Balance> {
  return (await C.createCommit({ type, balance: { customerId, name: "cmt", priority, product: { id: "p", name: "P" }, scheduleItems: items } })).commit!;
}

/** The stored entries (not the derived ones) of a balance. */
function stored(id: string): Promise<CreditEntry[]> {
  return server.tally.store.listCreditEntries("default", id);
}

/** Every stored entry of every balance of a customer, and the balances' ids: what "nothing written" compares. */
async function everything(customerId: string): Promise<unknown> {
  const balances = await server.tally.store.listCreditBalances("default", customerId, 0n, 1000);
  const out: unknown[] = [];
  for (const b of balances) out.push([b.id, b.archivedAt, await stored(b.id)]);
  return out;
}

async function balanceOf(customerId: string, id: string, at: string): Promise<bigint> {
  const r = await C.listBalances({ customerId, id, includeBalance: true, includeArchived: true, includeContractBalances: true, balanceAt: ts(at) });
  return r.balances[0]!.balance!;
}
async function net(customerId: string, at: string): Promise<bigint> {
  return (await C.getNetBalance({ customerId, balanceAt: ts(at) })).balance;
}
async function expectVerified(): Promise<void> {
  const v = await A.verify({});
  expect(v.discrepancies).toEqual([]);
  expect(v.ok).toBe(true);
}

describe("RolloverBalance", () => {
  it("moves exactly what is left of the active segments into a new balance; the old one is 0 from `at` on, the net unchanged", async () => {
    now = us("2026-08-01T00:00:00Z");
    const cust = await customer();
    const old = await credit(cust, [
      seg(100n, "2026-08-01T00:00:00Z", "2026-10-01T00:00:00Z"),
      seg(50n, "2026-08-15T00:00:00Z", "2026-11-01T00:00:00Z"),
      // Not active at the rollover: it stays where it is.
      seg(30n, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
    ]);
    const [s1, s2, s3] = old.accessSchedule!.scheduleItems.map((s) => s.id);
    await C.recordUsage({ usageId: uniq("u"), customerId: cust, productId: "p", amount: 30n, ...secondFrom(ts("2026-08-10T00:00:00Z")) });
    now = us("2026-09-01T00:00:00Z");
    const netBefore = await net(cust, "2026-09-01T00:00:00Z");
    expect(netBefore).toBe(120n);
    const pastBefore = await balanceOf(cust, old.id, "2026-08-20T00:00:00Z");

    const r = await C.rolloverBalance({ id: old.id, customerId: cust, endingBefore: ts("2027-03-01T00:00:00Z"), idempotencyKey: uniq("k") });
    expect(r.replayed).toBe(false);
    expect(r.amount).toBe(120n);
    expect(r.rolloverEntries.map((e) => [e.type, e.amount, e.segmentId, e.timestamp])).toEqual([
      ["CREDIT_ROLLOVER", -70n, s1, ts("2026-09-01T00:00:00Z")],
      ["CREDIT_ROLLOVER", -50n, s2, ts("2026-09-01T00:00:00Z")],
    ]);
    const nb = r.balance!;
    expect(nb.id).not.toBe(old.id);
    expect([nb.type, nb.customerId, nb.name, nb.priority, nb.product, nb.customFields, nb.applicableProductIds, nb.accessSchedule!.creditType]).toEqual([
      old.type,
      old.customerId,
      old.name,
      old.priority,
      old.product,
      old.customFields,
      old.applicableProductIds,
      old.accessSchedule!.creditType,
    ]);
    expect(nb.accessSchedule!.scheduleItems.map((s) => [s.amount, s.startingAt, s.endingBefore])).toEqual([[120n, ts("2026-09-01T00:00:00Z"), ts("2027-03-01T00:00:00Z")]]);
    expect((await stored(nb.id)).map((e) => [e.type, e.amount])).toEqual([["CREDIT_SEGMENT_START", 120n]]);

    // The old balance: its past unchanged, 0 from `at`, its future segment untouched.
    expect(await balanceOf(cust, old.id, "2026-08-20T00:00:00Z")).toBe(pastBefore);
    expect(await balanceOf(cust, old.id, "2026-09-01T00:00:00Z")).toBe(0n);
    expect(await balanceOf(cust, old.id, "2026-10-15T00:00:00Z")).toBe(0n);
    expect(await balanceOf(cust, old.id, "2026-12-15T00:00:00Z")).toBe(30n);
    // The new one: nothing before `at`, all of it from `at` until its end.
    expect(await balanceOf(cust, nb.id, "2026-08-31T23:59:59Z")).toBe(0n);
    expect(await balanceOf(cust, nb.id, "2026-09-01T00:00:00Z")).toBe(120n);
    expect(await balanceOf(cust, nb.id, "2027-02-28T00:00:00Z")).toBe(120n);
    expect(await balanceOf(cust, nb.id, "2027-03-01T00:00:00Z")).toBe(0n);
    expect(await net(cust, "2026-09-01T00:00:00Z")).toBe(netBefore);
    expect(await net(cust, "2026-08-20T00:00:00Z")).toBe(pastBefore);

    // The ledger lists the rollovers; the rolled-over segments never expire.
    now = us("2026-11-15T00:00:00Z");
    expect(await sweeper.materialiseExpirations()).toBeGreaterThanOrEqual(0);
    const ledger = (await C.listBalances({ customerId: cust, id: old.id, includeLedgers: true, balanceAt: ts("2027-02-01T00:00:00Z") })).balances[0]!.ledger;
    expect(ledger.map((e) => [e.type, e.amount, e.segmentId])).toEqual([
      ["CREDIT_SEGMENT_START", 100n, s1],
      ["CREDIT_AUTOMATED_INVOICE_DEDUCTION", -30n, s1],
      ["CREDIT_SEGMENT_START", 50n, s2],
      ["CREDIT_ROLLOVER", -70n, s1],
      ["CREDIT_ROLLOVER", -50n, s2],
      ["CREDIT_SEGMENT_START", 30n, s3],
      ["CREDIT_EXPIRATION", -30n, s3],
    ]);
    expect((await stored(old.id)).filter((e) => e.type.endsWith("_EXPIRATION")).map((e) => e.segmentId)).toEqual([]);
    await expectVerified();
  });

  it("usage after the rollover draws from the new balance; a rolled-over segment takes no draw, no manual entry, no second rollover", async () => {
    now = us("2026-08-01T00:00:00Z");
    const cust = await customer();
    const old = await credit(cust, [seg(100n, "2026-08-01T00:00:00Z", "2026-10-01T00:00:00Z")]);
    const s1 = old.accessSchedule!.scheduleItems[0]!.id;
    now = us("2026-08-20T00:00:00Z");
    const r = await C.rolloverBalance({ id: old.id, endingBefore: ts("2026-12-01T00:00:00Z"), idempotencyKey: uniq("k") });
    const nb = r.balance!;
    // A period after `at` is paid by the new balance; one that started before it (recorded
    // late) would have drawn from the rolled-over segment: refused, nothing written.
    const u1 = await C.recordUsage({ usageId: uniq("u"), customerId: cust, productId: "p", productTags: ["compute"], amount: 40n, ...secondFrom(ts("2026-08-25T00:00:00Z")) });
    expect(u1.draws.map((d) => [d.balanceId, d.amount])).toEqual([[nb.id, 40n]]);
    const late = await everything(cust);
    await expectRefused(C.recordUsage({ usageId: uniq("u"), customerId: cust, productId: "p", amount: 10n, ...secondFrom(ts("2026-08-10T00:00:00Z")) }), Code.FailedPrecondition, "segment_closed");
    expect(await everything(cust)).toEqual(late);
    expect(await balanceOf(cust, nb.id, "2026-08-26T00:00:00Z")).toBe(60n);

    const before = await everything(cust);
    await expectRefused(C.addManualLedgerEntry({ id: old.id, segmentId: s1, amount: 5n, reason: "top up" }), Code.FailedPrecondition, "segment_closed");
    await expectRefused(C.rolloverBalance({ id: old.id, endingBefore: ts("2026-12-01T00:00:00Z"), idempotencyKey: uniq("k") }), Code.FailedPrecondition, "nothing_to_roll_over");
    expect(await everything(cust)).toEqual(before);
    // Archiving the source afterwards cancels nothing: the segment is closed already.
    await C.archiveBalance({ id: old.id });
    expect((await stored(old.id)).map((e) => e.type)).toEqual(["CREDIT_SEGMENT_START", "CREDIT_ROLLOVER"]);
    // The new balance rolls on in turn (after its last deduction's date).
    now = us("2026-08-26T00:00:00Z");
    const again = await C.rolloverBalance({ id: nb.id, endingBefore: ts("2027-01-01T00:00:00Z"), idempotencyKey: uniq("k") });
    expect(again.amount).toBe(60n);
    await expectVerified();
  });

  it("is idempotent: the same key and request return the first result and write nothing; another request under the key is already_exists", async () => {
    now = us("2026-08-01T00:00:00Z");
    const cust = await customer();
    const old = await commit(cust, "PREPAID", [seg(80n, "2026-08-01T00:00:00Z", "2026-10-01T00:00:00Z")]);
    now = us("2026-08-10T00:00:00Z");
    const key = uniq("k");
    const first = await C.rolloverBalance({ id: old.id, endingBefore: ts("2026-12-01T00:00:00Z"), idempotencyKey: key });
    expect(first.rolloverEntries.map((e) => [e.type, e.amount])).toEqual([["PREPAID_COMMIT_ROLLOVER", -80n]]);
    expect(first.balance!.type).toBe("PREPAID");
    const after = await everything(cust);
    // A retry later, without `at`: the same request although the clock moved.
    now = us("2026-08-11T00:00:00Z");
    const replay = await C.rolloverBalance({ id: old.id, endingBefore: ts("2026-12-01T00:00:00Z"), idempotencyKey: key });
    expect(replay.replayed).toBe(true);
    expect({ ...replay, replayed: false }).toEqual(first);
    expect(await everything(cust)).toEqual(after);
    // Concurrent twins: one result.
    const twins = await Promise.all(Array.from({ length: 8 }, () => C.rolloverBalance({ id: old.id, endingBefore: ts("2026-12-01T00:00:00Z"), idempotencyKey: key })));
    expect(new Set(twins.map((t) => t.balance!.id))).toEqual(new Set([first.balance!.id]));
    await expectRefused(C.rolloverBalance({ id: old.id, endingBefore: ts("2027-01-01T00:00:00Z"), idempotencyKey: key }), Code.AlreadyExists, "idempotency_key_reused");
    // Keys of manual entries are another namespace: the same string there is a new key.
    await C.addManualLedgerEntry({ id: first.balance!.id, segmentId: first.balance!.accessSchedule!.scheduleItems[0]!.id, amount: 1n, reason: "r", idempotencyKey: key });
    await expectRefused(C.rolloverBalance({ id: old.id, endingBefore: ts("2026-12-01T00:00:00Z") }), Code.InvalidArgument, "missing_idempotency_key");
    await expectVerified();
  });

  it("a schedule of several segments must total what is left; a postpaid commit rolls into a postpaid commit that is trued up later", async () => {
    now = us("2026-08-01T00:00:00Z");
    const cust = await customer();
    const post = await commit(cust, "POSTPAID", [seg(1000n, "2026-08-01T00:00:00Z", "2026-09-01T00:00:00Z")]);
    await C.recordUsage({ usageId: uniq("u"), customerId: cust, productId: "p", amount: 400n, ...secondFrom(ts("2026-08-05T00:00:00Z")) });
    now = us("2026-08-20T00:00:00Z");
    const at = ts("2026-08-15T00:00:00Z");
    const items = [seg(200n, "2026-08-15T00:00:00Z", "2026-09-15T00:00:00Z"), seg(400n, "2026-09-15T00:00:00Z", "2026-10-15T00:00:00Z")];
    const before = await everything(cust);
    const mismatch = await expectRefused(
      C.rolloverBalance({ id: post.id, at, scheduleItems: [seg(500n, "2026-08-15T00:00:00Z", "2026-09-15T00:00:00Z")], idempotencyKey: uniq("k") }),
      Code.FailedPrecondition,
      "rollover_amount_mismatch",
    );
    expect(mismatch.metadata["left"]).toBe("600");
    expect(await everything(cust)).toEqual(before);
    const r = await C.rolloverBalance({ id: post.id, at, scheduleItems: items, idempotencyKey: uniq("k") });
    expect(r.rolloverEntries.map((e) => [e.type, e.amount, e.timestamp])).toEqual([["POSTPAID_COMMIT_ROLLOVER", -600n, at]]);
    expect(r.balance!.type).toBe("POSTPAID");
    expect((await stored(r.balance!.id)).map((e) => [e.type, e.amount])).toEqual([
      ["POSTPAID_COMMIT_INITIAL_BALANCE", 200n],
      ["POSTPAID_COMMIT_INITIAL_BALANCE", 400n],
    ]);
    expect(await balanceOf(cust, post.id, "2026-08-14T00:00:00Z")).toBe(600n);
    expect(await balanceOf(cust, post.id, "2026-08-15T00:00:00Z")).toBe(0n);
    expect(await net(cust, "2026-08-15T00:00:00Z")).toBe(200n);
    // The source's segment ends later without a true-up; the new one's first segment is trued
    // up once the usage window after its end (9/15) has passed.
    now = us("2026-10-25T00:00:00Z");
    await sweeper.materialiseExpirations();
    expect((await stored(post.id)).map((e) => e.type)).toEqual(["POSTPAID_COMMIT_INITIAL_BALANCE", "POSTPAID_COMMIT_AUTOMATED_INVOICE_DEDUCTION", "POSTPAID_COMMIT_ROLLOVER"]);
    expect((await stored(r.balance!.id)).filter((e) => e.type === "POSTPAID_COMMIT_TRUEUP").map((e) => e.amount)).toEqual([-200n]);
    await expectVerified();
  });

  it("refuses, with nothing written: nothing left, archived, ended, a future `at`, a bad schedule, a deduction after `at`", async () => {
    now = us("2026-08-01T00:00:00Z");
    const cust = await customer();
    const used = await credit(cust, [seg(10n, "2026-08-01T00:00:00Z", "2026-12-01T00:00:00Z")], 1n);
    await C.recordUsage({ usageId: uniq("u"), customerId: cust, productId: "p", amount: 10n, ...secondFrom(ts("2026-08-02T00:00:00Z")) });
    const archived = await credit(cust, [seg(10n, "2026-08-01T00:00:00Z", "2026-12-01T00:00:00Z")], 2n);
    await C.archiveBalance({ id: archived.id });
    const ended = await credit(cust, [seg(10n, "2026-08-01T00:00:00Z", "2026-08-10T00:00:00Z")], 3n);
    const live = await credit(cust, [seg(10n, "2026-08-01T00:00:00Z", "2026-12-01T00:00:00Z")], 4n);
    await C.recordUsage({ usageId: uniq("u"), customerId: cust, productId: "p", amount: 3n, ...secondFrom(ts("2026-08-20T00:00:00Z")) });
    now = us("2026-09-01T00:00:00Z");
    await sweeper.materialiseExpirations();
    const before = await everything(cust);
    const end = ts("2027-01-01T00:00:00Z");
    const key = uniq("k");
    const cases: [() => Promise<unknown>, Code, string][] = [
      [() => C.rolloverBalance({ id: used.id, endingBefore: end, idempotencyKey: key }), Code.FailedPrecondition, "nothing_to_roll_over"],
      [() => C.rolloverBalance({ id: archived.id, endingBefore: end, idempotencyKey: key }), Code.FailedPrecondition, "balance_archived"],
      [() => C.rolloverBalance({ id: ended.id, endingBefore: end, idempotencyKey: key }), Code.FailedPrecondition, "nothing_to_roll_over"],
      [() => C.rolloverBalance({ id: ended.id, at: ts("2026-08-05T00:00:00Z"), endingBefore: end, idempotencyKey: key }), Code.FailedPrecondition, "nothing_to_roll_over"],
      [() => C.rolloverBalance({ id: live.id, at: ts("2026-09-02T00:00:00Z"), endingBefore: end, idempotencyKey: key }), Code.InvalidArgument, "invalid_at"],
      [() => C.rolloverBalance({ id: live.id, idempotencyKey: key }), Code.InvalidArgument, "invalid_schedule"],
      [() => C.rolloverBalance({ id: live.id, endingBefore: end, scheduleItems: [seg(7n, "2026-09-01T00:00:00Z", "2027-01-01T00:00:00Z")], idempotencyKey: key }), Code.InvalidArgument, "invalid_schedule"],
      [() => C.rolloverBalance({ id: live.id, scheduleItems: [seg(7n, "2026-08-01T00:00:00Z", "2027-01-01T00:00:00Z")], idempotencyKey: key }), Code.InvalidArgument, "invalid_schedule"],
      [() => C.rolloverBalance({ id: live.id, endingBefore: ts("2026-09-01T00:00:00Z"), idempotencyKey: key }), Code.InvalidArgument, "invalid_schedule"],
      [() => C.rolloverBalance({ id: live.id, at: ts("2026-08-15T00:00:00Z"), endingBefore: end, idempotencyKey: key }), Code.FailedPrecondition, "entries_after_rollover"],
      [() => C.rolloverBalance({ id: "cred_nope", endingBefore: end, idempotencyKey: key }), Code.NotFound, "balance_not_found"],
      [() => C.rolloverBalance({ id: live.id, customerId: used.customerId + "x", endingBefore: end, idempotencyKey: key }), Code.NotFound, "balance_not_found"],
    ];
    for (const [call, code, reason] of cases) await expectRefused(call(), code, reason);
    expect(await everything(cust)).toEqual(before);
    // A refused request did not take the key.
    const ok = await C.rolloverBalance({ id: live.id, endingBefore: end, idempotencyKey: key });
    expect(ok.amount).toBe(7n);
    await expectVerified();
  });
});

describe("CreditBackUsage", () => {
  it("returns the amount to the segments the usage drew from, the last drawn first, never more than was deducted", async () => {
    now = us("2026-08-01T00:00:00Z");
    const cust = await customer();
    const first = await credit(cust, [seg(100n, "2026-08-01T00:00:00Z", "2026-12-01T00:00:00Z")], 1n);
    const second = await commit(cust, "PREPAID", [seg(100n, "2026-08-01T00:00:00Z", "2026-12-01T00:00:00Z")], 2n);
    const [f1, s1] = [first.accessSchedule!.scheduleItems[0]!.id, second.accessSchedule!.scheduleItems[0]!.id];
    const usageId = uniq("u");
    const u = await C.recordUsage({ usageId, customerId: cust, productId: "p", amount: 150n, ...secondFrom(ts("2026-08-10T00:00:00Z")), invoiceId: "inv-9" });
    expect(u.draws.map((d) => [d.balanceId, d.amount])).toEqual([[first.id, 100n], [second.id, 50n]]);
    now = us("2026-08-20T00:00:00Z");

    const k1 = uniq("cb");
    const r1 = await C.creditBackUsage({ usageId, customerId: cust, amount: 30n, idempotencyKey: k1 });
    expect([r1.credits.map((c) => [c.balanceId, c.segmentId, c.amount]), r1.uncredited, r1.replayed]).toEqual([[[second.id, s1, 30n]], 120n, false]);
    const r2 = await C.creditBackUsage({ usageId, customerId: cust, amount: 40n, invoiceId: "inv-9", idempotencyKey: uniq("cb") });
    expect([r2.credits.map((c) => [c.balanceId, c.segmentId, c.amount]), r2.uncredited]).toEqual([[[second.id, s1, 20n], [first.id, f1, 20n]], 80n]);
    expect((await stored(second.id)).filter((e) => e.type.endsWith("_CREDITED")).map((e) => [e.type, e.amount, e.invoiceId, e.usageId, e.timestamp])).toEqual([
      ["PREPAID_COMMIT_CREDITED", 30n, "inv-9", usageId, now],
      ["PREPAID_COMMIT_CREDITED", 20n, "inv-9", usageId, now],
    ]);
    expect((await stored(first.id)).filter((e) => e.type.endsWith("_CREDITED")).map((e) => [e.type, e.amount])).toEqual([["CREDIT_CREDITED", 20n]]);
    // As if the usage had been 150 - 70 = 80: the first balance paid 80, the second nothing.
    expect(await balanceOf(cust, first.id, "2026-08-21T00:00:00Z")).toBe(20n);
    expect(await balanceOf(cust, second.id, "2026-08-21T00:00:00Z")).toBe(100n);
    // The past is unchanged: the credit-back counts from its own instant.
    expect(await balanceOf(cust, second.id, "2026-08-15T00:00:00Z")).toBe(50n);
    // The ledger shows them, with the invoice.
    const ledger = (await C.listBalances({ customerId: cust, id: first.id, includeLedgers: true })).balances[0]!.ledger;
    expect(ledger.at(-1)).toMatchObject({ type: "CREDIT_CREDITED", amount: 20n, invoiceId: "inv-9", segmentId: f1 });

    const before = await everything(cust);
    // Same key, same request: the first result, nothing written.
    const again = await C.creditBackUsage({ usageId, customerId: cust, amount: 30n, idempotencyKey: k1 });
    expect({ ...again, replayed: false }).toEqual(r1);
    expect(again.replayed).toBe(true);
    // Refusals.
    await expectRefused(C.creditBackUsage({ usageId, customerId: cust, amount: 31n, idempotencyKey: k1 }), Code.AlreadyExists, "idempotency_key_reused");
    const over = await expectRefused(C.creditBackUsage({ usageId, customerId: cust, amount: 81n, idempotencyKey: uniq("cb") }), Code.FailedPrecondition, "credit_back_exceeds_deduction");
    expect([over.metadata["deducted"], over.metadata["credited"]]).toEqual(["150", "70"]);
    await expectRefused(C.creditBackUsage({ usageId, customerId: cust, amount: 1n, invoiceId: "inv-other", idempotencyKey: uniq("cb") }), Code.InvalidArgument, "invoice_id_mismatch");
    await expectRefused(C.creditBackUsage({ usageId: uniq("none"), customerId: cust, amount: 1n, idempotencyKey: uniq("cb") }), Code.NotFound, "usage_not_found");
    await expectRefused(C.creditBackUsage({ usageId, customerId: await customer(), amount: 1n, idempotencyKey: uniq("cb") }), Code.NotFound, "usage_not_found");
    await expectRefused(C.creditBackUsage({ usageId, customerId: cust, amount: 0n, idempotencyKey: uniq("cb") }), Code.InvalidArgument);
    await expectRefused(C.creditBackUsage({ usageId, customerId: cust, amount: 1n }), Code.InvalidArgument, "missing_idempotency_key");
    expect(await everything(cust)).toEqual(before);
    // The rest, in one go; then nothing is left to credit back.
    const rest = await C.creditBackUsage({ usageId, customerId: cust, amount: 80n, idempotencyKey: uniq("cb") });
    expect([rest.credits.map((c) => [c.balanceId, c.amount]), rest.uncredited]).toEqual([[[first.id, 80n]], 0n]);
    await expectRefused(C.creditBackUsage({ usageId, customerId: cust, amount: 1n, idempotencyKey: uniq("cb") }), Code.FailedPrecondition, "credit_back_exceeds_deduction");
    expect(await net(cust, "2026-08-21T00:00:00Z")).toBe(200n);
    await expectVerified();
  });

  it("concurrent credit-backs of one usage never return more than was deducted", async () => {
    now = us("2026-08-01T00:00:00Z");
    const cust = await customer();
    const c = await credit(cust, [seg(100n, "2026-08-01T00:00:00Z", "2026-12-01T00:00:00Z")]);
    const usageId = uniq("u");
    await C.recordUsage({ usageId, customerId: cust, productId: "p", amount: 50n, ...secondFrom(ts("2026-08-01T00:00:00Z")) });
    const results = await Promise.allSettled(Array.from({ length: 16 }, () => C.creditBackUsage({ usageId, customerId: cust, amount: 7n, idempotencyKey: uniq("cb") })));
    const ok = results.filter((r) => r.status === "fulfilled");
    expect(ok).toHaveLength(7);
    expect(await balanceOf(cust, c.id, "2026-08-02T00:00:00Z")).toBe(99n);
    await expectVerified();
  });

  it("what was drawn from a segment that has ended, was rolled over, or is a postpaid commit's is lost, and the refusal says so", async () => {
    now = us("2026-08-01T00:00:00Z");
    const cust = await customer();
    const short = await credit(cust, [seg(10n, "2026-08-01T00:00:00Z", "2026-09-01T00:00:00Z")], 1n);
    const post = await commit(cust, "POSTPAID", [seg(10n, "2026-08-01T00:00:00Z", "2026-12-01T00:00:00Z")], 2n);
    const open = await credit(cust, [seg(10n, "2026-08-01T00:00:00Z", "2026-12-01T00:00:00Z")], 3n);
    const rolled = await credit(cust, [seg(10n, "2026-08-01T00:00:00Z", "2026-12-01T00:00:00Z")], 4n);
    const usageId = uniq("u");
    const u = await C.recordUsage({ usageId, customerId: cust, productId: "p", amount: 35n, ...secondFrom(ts("2026-08-10T00:00:00Z")) });
    expect(u.draws.map((d) => [d.balanceId, d.amount])).toEqual([[short.id, 10n], [post.id, 10n], [open.id, 10n], [rolled.id, 5n]]);
    now = us("2026-09-10T00:00:00Z");
    await C.rolloverBalance({ id: rolled.id, endingBefore: ts("2027-01-01T00:00:00Z"), idempotencyKey: uniq("k") });
    const before = await everything(cust);
    const lost = await expectRefused(C.creditBackUsage({ usageId, customerId: cust, amount: 11n, idempotencyKey: uniq("cb") }), Code.FailedPrecondition, "segment_closed");
    expect(lost.error.rawMessage).toContain("lost");
    expect(lost.error.rawMessage).toContain("has ended");
    expect(lost.error.rawMessage).toContain("was closed");
    expect(lost.error.rawMessage).toContain("POSTPAID_COMMIT_CREDITED");
    expect(lost.metadata["creditable"]).toBe("10");
    expect(await everything(cust)).toEqual(before);
    // The open segment's part can still be credited back.
    const r = await C.creditBackUsage({ usageId, customerId: cust, amount: 10n, idempotencyKey: uniq("cb") });
    expect([r.credits.map((c) => [c.balanceId, c.amount]), r.uncredited]).toEqual([[[open.id, 10n]], 25n]);
    await expectVerified();
  });
});

describe("tenancy and protocols", () => {
  it("another tenant's balances, customers and usages are not_found, and nothing is written", async () => {
    now = us("2026-08-02T00:00:00Z");
    const cust = await customer();
    const c = await credit(cust, [seg(10n, "2026-08-01T00:00:00Z", "2026-12-01T00:00:00Z")]);
    const usageId = uniq("u");
    await C.recordUsage({ usageId, customerId: cust, productId: "p", amount: 4n, ...secondFrom(ts("2026-08-01T00:00:00Z")) });
    const t = await A.createTenant({ id: uniq("tb") });
    const B = clientFor(CreditService, server.url, "connect-json", t.adminKeySecret);
    const before = await everything(cust);
    await expectRefused(B.rolloverBalance({ id: c.id, endingBefore: ts("2027-01-01T00:00:00Z"), idempotencyKey: uniq("k") }), Code.NotFound, "balance_not_found");
    await expectRefused(B.creditBackUsage({ usageId, customerId: cust, amount: 1n, idempotencyKey: uniq("cb") }), Code.NotFound, "customer_not_found");
    expect(await everything(cust)).toEqual(before);
    // Account-scoped keys may not write.
    const key = await A.createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: cust });
    const K = clientFor(CreditService, server.url, "connect-json", key.secret);
    await expectRefused(K.rolloverBalance({ id: c.id, endingBefore: ts("2027-01-01T00:00:00Z"), idempotencyKey: uniq("k") }), Code.PermissionDenied, "admin_key_required");
    await expectRefused(K.creditBackUsage({ usageId, customerId: cust, amount: 1n, idempotencyKey: uniq("cb") }), Code.PermissionDenied, "admin_key_required");
    expect(await everything(cust)).toEqual(before);
  });

  it.each(PROTOCOLS)("both RPCs over %s", async (protocol) => {
    // A day in: the usage's period (8/1's first second) is over when the rollover runs at now.
    now = us("2026-08-02T00:00:00Z");
    const P = clientFor(CreditService, server.url, protocol, server.adminKey);
    const cust = await customer();
    const c = await credit(cust, [seg(2n ** 53n + 1n, "2026-08-01T00:00:00Z", "2026-12-01T00:00:00Z")]);
    const usageId = uniq("u");
    await P.recordUsage({ usageId, customerId: cust, productId: "p", amount: 2n ** 53n, ...secondFrom(ts("2026-08-01T00:00:00Z")) });
    const cb = await P.creditBackUsage({ usageId, customerId: cust, amount: 2n ** 53n - 1n, idempotencyKey: uniq("cb") });
    expect([cb.credits.map((x) => [x.balanceId, x.amount]), cb.uncredited]).toEqual([[[c.id, 2n ** 53n - 1n]], 1n]);
    const r = await P.rolloverBalance({ id: c.id, endingBefore: ts("2027-01-01T00:00:00Z"), idempotencyKey: uniq("k") });
    expect([r.amount, r.balance!.accessSchedule!.scheduleItems[0]!.amount]).toEqual([2n ** 53n, 2n ** 53n]);
    expect(r.rolloverEntries.map((e) => e.amount)).toEqual([-(2n ** 53n)]);
  });
});

describe("verify finds what these operations must never write", () => {
  const b: CreditBalance = {
    tenantId: "t",
    id: "cred_1",
    kind: "CREDIT",
    customerId: "c",
    contractId: null,
    name: "",
    description: "",
    priority: 1n,
    productId: "",
    productName: "",
    asset: "USD",
    applicableProductIds: [],
    applicableProductTags: [],
    customFields: {},
    uniquenessKey: null,
    segments: [{ id: "s", amount: 100n, startingAt: 10n, endingBefore: 1000n }],
    archivedAt: null,
    createdAt: 0n,
    ordinal: 1n,
  };
  let seq = 0n;
  const e = (type: CreditEntry["type"], amount: bigint, usageId: string | null = null): CreditEntry => ({
    tenantId: "t",
    balanceId: "cred_1",
    segmentId: "s",
    type,
    amount,
    timestamp: 10n,
    invoiceId: null,
    reason: null,
    usageId,
    createdAt: 0n,
    sequence: ++seq,
  });
  const fields = (entries: CreditEntry[]) => checkBalance(b, entries).map((d) => [d.field, d.stored, d.recomputed]);

  it("a sound ledger with a credit-back and a rollover has no findings", () => {
    expect(fields([e("CREDIT_SEGMENT_START", 100n), e("CREDIT_AUTOMATED_INVOICE_DEDUCTION", -60n, "u"), e("CREDIT_CREDITED", 60n, "u"), e("CREDIT_ROLLOVER", -100n)])).toEqual([]);
  });
  it("crediting back more than the usage deducted there, or a credit without its usage", () => {
    expect(fields([e("CREDIT_SEGMENT_START", 100n), e("CREDIT_AUTOMATED_INVOICE_DEDUCTION", -10n, "u"), e("CREDIT_CREDITED", 11n, "u")])).toEqual([["credit_running", 11n, 10n]]);
    expect(fields([e("CREDIT_SEGMENT_START", 100n), e("CREDIT_CREDITED", 1n)])).toEqual([["credit_running", 1n, 0n]]);
  });
  it("a rollover that is not minus what was left, a second closing, anything after a closing", () => {
    expect(fields([e("CREDIT_SEGMENT_START", 100n), e("CREDIT_ROLLOVER", -90n)])).toEqual([["credit_closing", -90n, -100n]]);
    expect(fields([e("CREDIT_SEGMENT_START", 100n), e("CREDIT_ROLLOVER", -100n), e("CREDIT_EXPIRATION", 0n)])).toEqual([["credit_closing", 0n, 0n]]);
    expect(fields([e("CREDIT_SEGMENT_START", 100n), e("CREDIT_ROLLOVER", -100n), e("CREDIT_MANUAL", 5n)])).toEqual([["credit_closing", 5n, 0n]]);
    expect(fields([e("CREDIT_SEGMENT_START", 100n), e("PREPAID_COMMIT_ROLLOVER", -100n)])).toEqual([["credit_closing", -100n, -100n]]);
  });
});
