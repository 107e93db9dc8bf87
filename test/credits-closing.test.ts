/**
 * Closing entries of commits and credits, materialised: expirations and
 * postpaid true-ups written once a segment has ended (by the sweeper and by
 * every credit write of the customer), cancellations written on archive, and
 * idempotent manual entries. Through a real server over a real SQLite file,
 * with a clock the test sets. The central check: every listing (native JSON
 * and Metronome REST bytes) is identical before and after materialisation.
 */
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import { toJsonString } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { AdminService } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { CreditService, ListBalancesResponseSchema } from "../gen/tally/credits/v1/credits_pb.js";
import type { Balance, ListBalancesRequestSchema, ScheduleItemInputSchema } from "../gen/tally/credits/v1/credits_pb.js";
import { Credits } from "../src/domain/credits/credits.js";
import type { CreditEntry } from "../src/domain/credits/model.js";
import { timestampFromMicros } from "../src/services/convert.js";
import { clientFor, startTestServer } from "./support/server.js";
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
/** The domain over the server's own store: the sweeper the app calls periodically. */
let sweeper: Credits;
let platformKey = "";

beforeAll(async () => {
  server = await startTestServer({ dialects: ["metronome"], clock: () => now });
  C = clientFor(CreditService, server.url, "connect-binary", server.adminKey);
  L = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
  sweeper = new Credits(server.tally.store, () => now);
  const admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
  platformKey = (await admin.createCredential({ kind: "metronome_platform_key", label: "closing" })).secret;
});
afterAll(async () => {
  await server?.close();
});

async function customer(): Promise<string> {
  const id = uniq("cl");
  await L.createAccount({ id });
  return id;
}

type Seg = MessageInitShape<typeof ScheduleItemInputSchema>;
const seg = (amount: bigint, from: string, to: string): Seg => ({ amount, startingAt: ts(from), endingBefore: ts(to) });

async function credit(customerId: string, items: Seg[], priority = 1n): Promise<Balance> {
  return (await C.createCredit({ balance: { customerId, name: "c", priority, product: { id: "p", name: "P" }, scheduleItems: items } })).credit!;
}
async function commit(customerId: string, type: "PREPAID" | "POSTPAID", items: Seg[], priority = 1n): Promise<Balance> {
  return (await C.createCommit({ type, balance: { customerId, name: "c", priority, product: { id: "p", name: "P" }, scheduleItems: items } })).commit!;
}

/** The stored entries (not the derived ones) of a balance. */
async function stored(b: Balance): Promise<CreditEntry[]> {
  return server.tally.store.listCreditEntries("default", b.id);
}
const closings = (list: CreditEntry[]) => list.filter((e) => /_(EXPIRATION|TRUEUP|CANCELED)$/.test(e.type));

/** Native ListBalances as JSON, with everything asked for. */
async function nativeJson(customerId: string, extra: MessageInitShape<typeof ListBalancesRequestSchema> = {}): Promise<string> {
  const r = await C.listBalances({ customerId, includeLedgers: true, includeBalance: true, includeArchived: true, includeContractBalances: true, ...extra });
  return toJsonString(ListBalancesResponseSchema, r);
}

/** Metronome's list as its clients see it: the raw body. */
async function restBody(customerId: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await fetch(`${server.url}/v1/contracts/customerBalances/list`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${platformKey}` },
    body: JSON.stringify({ customer_id: customerId, include_ledgers: true, include_balance: true, include_archived: true, ...extra }),
  });
  expect(res.status).toBe(200);
  return res.text();
}

/** Every view of a customer at several instants, to compare before and after a sweep. */
async function snapshot(customerId: string, instants: string[]): Promise<string[]> {
  const out = [await nativeJson(customerId), await restBody(customerId)];
  for (const i of instants) {
    out.push(await nativeJson(customerId, { balanceAt: ts(i) }), await restBody(customerId, { balance_at: i }));
  }
  return out;
}

describe("expiration entries are materialised", () => {
  it("the worked example: identical listings before and after the sweep; -37 stored once, dated ending_before", async () => {
    const CENT = 10_000n;
    now = us("2026-08-01T00:00:00Z");
    const cust = await customer();
    const c = await credit(cust, [seg(100n * CENT, "2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z")]);
    const segId = c.accessSchedule!.scheduleItems[0]!.id;
    // September's invoice is final on 10/1: its usage draws from the credit in effect on 9/1,
    // although the credit has ended by then, and is dated 10/1.
    now = us("2026-10-01T00:00:00Z");
    await C.recordUsage({ usageId: uniq("u"), customerId: cust, productId: "p", amount: 63n * CENT, startingAt: ts("2026-09-01T00:00:00Z"), endingBefore: ts("2026-10-01T00:00:00Z"), invoiceId: "inv-1" });

    now = us("2026-10-02T00:00:00Z");
    const instants = ["2026-08-31T00:00:00.000Z", "2026-09-20T00:00:00.000Z", "2026-09-30T23:59:59.999Z", "2026-10-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z"];
    const before = await snapshot(cust, instants);
    // Derived on read, not stored yet.
    expect(closings(await stored(c))).toEqual([]);
    const rest = JSON.parse(before[1]!) as { data: { balance: number; ledger: unknown[] }[] };
    expect(rest.data[0]!.balance).toBe(0);
    expect(rest.data[0]!.ledger).toEqual([
      { type: "CREDIT_SEGMENT_START", timestamp: "2026-09-01T00:00:00.000Z", amount: 100, segment_id: segId },
      { type: "CREDIT_AUTOMATED_INVOICE_DEDUCTION", timestamp: "2026-10-01T00:00:00.000Z", amount: -63, segment_id: segId, invoice_id: "inv-1" },
      { type: "CREDIT_EXPIRATION", timestamp: "2026-10-01T00:00:00.000Z", amount: -37, segment_id: segId },
    ]);

    // Inside the usage window nothing is stored yet; after it, the sweep stores what reads showed.
    expect(await sweeper.materialiseExpirations()).toBe(0);
    now = us("2026-11-06T00:00:00Z");
    expect(await sweeper.materialiseExpirations()).toBeGreaterThanOrEqual(1);
    const after = await snapshot(cust, instants);
    expect(after).toEqual(before);
    const written = closings(await stored(c));
    expect(written.map((e) => [e.type, e.amount, e.timestamp, e.segmentId])).toEqual([["CREDIT_EXPIRATION", -37n * CENT, us("2026-10-01T00:00:00Z"), segId]]);
    // Again, and concurrently: nothing more.
    expect(await Promise.all([sweeper.materialiseExpirations(), sweeper.materialiseExpirations()])).toEqual([0, 0]);
    expect(closings(await stored(c))).toHaveLength(1);
    expect(await snapshot(cust, instants)).toEqual(before);
  });

  it("a postpaid commit's end is a true-up of what is left (the customer owes it), materialised the same way", async () => {
    now = us("2026-08-01T00:00:00Z");
    const cust = await customer();
    const p = await commit(cust, "POSTPAID", [seg(1000n, "2026-08-01T00:00:00Z", "2026-09-01T00:00:00Z")]);
    await C.recordUsage({ usageId: uniq("u"), customerId: cust, productId: "p", amount: 400n, ...secondFrom(ts("2026-08-10T00:00:00Z")) });
    now = us("2026-10-10T00:00:00Z"); // past the usage window after 9/1
    const before = await snapshot(cust, ["2026-08-20T00:00:00.000Z", "2026-09-01T00:00:00.000Z"]);
    expect(before[0]).toContain('"type":"POSTPAID_COMMIT_TRUEUP"');
    expect(before[0]).not.toContain("EXPIRATION");
    await sweeper.materialiseExpirations();
    expect(await snapshot(cust, ["2026-08-20T00:00:00.000Z", "2026-09-01T00:00:00.000Z"])).toEqual(before);
    expect(closings(await stored(p)).map((e) => [e.type, e.amount, e.timestamp])).toEqual([["POSTPAID_COMMIT_TRUEUP", -600n, us("2026-09-01T00:00:00Z")]]);
  });

  it("inside the usage window a late usage still draws from an ended segment and its expiration reflects it; after it, credit writes close first and such a usage is refused", async () => {
    now = us("2026-08-01T00:00:00Z");
    const cust = await customer();
    const other = await customer();
    const ended = await credit(cust, [seg(50n, "2026-08-01T00:00:00Z", "2026-09-01T00:00:00Z")]);
    const live = await credit(cust, [seg(20n, "2026-08-01T00:00:00Z", "2026-12-01T00:00:00Z")], 9n);
    const untouched = await credit(other, [seg(70n, "2026-08-01T00:00:00Z", "2026-09-01T00:00:00Z")]);
    const august = { startingAt: ts("2026-08-01T00:00:00Z"), endingBefore: ts("2026-09-01T00:00:00Z") };
    // 9/10: August's invoice, recorded after `ended` ended, still draws from it (in effect on 8/1)...
    now = us("2026-09-10T00:00:00Z");
    const r = await C.recordUsage({ usageId: uniq("u"), customerId: cust, productId: "p", amount: 30n, ...august });
    expect(r.draws.map((d) => [d.balanceId, d.amount])).toEqual([[ended.id, 30n]]);
    // ...dated 9/1, before the expiration at the same instant, which is what is left after it.
    const led = (JSON.parse(await restBody(cust)) as { data: { id: string; ledger: unknown[] }[] }).data.find((b) => b.id === ended.id)!.ledger;
    expect(led.slice(1)).toEqual([
      { type: "CREDIT_AUTOMATED_INVOICE_DEDUCTION", timestamp: "2026-09-01T00:00:00.000Z", amount: -30 / 10_000, segment_id: ended.accessSchedule!.scheduleItems[0]!.id, invoice_id: expect.any(String) },
      { type: "CREDIT_EXPIRATION", timestamp: "2026-09-01T00:00:00.000Z", amount: -20 / 10_000, segment_id: ended.accessSchedule!.scheduleItems[0]!.id },
    ]);
    expect(closings(await stored(ended))).toEqual([]);
    // 10/10, past the window: any credit write of the customer stores the expiration first.
    now = us("2026-10-10T00:00:00Z");
    const listed = await nativeJson(cust);
    const late = { usageId: uniq("u"), customerId: cust, productId: "p", amount: 5n, startingAt: ts("2026-08-20T00:00:00Z"), endingBefore: ts("2026-08-21T00:00:00Z") };
    const refusal = await expectRefused(C.recordUsage(late), Code.FailedPrecondition, "segment_closed");
    expect(refusal.error.rawMessage).toContain("CREDIT_EXPIRATION was recorded");
    // The refusal wrote nothing, not even the expiration its write stored first (one write: all or nothing).
    expect(closings(await stored(ended))).toEqual([]);
    await C.archiveBalance({ id: live.id });
    expect(closings(await stored(ended)).map((e) => [e.type, e.amount, e.timestamp])).toEqual([["CREDIT_EXPIRATION", -20n, us("2026-09-01T00:00:00Z")]]);
    await expectRefused(C.recordUsage(late), Code.FailedPrecondition, "segment_closed");
    // A period that began after `ended` had ended is not its business: it is simply not in effect.
    const sept = await C.recordUsage({ ...late, usageId: uniq("u"), startingAt: ts("2026-09-01T00:00:00Z"), endingBefore: ts("2026-10-01T00:00:00Z") });
    expect([sept.draws, sept.uncovered]).toEqual([[], 5n]);
    // Another customer's segment is not touched by this customer's writes.
    expect(closings(await stored(untouched))).toEqual([]);
    // The expiration listed before it was stored is the one stored.
    const endedBefore = (JSON.parse(listed) as { balances: { id: string; ledger: unknown[] }[] }).balances.find((b) => b.id === ended.id)!.ledger;
    const endedAfter = (JSON.parse(await nativeJson(cust)) as { balances: { id: string; ledger: unknown[] }[] }).balances.find((b) => b.id === ended.id)!.ledger;
    expect(endedAfter).toEqual(endedBefore);
    // A new balance created with a segment that ended before the window is closed at once.
    const backdated = await credit(cust, [seg(5n, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")]);
    expect(closings(await stored(backdated)).map((e) => [e.type, e.amount, e.timestamp])).toEqual([["CREDIT_EXPIRATION", -5n, us("2026-02-01T00:00:00Z")]]);
    // Manual entries on an ended segment are refused: its expiration has settled it.
    await expectRefused(
      C.addManualLedgerEntry({ id: ended.id, segmentId: ended.accessSchedule!.scheduleItems[0]!.id, amount: 5n, reason: "late" }),
      Code.FailedPrecondition,
      "segment_ended",
    );
    expect(await stored(ended)).toHaveLength(3);
  });

  it("32 usages at exactly ending_before while sweeps run: the next segment pays, the ended one expires once, nothing is over-drawn", async () => {
    now = us("2026-08-01T00:00:00Z");
    const cust = await customer();
    const c = await credit(cust, [seg(100n, "2026-08-01T00:00:00Z", "2026-09-01T00:00:00Z"), seg(100n, "2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z")]);
    const [first, second] = c.accessSchedule!.scheduleItems.map((s) => s.id);
    // The first segment is past its usage window: the usages' writes close it.
    now = us("2026-10-10T00:00:00Z");
    const usages = Array.from({ length: 32 }, () =>
      C.recordUsage({ usageId: uniq("edge"), customerId: cust, productId: "p", amount: 10n, ...secondFrom(ts("2026-09-01T00:00:00Z")) }),
    );
    const sweeps = Array.from({ length: 4 }, () => sweeper.materialiseExpirations());
    const results = await Promise.all(usages);
    await Promise.all(sweeps);
    const drawn = results.flatMap((r) => r.draws);
    expect(drawn.every((d) => d.segmentId === second)).toBe(true);
    expect(drawn.reduce((a, d) => a + d.amount, 0n)).toBe(100n);
    expect(results.reduce((a, r) => a + r.uncovered, 0n)).toBe(220n);
    const s = await stored(c);
    expect(closings(s).map((e) => [e.segmentId, e.amount])).toEqual([[first, -100n]]);
    expect(s.filter((e) => e.segmentId === second).reduce((a, e) => a + e.amount, 0n)).toBe(0n);
  });
});

describe("ArchiveBalance cancels what is left", () => {
  it("expires ended segments, cancels active and future ones at the archive instant; 0 from then on, history kept; twice writes nothing", async () => {
    now = us("2026-08-01T00:00:00Z");
    const cust = await customer();
    const c = await credit(cust, [
      seg(20n, "2026-08-01T00:00:00Z", "2026-09-01T00:00:00Z"),
      seg(100n, "2026-09-01T00:00:00Z", "2026-11-01T00:00:00Z"),
      seg(50n, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"),
    ]);
    const [ended, active, future] = c.accessSchedule!.scheduleItems.map((s) => s.id);
    now = us("2026-09-10T00:00:00Z");
    await C.recordUsage({ usageId: uniq("u"), customerId: cust, productId: "p", amount: 30n, ...secondFrom(ts("2026-09-05T00:00:00Z")) });
    now = us("2026-09-20T00:00:00Z");
    const net = async (at: string) => (await C.getNetBalance({ customerId: cust, balanceAt: ts(at) })).balance;
    expect(await net("2026-09-25T00:00:00Z")).toBe(70n);
    const archived = await C.archiveBalance({ id: c.id });
    expect(archived.balance!.archivedAt).toEqual(ts("2026-09-20T00:00:00Z"));
    const s = await stored(c);
    expect(closings(s).map((e) => [e.type, e.segmentId, e.amount, e.timestamp])).toEqual([
      ["CREDIT_EXPIRATION", ended, -20n, us("2026-09-01T00:00:00Z")],
      ["CREDIT_CANCELED", active, -70n, us("2026-09-20T00:00:00Z")],
      ["CREDIT_CANCELED", future, -50n, us("2026-09-20T00:00:00Z")],
    ]);
    const balanceAt = async (at: string) => (await C.listBalances({ customerId: cust, id: c.id, includeArchived: true, includeBalance: true, balanceAt: ts(at) })).balances[0]!.balance;
    expect(await balanceAt("2026-09-19T23:59:59Z")).toBe(70n); // the past is kept
    expect(await balanceAt("2026-09-20T00:00:00Z")).toBe(0n);
    expect(await balanceAt("2026-11-15T00:00:00Z")).toBe(0n); // the future segment too
    expect(await net("2026-09-25T00:00:00Z")).toBe(0n);

    now = us("2026-09-21T00:00:00Z");
    const again = await C.archiveBalance({ id: c.id });
    expect(again.balance!.archivedAt).toEqual(ts("2026-09-20T00:00:00Z"));
    expect(await stored(c)).toEqual(s);
    await expectRefused(C.addManualLedgerEntry({ id: c.id, segmentId: active!, amount: 5n, reason: "x" }), Code.FailedPrecondition, "balance_archived");
    now = us("2027-01-01T00:00:00Z");
    const listed = await snapshot(cust, ["2026-10-15T00:00:00.000Z"]);
    await sweeper.materialiseExpirations();
    expect(await stored(c)).toEqual(s);
    expect(await snapshot(cust, ["2026-10-15T00:00:00.000Z"])).toEqual(listed);
  });

  it("a postpaid commit, which has no CANCELED type, is trued up at the archive instant", async () => {
    now = us("2026-08-01T00:00:00Z");
    const cust = await customer();
    const p = await commit(cust, "POSTPAID", [seg(300n, "2026-08-01T00:00:00Z", "2026-10-01T00:00:00Z")]);
    now = us("2026-08-15T00:00:00Z");
    await C.archiveBalance({ id: p.id });
    expect(closings(await stored(p)).map((e) => [e.type, e.amount, e.timestamp])).toEqual([["POSTPAID_COMMIT_TRUEUP", -300n, us("2026-08-15T00:00:00Z")]]);
    now = us("2026-11-01T00:00:00Z");
    expect(await sweeper.materialiseExpirations()).toBe(0);
    expect(closings(await stored(p))).toHaveLength(1);
  });
});

describe("AddManualLedgerEntry with an idempotency key", () => {
  it("same key and request returns the first entry; another request under the key is already_exists; nothing written twice", async () => {
    now = us("2026-08-01T00:00:00Z");
    const cust = await customer();
    const c = await credit(cust, [seg(100n, "2026-08-01T00:00:00Z", "2026-12-01T00:00:00Z")]);
    const segmentId = c.accessSchedule!.scheduleItems[0]!.id;
    const key = uniq("mk");
    const req = { id: c.id, customerId: cust, segmentId, amount: -10n, reason: "adjust", idempotencyKey: key };
    const first = await C.addManualLedgerEntry(req);
    now = us("2026-08-02T00:00:00Z"); // a retry later, without a timestamp, is the same request
    const [a, b] = await Promise.all([C.addManualLedgerEntry(req), C.addManualLedgerEntry(req)]);
    expect(a.entry).toEqual(first.entry);
    expect(b.entry).toEqual(first.entry);
    await expectRefused(C.addManualLedgerEntry({ ...req, amount: -11n }), Code.AlreadyExists, "idempotency_key_reused");
    await expectRefused(C.addManualLedgerEntry({ ...req, reason: "other" }), Code.AlreadyExists, "idempotency_key_reused");
    expect((await stored(c)).filter((e) => e.type === "CREDIT_MANUAL")).toHaveLength(1);
    // Without a key, every call writes.
    await C.addManualLedgerEntry({ ...req, idempotencyKey: "" });
    await C.addManualLedgerEntry({ ...req, idempotencyKey: "" });
    expect((await stored(c)).filter((e) => e.type === "CREDIT_MANUAL")).toHaveLength(3);
    // Keys are per tenant-scoped request, and validated.
    await expectRefused(C.addManualLedgerEntry({ ...req, idempotencyKey: "x".repeat(300) }), Code.InvalidArgument);
  });
});

describe("verify covers the credit ledgers", () => {
  it("is ok over everything above; reports a wrong start, a deduction below zero and a wrong closing entry", async () => {
    const admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
    now = us("2026-08-01T00:00:00Z");
    const cust = await customer();
    const c = await credit(cust, [seg(100n, "2026-08-01T00:00:00Z", "2026-09-01T00:00:00Z"), seg(10n, "2026-08-01T00:00:00Z", "2026-10-01T00:00:00Z"), seg(7n, "2026-08-01T00:00:00Z", "2026-10-01T00:00:00Z")]);
    const [a, b, d] = c.accessSchedule!.scheduleItems.map((s) => s.id);
    await C.recordUsage({ usageId: uniq("u"), customerId: cust, productId: "p", amount: 40n, ...secondFrom(ts("2026-08-05T00:00:00Z")) });
    now = us("2026-10-10T00:00:00Z"); // a's usage window (after 9/1) has passed, b's and d's (after 10/1) not
    await sweeper.materialiseExpirations();
    const clean = await admin.verify({});
    expect(clean.discrepancies).toEqual([]);
    expect(clean.ok).toBe(true);

    // Tampering goes through the SQLite file; on PostgreSQL the clean run above is the check.
    if (server.databaseUrl !== undefined) return;
    // Rows no code path writes, put in behind the service's back.
    const db = new Database(server.dbPath);
    try {
      const put = db.prepare(
        "INSERT INTO credit_entries (tenant_id, balance_id, segment_id, type, amount, timestamp, invoice_id, reason, usage_id, created_at) VALUES ('default', ?, ?, ?, ?, ?, NULL, NULL, NULL, 0)",
      );
      put.run(c.id, b, "CREDIT_SEGMENT_START", 1, us("2026-08-01T00:00:00Z"));
      put.run(c.id, b, "CREDIT_AUTOMATED_INVOICE_DEDUCTION", -50, us("2026-08-06T00:00:00Z"));
      put.run(c.id, d, "CREDIT_CANCELED", -3, us("2026-09-02T00:00:00Z"));
      // The unique index refuses a second closing entry for a segment.
      expect(() => put.run(c.id, a, "CREDIT_EXPIRATION", -1, us("2026-09-01T00:00:00Z"))).toThrow(/UNIQUE/);
    } finally {
      db.close();
    }
    const bad = await admin.verify({});
    expect(bad.ok).toBe(false);
    expect(bad.discrepancies.map((x) => [x.accountId, x.field, x.stored, x.recomputed])).toEqual([
      [cust, "credit_segment_start", 11n, 10n],
      [cust, "credit_running", -39n, 0n],
      [cust, "credit_closing", -3n, -7n],
    ]);
  });
});
