/**
 * Effective times of the credits writes (src/domain/credits/effective-time.ts),
 * through a real server over a real store (SQLite, and PostgreSQL in the
 * postgres project) with a clock the test sets: a backdated commit or credit
 * shows the given created_at on the native API (binary and raw Connect JSON),
 * on Metronome's REST path and through @metronome/sdk; backdated archives,
 * rollovers and credit-backs date what they write; every refusal (in the
 * future, too early, not an admin key) changes nothing; keyed writes replay
 * with the same effective_at and refuse another. Verify stays ok.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import Metronome from "@metronome/sdk";
import { AdminService, KeyScope } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { CreditService } from "../gen/tally/credits/v1/credits_pb.js";
import type { Balance, ScheduleItemInputSchema } from "../gen/tally/credits/v1/credits_pb.js";
import { timestampFromMicros } from "../src/services/convert.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";
import { expectRefused, uniq } from "./support/ledger-kit.js";

/** Epoch microseconds of an ISO instant (microseconds after the milliseconds allowed). */
function us(iso: string): bigint {
  const micro = /\.\d{3}(\d{3})Z$/.exec(iso)?.[1] ?? "000";
  return BigInt(Date.parse(iso)) * 1000n + BigInt(micro);
}
function ts(iso: string): Timestamp {
  return timestampFromMicros(us(iso));
}

/** The server's clock: the customers' history below is all before it. */
let now = us("2024-09-01T00:00:00Z");
let server: TestServer;
let C: Client<typeof CreditService>;
let L: Client<typeof LedgerService>;
let A: Client<typeof AdminService>;
let platformKey = "";

beforeAll(async () => {
  server = await startTestServer({ dialects: ["metronome"], clock: () => now });
  C = clientFor(CreditService, server.url, "connect-binary", server.adminKey);
  L = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
  A = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
  platformKey = (await A.createCredential({ kind: "metronome_platform_key", label: "effective" })).secret;
});
afterAll(async () => {
  await server?.close();
});

/** A customer opened on 2024-01-01, as an import would open it. */
async function customer(): Promise<string> {
  const id = uniq("eff");
  await L.createAccount({ id, effectiveAt: ts("2024-01-01T00:00:00Z") });
  return id;
}

type Seg = MessageInitShape<typeof ScheduleItemInputSchema>;
const seg = (amount: bigint, from: string, to: string): Seg => ({ amount, startingAt: ts(from), endingBefore: ts(to) });
const YEAR = (): Seg[] => [seg(1_000_000n, "2024-03-01T00:00:00Z", "2025-03-01T00:00:00Z")];

async function credit(customerId: string, effectiveAt?: string, items: Seg[] = YEAR()): Promise<Balance> {
  const balance = { customerId, name: "promo", priority: 1n, product: { id: "p", name: "P" }, scheduleItems: items };
  return (await C.createCredit({ balance, ...(effectiveAt ? { effectiveAt: ts(effectiveAt) } : {}) })).credit!;
}

/** Every stored row of a customer's balances: what "nothing changed" compares. */
async function everything(customerId: string): Promise<unknown> {
  const balances = await server.tally.store.listCreditBalances("default", customerId, 0n, 1000);
  const out: unknown[] = [];
  for (const b of balances) out.push([b.id, b.createdAt, b.archivedAt, await server.tally.store.listCreditEntries("default", b.id)]);
  return out;
}

/** A usage of April 2024 (its deduction is dated 2024-05-01). */
async function aprilUsage(customerId: string, amount: bigint): Promise<string> {
  const usageId = uniq("u");
  await C.recordUsage({ usageId, customerId, productId: "p", amount, startingAt: ts("2024-04-01T00:00:00Z"), endingBefore: ts("2024-05-01T00:00:00Z") });
  return usageId;
}

async function balanceAt(customerId: string, id: string, at: string): Promise<bigint> {
  const r = await C.listBalances({ customerId, id, includeBalance: true, includeArchived: true, balanceAt: ts(at) });
  return r.balances[0]!.balance!;
}

async function ledgerOf(customerId: string, id: string): Promise<[string, string, bigint][]> {
  const r = await C.listBalances({ customerId, id, includeLedgers: true, includeArchived: true, balanceAt: ts("2024-09-01T00:00:00Z") });
  return r.balances[0]!.ledger.map((e) => [e.type, new Date(Number(e.timestamp!.seconds) * 1000).toISOString(), e.amount]);
}

async function post(path: string, body: unknown, key: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.text() };
}

async function expectVerified(): Promise<void> {
  const v = await A.verify({});
  expect(v.discrepancies).toEqual([]);
  expect(v.ok).toBe(true);
}

describe("backdated creation", () => {
  it("shows the given created_at on the native API, its Connect JSON, Metronome's REST path and @metronome/sdk", async () => {
    const cust = await customer();
    const cred = await credit(cust, "2024-02-10T08:30:00.123456Z");
    expect(cred.createdAt).toEqual(ts("2024-02-10T08:30:00.123456Z"));
    const { commit } = await C.createCommit({
      type: "PREPAID",
      balance: { customerId: cust, name: "cmt", priority: 2n, product: { id: "p", name: "P" }, scheduleItems: YEAR() },
      effectiveAt: ts("2024-02-11T09:00:00.250Z"),
    });
    expect(commit!.createdAt).toEqual(ts("2024-02-11T09:00:00.250Z"));
    // Stored as given; the opening entries keep the commit time beside it.
    const entries = await server.tally.store.listCreditEntries("default", cred.id);
    expect(entries.map((e) => [e.type, e.createdAt])).toEqual([["CREDIT_SEGMENT_START", now]]);

    const listed = await C.listBalances({ customerId: cust });
    expect(listed.balances.map((b) => [b.id, b.createdAt])).toEqual([
      [cred.id, ts("2024-02-10T08:30:00.123456Z")],
      [commit!.id, ts("2024-02-11T09:00:00.250Z")],
    ]);
    const json = await post("/tally.credits.v1.CreditService/ListBalances", { customerId: cust }, server.adminKey);
    expect(json.status).toBe(200);
    expect(json.body).toContain('"createdAt":"2024-02-10T08:30:00.123456Z"');
    expect(json.body).toContain('"createdAt":"2024-02-11T09:00:00.250Z"');

    // Metronome prints a commit's created_at (milliseconds) and no created_at on a credit, as its contract says.
    const rest = await post("/v1/contracts/customerBalances/list", { customer_id: cust }, platformKey);
    expect(rest.status).toBe(200);
    const data = (JSON.parse(rest.body) as { data: Record<string, unknown>[] }).data;
    expect(data.map((b) => [b.id, b.created_at])).toEqual([
      [cred.id, undefined],
      [commit!.id, "2024-02-11T09:00:00.250Z"],
    ]);
    expect(rest.body).toContain(`"archived_at":null,"created_at":"2024-02-11T09:00:00.250Z"`);
    const commits = await post("/v1/contracts/customerCommits/list", { customer_id: cust }, platformKey);
    expect((JSON.parse(commits.body) as { data: Record<string, unknown>[] }).data.map((b) => b.created_at)).toEqual(["2024-02-11T09:00:00.250Z"]);

    const sdk = new Metronome({ bearerToken: platformKey, baseURL: server.url, maxRetries: 0 });
    const seen: Record<string, unknown>[] = [];
    for await (const b of sdk.v1.contracts.listBalances({ customer_id: cust })) seen.push(b as unknown as Record<string, unknown>);
    expect(seen).toEqual(data);
    expect(seen.map((b) => b.created_at)).toEqual([undefined, "2024-02-11T09:00:00.250Z"]);
    await expectVerified();
  });

  it("refuses a future time, one before the customer's opening or latest creation, and sub-microsecond times; nothing is written", async () => {
    const cust = await customer();
    await credit(cust, "2024-03-01T00:00:00Z");
    const before = await everything(cust);
    const future = await expectRefused(credit(cust, "2024-09-01T00:00:00.000001Z"), Code.InvalidArgument, "effective_at_in_future");
    expect(future.error.rawMessage).toContain("is in the future");
    const opened = await expectRefused(credit(cust, "2023-12-31T23:59:59Z"), Code.FailedPrecondition, "effective_at_too_early");
    // Before the opening and before the latest creation: the latest floor is named.
    expect(opened.metadata).toMatchObject({ customer_id: cust, latest_effective_at: "2024-03-01T00:00:00.000000Z" });
    const early = await expectRefused(credit(cust, "2024-02-29T23:59:59.999999Z"), Code.FailedPrecondition, "effective_at_too_early");
    expect(early.error.rawMessage).toContain("latest commit or credit");
    await expectRefused(
      C.createCommit({ type: "POSTPAID", balance: { customerId: cust, product: { id: "p" }, scheduleItems: YEAR() }, effectiveAt: { seconds: 1_710_000_000n, nanos: 1 } }),
      Code.InvalidArgument,
      "invalid_effective_at",
    );
    expect(await everything(cust)).toEqual(before);

    // Before the customer's first balance, only its opening binds: 2024-01-01 itself is fine.
    const fresh = await customer();
    expect((await credit(fresh, "2024-01-01T00:00:00Z")).createdAt).toEqual(ts("2024-01-01T00:00:00Z"));
    await expectRefused(credit(fresh, "2023-12-31T23:59:59.999999Z"), Code.FailedPrecondition, "effective_at_too_early");
    // The same instant as the latest creation is allowed; a creation now follows it.
    await credit(cust, "2024-03-01T00:00:00Z");
    expect((await credit(cust)).createdAt).toEqual(timestampFromMicros(now));
    await expectRefused(credit(cust, "2024-08-31T00:00:00Z"), Code.FailedPrecondition, "effective_at_too_early");
  });
});

describe("backdated archive", () => {
  it("dates archived_at and the cancellation; refused before a deduction, a stored expiration or the creation, with nothing written", async () => {
    const cust = await customer();
    const cred = await credit(cust, "2024-03-01T00:00:00Z");
    await aprilUsage(cust, 300_000n);
    const before = await everything(cust);
    const ded = await expectRefused(C.archiveBalance({ id: cred.id, effectiveAt: ts("2024-04-15T00:00:00Z") }), Code.FailedPrecondition, "effective_at_too_early");
    expect(ded.metadata).toMatchObject({ balance_id: cred.id, latest_effective_at: "2024-05-01T00:00:00.000000Z" });
    expect(ded.error.rawMessage).toContain("CREDIT_AUTOMATED_INVOICE_DEDUCTION");
    await expectRefused(C.archiveBalance({ id: cred.id, effectiveAt: ts("2024-09-01T00:00:01Z") }), Code.InvalidArgument, "effective_at_in_future");
    expect(await everything(cust)).toEqual(before);

    const { balance } = await C.archiveBalance({ id: cred.id, effectiveAt: ts("2024-06-01T00:00:00Z") });
    expect(balance!.archivedAt).toEqual(ts("2024-06-01T00:00:00Z"));
    expect(await ledgerOf(cust, cred.id)).toEqual([
      ["CREDIT_SEGMENT_START", "2024-03-01T00:00:00.000Z", 1_000_000n],
      ["CREDIT_AUTOMATED_INVOICE_DEDUCTION", "2024-05-01T00:00:00.000Z", -300_000n],
      ["CREDIT_CANCELED", "2024-06-01T00:00:00.000Z", -700_000n],
    ]);
    expect(await balanceAt(cust, cred.id, "2024-05-31T23:59:59Z")).toBe(700_000n);
    expect(await balanceAt(cust, cred.id, "2024-06-01T00:00:00Z")).toBe(0n);
    // Archiving again keeps the first time, whatever effective_at says.
    expect((await C.archiveBalance({ id: cred.id, effectiveAt: ts("2024-08-01T00:00:00Z") })).balance!.archivedAt).toEqual(ts("2024-06-01T00:00:00Z"));

    // Metronome prints the effective archive time and the cancellation's date.
    const rest = await post("/v1/contracts/customerBalances/list", { customer_id: cust, include_archived: true, include_ledgers: true }, platformKey);
    expect(rest.body).toContain(`"archived_at":"2024-06-01T00:00:00.000Z"`);
    expect(rest.body).toContain(`{"type":"CREDIT_CANCELED","timestamp":"2024-06-01T00:00:00.000Z","amount":-70,"segment_id":"${cred.accessSchedule!.scheduleItems[0]!.id}"}`);
    await expectVerified();
  });

  it("a segment that ended after the archive but is not closed is canceled then; a stored expiration and the creation bind it", async () => {
    const cust = await customer();
    // Ended 2024-08-15, inside the usage window on 2024-09-01: not closed yet.
    const recent = await credit(cust, "2024-03-01T00:00:00Z", [seg(100n, "2024-03-01T00:00:00Z", "2024-08-15T00:00:00Z")]);
    await expectRefused(C.archiveBalance({ id: recent.id, effectiveAt: ts("2024-02-29T00:00:00Z") }), Code.FailedPrecondition, "effective_at_too_early");
    await C.archiveBalance({ id: recent.id, effectiveAt: ts("2024-08-01T00:00:00Z") });
    expect(await ledgerOf(cust, recent.id)).toEqual([
      ["CREDIT_SEGMENT_START", "2024-03-01T00:00:00.000Z", 100n],
      ["CREDIT_CANCELED", "2024-08-01T00:00:00.000Z", -100n],
    ]);
    // Ended 2024-06-01, past its usage window: its expiration is stored (dated then) when it is created.
    const old = await credit(cust, "2024-03-02T00:00:00Z", [seg(100n, "2024-03-01T00:00:00Z", "2024-06-01T00:00:00Z")]);
    const before = await everything(cust);
    const closed = await expectRefused(C.archiveBalance({ id: old.id, effectiveAt: ts("2024-05-01T00:00:00Z") }), Code.FailedPrecondition, "effective_at_too_early");
    expect(closed.error.rawMessage).toContain("CREDIT_EXPIRATION");
    expect(await everything(cust)).toEqual(before);
    await C.archiveBalance({ id: old.id, effectiveAt: ts("2024-06-01T00:00:00Z") });
    expect(await ledgerOf(cust, old.id)).toEqual([
      ["CREDIT_SEGMENT_START", "2024-03-01T00:00:00.000Z", 100n],
      ["CREDIT_EXPIRATION", "2024-06-01T00:00:00.000Z", -100n],
    ]);
    await expectVerified();
  });
});

describe("backdated rollover", () => {
  it("dates the new balance and the rollover; replays with the same effective_at, refuses another; refusals write nothing", async () => {
    const cust = await customer();
    const cred = await credit(cust, "2024-03-01T00:00:00Z");
    await aprilUsage(cust, 300_000n);
    const key = uniq("ro");
    const ask = (effectiveAt: string | undefined, extra: { at?: Timestamp } = {}) =>
      C.rolloverBalance({ id: cred.id, endingBefore: ts("2025-07-01T00:00:00Z"), idempotencyKey: key, ...(effectiveAt ? { effectiveAt: ts(effectiveAt) } : {}), ...extra });
    const before = await everything(cust);
    await expectRefused(ask("2024-09-02T00:00:00Z"), Code.InvalidArgument, "effective_at_in_future");
    // `at` defaults to effective_at, so a deduction after it is that field's mistake.
    const early = await expectRefused(ask("2024-04-20T00:00:00Z"), Code.FailedPrecondition, "effective_at_too_early");
    expect(early.metadata).toMatchObject({ balance_id: cred.id, latest_effective_at: "2024-05-01T00:00:00.000000Z" });
    await expectRefused(ask("2024-06-01T00:00:00Z", { at: ts("2024-06-02T00:00:00Z") }), Code.InvalidArgument, "invalid_at");
    // The new balance is a creation: not before the customer's latest one.
    await credit(cust, "2024-05-15T00:00:00Z", [seg(1n, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")]);
    const before2 = await everything(cust);
    expect(before2).not.toEqual(before);
    await expectRefused(ask("2024-05-10T00:00:00Z"), Code.FailedPrecondition, "effective_at_too_early");
    expect(await everything(cust)).toEqual(before2);

    const r = await ask("2024-06-01T00:00:00Z");
    expect([r.replayed, r.amount, r.balance!.createdAt]).toEqual([false, 700_000n, ts("2024-06-01T00:00:00Z")]);
    expect(r.rolloverEntries.map((e) => [e.type, e.timestamp, e.amount])).toEqual([["CREDIT_ROLLOVER", ts("2024-06-01T00:00:00Z"), -700_000n]]);
    expect(r.balance!.accessSchedule!.scheduleItems.map((s) => s.startingAt)).toEqual([ts("2024-06-01T00:00:00Z")]);
    const again = await ask("2024-06-01T00:00:00Z");
    expect([again.replayed, again.balance!.id, again.balance!.createdAt]).toEqual([true, r.balance!.id, ts("2024-06-01T00:00:00Z")]);
    await expectRefused(ask("2024-06-02T00:00:00Z"), Code.AlreadyExists, "idempotency_key_reused");
    await expectRefused(ask(undefined), Code.AlreadyExists, "idempotency_key_reused");
    expect(await balanceAt(cust, r.balance!.id, "2024-06-01T00:00:00Z")).toBe(700_000n);
    expect(await balanceAt(cust, cred.id, "2024-06-01T00:00:00Z")).toBe(0n);
    await expectVerified();
  });
});

describe("backdated credit-back", () => {
  it("dates the *_CREDITED entries; not before the deduction; replays with the same effective_at, refuses another", async () => {
    const cust = await customer();
    const cred = await credit(cust, "2024-03-01T00:00:00Z");
    const usageId = await aprilUsage(cust, 300_000n);
    const key = uniq("cb");
    const ask = (effectiveAt: string | undefined) =>
      C.creditBackUsage({ usageId, customerId: cust, amount: 100_000n, idempotencyKey: key, ...(effectiveAt ? { effectiveAt: ts(effectiveAt) } : {}) });
    const before = await everything(cust);
    await expectRefused(ask("2024-09-01T00:00:00.000001Z"), Code.InvalidArgument, "effective_at_in_future");
    const early = await expectRefused(ask("2024-04-20T00:00:00Z"), Code.FailedPrecondition, "effective_at_too_early");
    expect(early.metadata).toMatchObject({ balance_id: cred.id, latest_effective_at: "2024-05-01T00:00:00.000000Z" });
    expect(await everything(cust)).toEqual(before);

    const r = await ask("2024-05-10T00:00:00Z");
    expect([r.replayed, r.credits.map((c) => c.amount), r.uncredited]).toEqual([false, [100_000n], 200_000n]);
    expect((await ledgerOf(cust, cred.id)).at(-1)).toEqual(["CREDIT_CREDITED", "2024-05-10T00:00:00.000Z", 100_000n]);
    expect(await balanceAt(cust, cred.id, "2024-05-09T00:00:00Z")).toBe(700_000n);
    expect(await balanceAt(cust, cred.id, "2024-05-10T00:00:00Z")).toBe(800_000n);
    const again = await ask("2024-05-10T00:00:00Z");
    expect([again.replayed, again.uncredited]).toEqual([true, 200_000n]);
    await expectRefused(ask("2024-05-11T00:00:00Z"), Code.AlreadyExists, "idempotency_key_reused");
    await expectRefused(ask(undefined), Code.AlreadyExists, "idempotency_key_reused");
    // A second credit-back may not go behind the first one's date on that segment.
    await expectRefused(
      C.creditBackUsage({ usageId, customerId: cust, amount: 1n, idempotencyKey: uniq("cb"), effectiveAt: ts("2024-05-09T00:00:00Z") }),
      Code.FailedPrecondition,
      "effective_at_too_early",
    );
    await expectVerified();
  });
});

describe("who may backdate", () => {
  it("an account key cannot set effective_at (nor write at all); Metronome's REST path has no field for it; nothing is written", async () => {
    const cust = await customer();
    const cred = await credit(cust, "2024-03-01T00:00:00Z");
    const key = await A.createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: cust });
    const K = clientFor(CreditService, server.url, "connect-json", key.secret);
    const before = await everything(cust);
    const balance = { customerId: cust, product: { id: "p" }, scheduleItems: YEAR() };
    await expectRefused(K.createCredit({ balance, effectiveAt: ts("2024-04-01T00:00:00Z") }), Code.PermissionDenied, "admin_key_required");
    await expectRefused(K.createCommit({ type: "PREPAID", balance, effectiveAt: ts("2024-04-01T00:00:00Z") }), Code.PermissionDenied, "admin_key_required");
    await expectRefused(K.archiveBalance({ id: cred.id, effectiveAt: ts("2024-04-01T00:00:00Z") }), Code.PermissionDenied, "admin_key_required");
    await expectRefused(
      K.rolloverBalance({ id: cred.id, endingBefore: ts("2025-07-01T00:00:00Z"), idempotencyKey: uniq("k"), effectiveAt: ts("2024-04-01T00:00:00Z") }),
      Code.PermissionDenied,
      "admin_key_required",
    );
    // Metronome's create bodies have no created_at: an unknown field is 400.
    const rest = await post(
      "/v1/contracts/customerCredits/create",
      {
        customer_id: cust,
        product_id: "p",
        created_at: "2024-04-01T00:00:00.000Z",
        access_schedule: { schedule_items: [{ amount: 1, starting_at: "2024-03-01T00:00:00.000Z", ending_before: "2025-03-01T00:00:00.000Z" }] },
      },
      platformKey,
    );
    expect(rest.status).toBe(400);
    expect(await everything(cust)).toEqual(before);
  });
});
