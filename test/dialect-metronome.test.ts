/**
 * The Metronome dialect over a real server: the /v1/contracts/ POST endpoints
 * as Metronome's own clients call them (raw fetch, JSON body,
 * `Authorization: Bearer <platform key>`), every body compared byte for byte.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@connectrpc/connect";
import { AdminService, KeyScope } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { CreditService } from "../gen/tally/credits/v1/credits_pb.js";
import Metronome from "@metronome/sdk";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

/** A clock the test sets. */
let now = micros("2026-08-01T00:00:00.000Z");
function micros(iso: string): bigint {
  return BigInt(Date.parse(iso)) * 1000n;
}
/** A service period for RecordUsage. */
function period(from: string, to: string) {
  const t = (iso: string) => ({ seconds: BigInt(Date.parse(iso) / 1000), nanos: 0 });
  return { startingAt: t(from), endingBefore: t(to) };
}

const USD_ID = "2714e483-4ff1-48e4-9e25-ac732e8f24f2";
let server: TestServer;
const admin = (key = server.adminKey): Client<typeof AdminService> => clientFor(AdminService, server.url, "connect-binary", key);
const ledger = (key = server.adminKey): Client<typeof LedgerService> => clientFor(LedgerService, server.url, "connect-binary", key);
const native = (key = server.adminKey): Client<typeof CreditService> => clientFor(CreditService, server.url, "connect-binary", key);

/** Tenant A's platform key, and tenant B's admin key. */
let token = "";
let bKey = "";

interface Reply {
  readonly status: number;
  readonly body: string;
}

/** POST as a Metronome client sends it; `null` sends no Authorization header. */
async function post(path: string, body: unknown, bearer: string | null = token): Promise<Reply> {
  const headers = new Headers({ "content-type": "application/json" });
  if (bearer !== null) headers.set("authorization", `Bearer ${bearer}`);
  const res = await fetch(`${server.url}${path}`, { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body) });
  return { status: res.status, body: await res.text() };
}

const LIST = "/v1/contracts/customerBalances/list";
const msg = (m: string) => JSON.stringify({ message: m });

beforeAll(async () => {
  server = await startTestServer({ dialects: ["metronome"], clock: () => now });
  const res = await admin().createCredential({ kind: "metronome_platform_key", label: "test" });
  token = res.secret;
  for (const id of ["cust-a", "cust-many", "cust-frac", "cust-net", "cust-uniq", "cust-c", "cust-f", "cust-long", "cust-order"]) await ledger().createAccount({ id });
  bKey = (await admin().createTenant({ id: "mtr-b", name: "B" })).adminKeySecret;
  await ledger(bKey).createAccount({ id: "cust-b" });
});
afterAll(async () => {
  await server?.close();
});

describe("Metronome dialect", () => {
  it("the worked example: a 100-cent credit for 9/1-10/1 and September's 63 cents list byte for byte: +100 @ 9/1, -63 @ 10/1, -37 @ 10/1", async () => {
    expect(token).toMatch(/^mtr_[0-9a-f]{20}_[0-9a-f]{40}$/);
    const created = await post("/v1/contracts/customerCredits/create", {
      customer_id: "cust-a",
      name: "Promo",
      priority: 1,
      product_id: "prod-a",
      product_name: "Product A",
      access_schedule: {
        credit_type_id: USD_ID,
        schedule_items: [{ amount: 100, starting_at: "2026-09-01T00:00:00.000Z", ending_before: "2026-10-01T00:00:00.000Z" }],
      },
    });
    expect(created.status).toBe(200);
    const id = (JSON.parse(created.body) as { data: { id: string } }).data.id;
    expect(created.body).toBe(JSON.stringify({ data: { id } }));
    const first = await post(LIST, { customer_id: "cust-a" });
    const seg = (JSON.parse(first.body) as { data: { access_schedule: { schedule_items: { id: string }[] } }[] }).data[0]!.access_schedule.schedule_items[0]!.id;
    const base = {
      id,
      type: "CREDIT",
      name: "Promo",
      priority: 1,
      product: { id: "prod-a", name: "Product A" },
      access_schedule: {
        credit_type: { id: USD_ID, name: "USD (cents)" },
        schedule_items: [{ id: seg, amount: 100, starting_at: "2026-09-01T00:00:00.000Z", ending_before: "2026-10-01T00:00:00.000Z" }],
      },
      applicable_product_ids: [],
      applicable_product_tags: [],
      custom_fields: {},
      archived_at: null,
    };
    // No balance, no ledger, no contract, no created_at (a credit) unless asked.
    expect([first.status, first.body]).toEqual([200, JSON.stringify({ data: [base], next_page: null })]);

    // September's usage, 63 cents (630 000 micro-dollars), recorded when its invoice is final (10/1).
    now = micros("2026-10-01T00:00:00.000Z");
    const usage = await native().recordUsage({ usageId: "u1", customerId: "cust-a", productId: "prod-a", amount: 630_000n, ...period("2026-09-01T00:00:00.000Z", "2026-10-01T00:00:00.000Z"), invoiceId: "inv-1" });
    expect([usage.draws.map((d) => [d.balanceId, d.amount]), usage.uncovered]).toEqual([[[id, 630_000n]], 0n]);

    // The deduction is dated 10/1, when the credit no longer counts: 100 all September, then 0.
    const at = async (iso: string) => post(LIST, { customer_id: "cust-a", include_balance: true, balance_at: iso });
    expect((await at("2026-09-10T00:00:00.000Z")).body).toBe(JSON.stringify({ data: [{ ...base, balance: 100 }], next_page: null }));
    expect((await at("2026-09-30T23:59:59.999Z")).body).toBe(JSON.stringify({ data: [{ ...base, balance: 100 }], next_page: null }));
    expect((await at("2026-10-02T00:00:00.000Z")).body).toBe(JSON.stringify({ data: [{ ...base, balance: 0 }], next_page: null }));

    const withLedger = await post(LIST, { customer_id: "cust-a", include_ledgers: true, include_balance: true, balance_at: "2026-10-02T00:00:00.000Z" });
    expect([withLedger.status, withLedger.body]).toEqual([
      200,
      JSON.stringify({
        data: [
          {
            ...base,
            balance: 0,
            ledger: [
              { type: "CREDIT_SEGMENT_START", timestamp: "2026-09-01T00:00:00.000Z", amount: 100, segment_id: seg },
              { type: "CREDIT_AUTOMATED_INVOICE_DEDUCTION", timestamp: "2026-10-01T00:00:00.000Z", amount: -63, segment_id: seg, invoice_id: "inv-1" },
              { type: "CREDIT_EXPIRATION", timestamp: "2026-10-01T00:00:00.000Z", amount: -37, segment_id: seg },
            ],
          },
        ],
        next_page: null,
      }),
    ]);
  });

  it("0.8 cents round-trips exactly on the REST path and the native API", async () => {
    now = micros("2026-08-01T00:00:00.000Z");
    const r = await post("/v1/contracts/customerCommits/create", {
      customer_id: "cust-frac",
      type: "PREPAID",
      name: "Frac",
      priority: 5,
      product_id: "p",
      access_schedule: { schedule_items: [{ amount: 0.8, starting_at: "2026-08-01T00:00:00.000Z", ending_before: "2026-12-01T00:00:00.000Z" }] },
    });
    expect(r.status).toBe(200);
    // The native API sees exactly 8000 micro-dollars (0.8 cents).
    const nat = await native().listBalances({ customerId: "cust-frac", includeBalance: true });
    expect(nat.balances.map((b) => [b.accessSchedule!.scheduleItems[0]!.amount, b.balance])).toEqual([[8000n, 8000n]]);
    // Native 0.3 cents (3000) reads back as 0.3 on REST, and the sum is 1.1, not 1.1000000000000001.
    await native().createCredit({
      balance: { customerId: "cust-frac", name: "N", priority: 1n, product: { id: "p", name: "p" }, scheduleItems: [{ amount: 3000n, startingAt: { seconds: BigInt(Date.parse("2026-08-01T00:00:00.000Z") / 1000), nanos: 0 }, endingBefore: { seconds: BigInt(Date.parse("2026-12-01T00:00:00.000Z") / 1000), nanos: 0 } }] },
    });
    const list = await post(LIST, { customer_id: "cust-frac", include_balance: true });
    const amounts = list.body.match(/"(amount|balance)":[^,}]+/g);
    expect(amounts!.sort()).toEqual(['"amount":0.3', '"amount":0.8', '"balance":0.3', '"balance":0.8'].sort());
    const net = await post("/v1/contracts/customerBalances/getNetBalance", { customer_id: "cust-frac" });
    expect([net.status, net.body]).toEqual([200, JSON.stringify({ data: { balance: 1.1, credit_type_id: USD_ID } })]);
    // More decimals than the credit type holds are refused, and nothing is written.
    const tooFine = await post("/v1/contracts/customerCommits/create", {
      customer_id: "cust-frac",
      type: "PREPAID",
      priority: 5,
      product_id: "p",
      access_schedule: { schedule_items: [{ amount: 0.00001, starting_at: "2026-08-01T00:00:00.000Z", ending_before: "2026-12-01T00:00:00.000Z" }] },
    });
    expect(tooFine.status).toBe(400);
    expect((await native().listBalances({ customerId: "cust-frac" })).balances).toHaveLength(2);
    // A manual entry of -0.3 on the 0.8 commit leaves exactly 0.5.
    const commit = nat.balances[0]!;
    const manual = await post("/v1/contracts/addManualBalanceLedgerEntry", { id: commit.id, customer_id: "cust-frac", segment_id: commit.accessSchedule!.scheduleItems[0]!.id, amount: -0.3, reason: "adjust" });
    expect([manual.status, manual.body]).toEqual([200, "{}"]);
    const after = await post(LIST, { customer_id: "cust-frac", id: commit.id, include_balance: true });
    expect(after.body).toContain('"balance":0.5}');
  });

  it("paging 500 commits with limit 25 returns each exactly once; limit and next_page are checked", async () => {
    now = micros("2026-08-01T00:00:00.000Z");
    const ids = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const r = await post("/v1/contracts/customerCommits/create", {
        customer_id: "cust-many",
        type: "PREPAID",
        name: `c${i}`,
        priority: 1,
        product_id: "p",
        access_schedule: { schedule_items: [{ amount: 1, starting_at: "2026-08-01T00:00:00.000Z", ending_before: "2027-08-01T00:00:00.000Z" }] },
      });
      ids.add((JSON.parse(r.body) as { data: { id: string } }).data.id);
    }
    expect(ids.size).toBe(500);
    const seen: string[] = [];
    let next: string | null = null;
    let pages = 0;
    let firstCursor = "";
    do {
      const body: Record<string, unknown> = { customer_id: "cust-many", limit: 25, ...(next !== null ? { next_page: next } : {}) };
      const r = await post(LIST, body);
      expect(r.status).toBe(200);
      const page = JSON.parse(r.body) as { data: { id: string }[]; next_page: string | null };
      expect(page.data.length).toBe(25);
      seen.push(...page.data.map((d) => d.id));
      next = page.next_page;
      if (pages === 0) firstCursor = next!;
      pages++;
    } while (next !== null && pages < 30);
    expect(pages).toBe(20);
    expect(seen.length).toBe(500);
    expect(new Set(seen)).toEqual(ids);
    // customerCommits/list pages the same way; customerCredits/list sees none of them.
    const commits = await post("/v1/contracts/customerCommits/list", { customer_id: "cust-many", limit: 25 });
    expect((JSON.parse(commits.body) as { data: unknown[] }).data).toHaveLength(25);
    const credits = await post("/v1/contracts/customerCredits/list", { customer_id: "cust-many" });
    expect([credits.status, credits.body]).toEqual([200, '{"data":[],"next_page":null}']);

    const forged = msg("next_page is invalid for this request");
    expect(await post(LIST, { customer_id: "cust-many", limit: 25, next_page: "abc.def" })).toEqual({ status: 400, body: forged });
    // One signature character changed in the middle (the last ones carry unused bits, and may already be "AA").
    const at = firstCursor.length - 10;
    const tampered = firstCursor.slice(0, at) + (firstCursor[at] === "A" ? "B" : "A") + firstCursor.slice(at + 1);
    expect(await post(LIST, { customer_id: "cust-many", limit: 25, next_page: tampered })).toEqual({ status: 400, body: forged });
    // A real cursor replayed against another body is refused too.
    expect(await post(LIST, { customer_id: "cust-many", limit: 24, next_page: firstCursor })).toEqual({ status: 400, body: forged });
    for (const limit of [0, 26]) {
      expect(await post(LIST, { customer_id: "cust-many", limit })).toEqual({ status: 400, body: msg("limit must be between 1 and 25") });
    }
  });

  it("unknown and foreign customers are 404 with identical bodies; no key and bad keys are 401", async () => {
    const unknown = await post(LIST, { customer_id: "nobody" });
    const foreign = await post(LIST, { customer_id: "cust-b" });
    expect(unknown).toEqual({ status: 404, body: msg("Customer not found") });
    expect(foreign).toEqual(unknown);
    const netForeign = await post("/v1/contracts/customerBalances/getNetBalance", { customer_id: "cust-b" });
    expect(netForeign).toEqual(unknown);
    const unauthorized = { status: 401, body: msg("Unauthorized") };
    expect(await post(LIST, { customer_id: "cust-a" }, null)).toEqual(unauthorized);
    expect(await post(LIST, { customer_id: "cust-a" }, "garbage")).toEqual(unauthorized);
    expect(await post(LIST, { customer_id: "cust-a" }, token.slice(0, -1) + (token.endsWith("0") ? "1" : "0"))).toEqual(unauthorized);
  });

  it("reusing a uniqueness_key is 409 and writes nothing", async () => {
    const body = {
      customer_id: "cust-uniq",
      priority: 1,
      product_id: "p",
      uniqueness_key: "k-1",
      access_schedule: { schedule_items: [{ amount: 10, starting_at: "2026-08-01T00:00:00.000Z", ending_before: "2026-12-01T00:00:00.000Z" }] },
    };
    expect((await post("/v1/contracts/customerCredits/create", body)).status).toBe(200);
    const again = await post("/v1/contracts/customerCredits/create", body);
    expect(again).toEqual({ status: 409, body: msg('uniqueness_key "k-1" was already used') });
    const list = await post("/v1/contracts/customerCredits/list", { customer_id: "cust-uniq" });
    expect((JSON.parse(list.body) as { data: unknown[] }).data).toHaveLength(1);
  });

  it("getNetBalance sums what the filters select", async () => {
    now = micros("2026-08-01T00:00:00.000Z");
    const sched = (amount: number) => ({ schedule_items: [{ amount, starting_at: "2026-08-01T00:00:00.000Z", ending_before: "2026-12-01T00:00:00.000Z" }] });
    await post("/v1/contracts/customerCredits/create", { customer_id: "cust-net", priority: 1, product_id: "p", custom_fields: { campaign: "x" }, access_schedule: sched(100) });
    await post("/v1/contracts/customerCommits/create", { customer_id: "cust-net", type: "PREPAID", priority: 1, product_id: "p", access_schedule: sched(250.25) });
    const net = (filters?: unknown) => post("/v1/contracts/customerBalances/getNetBalance", { customer_id: "cust-net", credit_type_id: USD_ID, ...(filters ? { filters } : {}) });
    const body = (b: number) => ({ status: 200, body: JSON.stringify({ data: { balance: b, credit_type_id: USD_ID } }) });
    expect(await net()).toEqual(body(350.25));
    expect(await net([{ balance_types: ["CREDIT"] }])).toEqual(body(100));
    expect(await net([{ balance_types: ["PREPAID_COMMIT"] }])).toEqual(body(250.25));
    expect(await net([{ custom_fields: { campaign: "y" } }])).toEqual(body(0));
    // OR'd filters; AND'd conditions.
    expect(await net([{ custom_fields: { campaign: "x" } }, { balance_types: ["PREPAID_COMMIT"] }])).toEqual(body(350.25));
    expect(await net([{ custom_fields: { campaign: "x" }, balance_types: ["PREPAID_COMMIT"] }])).toEqual(body(0));
  });
  it("a contract-level commit: created_at, description, uniqueness_key, contract; manual entries carry reason", async () => {
    now = micros("2026-08-02T03:04:05.678Z");
    const r = await post("/v1/contracts/customerCommits/create", {
      customer_id: "cust-c",
      type: "POSTPAID",
      name: "Annual",
      description: "the annual commit",
      priority: 100,
      product_id: "prod-c",
      contract_id: "contract-1",
      applicable_product_ids: ["prod-x"],
      applicable_product_tags: ["compute"],
      custom_fields: { region: "eu" },
      uniqueness_key: "annual-1",
      access_schedule: { credit_type_id: USD_ID, schedule_items: [{ amount: 10000000, starting_at: "2026-09-01T00:00:00.000Z", ending_before: "2027-09-01T00:00:00.000Z" }] },
    });
    expect(r.status).toBe(200);
    const id = (JSON.parse(r.body) as { data: { id: string } }).data.id;
    // Customer-level only by default: the contract commit is not listed.
    expect(await post(LIST, { customer_id: "cust-c" })).toEqual({ status: 200, body: '{"data":[],"next_page":null}' });
    const listed = await post("/v1/contracts/customerCommits/list", { customer_id: "cust-c", include_contract_commits: true });
    const seg = (JSON.parse(listed.body) as { data: { access_schedule: { schedule_items: { id: string }[] } }[] }).data[0]!.access_schedule.schedule_items[0]!.id;
    const base = {
      id,
      type: "POSTPAID",
      name: "Annual",
      description: "the annual commit",
      priority: 100,
      product: { id: "prod-c", name: "prod-c" },
      access_schedule: {
        credit_type: { id: USD_ID, name: "USD (cents)" },
        schedule_items: [{ id: seg, amount: 10000000, starting_at: "2026-09-01T00:00:00.000Z", ending_before: "2027-09-01T00:00:00.000Z" }],
      },
      applicable_product_ids: ["prod-x"],
      applicable_product_tags: ["compute"],
      contract: { id: "contract-1" },
      custom_fields: { region: "eu" },
      archived_at: null,
      created_at: "2026-08-02T03:04:05.678Z",
      uniqueness_key: "annual-1",
    };
    expect(listed).toEqual({ status: 200, body: JSON.stringify({ data: [base], next_page: null }) });
    // A manual entry naming the wrong contract is refused as not found; the right one is written.
    const entry = { id, customer_id: "cust-c", segment_id: seg, amount: -12.5, reason: "goodwill", contract_id: "contract-2", timestamp: "2026-09-02T00:00:00.000Z" };
    expect(await post("/v1/contracts/addManualBalanceLedgerEntry", entry)).toEqual({ status: 404, body: msg("Balance not found") });
    expect(await post("/v1/contracts/addManualBalanceLedgerEntry", { ...entry, contract_id: "contract-1" })).toEqual({ status: 200, body: "{}" });
    const led = await post(LIST, { customer_id: "cust-c", include_contract_balances: true, include_ledgers: true, include_balance: true, balance_at: "2026-09-03T00:00:00.000Z" });
    expect(led.body).toBe(
      JSON.stringify({
        data: [
          {
            ...base,
            balance: 9999987.5,
            ledger: [
              { type: "POSTPAID_COMMIT_INITIAL_BALANCE", timestamp: "2026-09-01T00:00:00.000Z", amount: 10000000, segment_id: seg },
              // Metronome's manual entries are {type, timestamp, amount, reason}: no segment_id.
              { type: "POSTPAID_COMMIT_MANUAL", timestamp: "2026-09-02T00:00:00.000Z", amount: -12.5, reason: "goodwill" },
            ],
          },
        ],
        next_page: null,
      }),
    );
    // The credits list does not show a commit.
    expect(await post("/v1/contracts/customerCredits/list", { customer_id: "cust-c", include_contract_credits: true })).toEqual({ status: 200, body: '{"data":[],"next_page":null}' });
  });

  it("Tally keys: an account key reads only its own customer and cannot write; another tenant's platform key sees nothing", async () => {
    const acctToken = (await admin().createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: "cust-a", label: "acct" })).secret;
    expect((await post(LIST, { customer_id: "cust-a" }, acctToken)).status).toBe(200);
    expect(await post(LIST, { customer_id: "cust-net" }, acctToken)).toEqual({ status: 404, body: msg("Customer not found") });
    const write = await post("/v1/contracts/customerCredits/create", { customer_id: "cust-a", priority: 1, product_id: "p", access_schedule: { schedule_items: [] } }, acctToken);
    expect(write).toEqual({ status: 403, body: msg("This credential cannot use this endpoint") });
    // The tenant admin key works on the REST path too.
    expect((await post(LIST, { customer_id: "cust-a" }, server.adminKey)).status).toBe(200);
    const bToken = (await admin(bKey).createCredential({ kind: "metronome_platform_key", label: "b" })).secret;
    expect(await post(LIST, { customer_id: "cust-a" }, bToken)).toEqual({ status: 404, body: msg("Customer not found") });
    expect((await post(LIST, { customer_id: "cust-b" }, bToken)).body).toBe('{"data":[],"next_page":null}');
    // A revoked key is 401 like any bad key.
    const c = await admin().createCredential({ kind: "metronome_platform_key", label: "tmp" });
    await admin().revokeCredential({ kind: "metronome_platform_key", id: c.credential!.id });
    expect(await post(LIST, { customer_id: "cust-a" }, c.secret)).toEqual({ status: 401, body: msg("Unauthorized") });
  });

  it("bad input is 400 in the message envelope", async () => {
    expect((await post(LIST, { customer_id: "cust-a", unknown_field: 1 })).status).toBe(400);
    expect((await post(LIST, "{not json")).status).toBe(400);
    const badType = await post("/v1/contracts/customerCommits/create", { customer_id: "cust-a", type: "CREDIT", priority: 1, product_id: "p" });
    expect(badType).toEqual({ status: 400, body: msg("type must be PREPAID or POSTPAID") });
    const badMode = await post("/v1/contracts/customerBalances/getNetBalance", { customer_id: "cust-a", invoice_inclusion_mode: "ALL" });
    expect(badMode).toEqual({ status: 400, body: msg("invoice_inclusion_mode must be FINALIZED or FINALIZED_AND_DRAFT") });
  });
  it("list filters: id, covering_date, starting_at, effective_before, exclude_zero_balances, include_archived", async () => {
    now = micros("2026-08-01T00:00:00.000Z");
    const mk = async (amount: number, from: string, to: string) => {
      const r = await post("/v1/contracts/customerCredits/create", { customer_id: "cust-f", priority: 1, product_id: "p", access_schedule: { schedule_items: [{ amount, starting_at: from, ending_before: to }] } });
      return (JSON.parse(r.body) as { data: { id: string } }).data.id;
    };
    const early = await mk(1, "2026-01-01T00:00:00.000Z", "2026-02-01T00:00:00.000Z");
    const mid = await mk(2, "2026-08-01T00:00:00.000Z", "2026-09-01T00:00:00.000Z");
    const late = await mk(3, "2027-01-01T00:00:00.000Z", "2027-02-01T00:00:00.000Z");
    const ids = async (extra: Record<string, unknown>) => {
      const r = await post(LIST, { customer_id: "cust-f", ...extra });
      expect(r.status).toBe(200);
      return (JSON.parse(r.body) as { data: { id: string }[] }).data.map((d) => d.id).sort();
    };
    expect(await ids({})).toEqual([early, mid, late].sort());
    expect(await ids({ id: mid })).toEqual([mid]);
    expect(await ids({ covering_date: "2026-08-15T00:00:00.000Z" })).toEqual([mid]);
    // ending_before is exclusive, starting_at inclusive.
    expect(await ids({ covering_date: "2026-09-01T00:00:00.000Z" })).toEqual([]);
    expect(await ids({ covering_date: "2027-01-01T00:00:00.000Z" })).toEqual([late]);
    expect(await ids({ starting_at: "2026-09-01T00:00:00.000Z" })).toEqual([late]);
    expect(await ids({ effective_before: "2026-08-01T00:00:00.000Z" })).toEqual([early]);
    expect(await ids({ exclude_zero_balances: true, balance_at: "2026-08-15T00:00:00.000Z" })).toEqual([mid]);
    await native().archiveBalance({ id: mid });
    expect(await ids({})).toEqual([early, late].sort());
    expect(await ids({ include_archived: true })).toEqual([early, mid, late].sort());
    const archived = await post(LIST, { customer_id: "cust-f", id: mid, include_archived: true });
    expect(archived.body).toContain('"archived_at":"2026-08-01T00:00:00.000Z"}');
  });

  it("beside a long-running credit of a higher priority number, September's usage draws from the September credit only, even read long after both; @metronome/sdk reads the same", async () => {
    now = micros("2026-08-01T00:00:00.000Z");
    const mk = async (name: string, priority: number, amount: number, from: string, to: string) => {
      const r = await post("/v1/contracts/customerCredits/create", { customer_id: "cust-long", name, priority, product_id: "prod-a", access_schedule: { credit_type_id: USD_ID, schedule_items: [{ amount, starting_at: from, ending_before: to }] } });
      return (JSON.parse(r.body) as { data: { id: string } }).data.id;
    };
    const sept = await mk("September", 1, 100, "2026-09-01T00:00:00.000Z", "2026-10-01T00:00:00.000Z");
    const long = await mk("Long", 2, 500, "2026-01-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z");
    // Recorded on 10/3: the September credit has ended (and another write of the customer has run
    // since: a manual entry on the long credit) but is still inside its usage window.
    now = micros("2026-10-02T00:00:00.000Z");
    const listed = JSON.parse((await post(LIST, { customer_id: "cust-long" })).body) as { data: { id: string; access_schedule: { schedule_items: { id: string }[] } }[] };
    const segOf = (id: string) => listed.data.find((d) => d.id === id)!.access_schedule.schedule_items[0]!.id;
    expect((await post("/v1/contracts/addManualBalanceLedgerEntry", { id: long, customer_id: "cust-long", segment_id: segOf(long), amount: 1, reason: "goodwill", timestamp: "2026-10-02T00:00:00.000Z" })).status).toBe(200);
    now = micros("2026-10-03T00:00:00.000Z");
    const u = await native().recordUsage({ usageId: "sept-usage", customerId: "cust-long", productId: "prod-a", amount: 630_000n, ...period("2026-09-01T00:00:00.000Z", "2026-10-01T00:00:00.000Z"), invoiceId: "inv-sept" });
    expect(u.draws.map((d) => [d.balanceId, d.amount])).toEqual([[sept, 630_000n]]);

    // Long after both, past every usage window (the expirations are stored by now).
    now = micros("2027-06-01T00:00:00.000Z");
    const body = { customer_id: "cust-long", include_ledgers: true, include_balance: true };
    const raw = await post(LIST, body);
    const ledgers = (JSON.parse(raw.body) as { data: { id: string; balance: number; ledger: unknown[] }[] }).data.map((d) => [d.id, d.balance, d.ledger]);
    expect(ledgers).toEqual([
      [
        sept,
        0,
        [
          { type: "CREDIT_SEGMENT_START", timestamp: "2026-09-01T00:00:00.000Z", amount: 100, segment_id: segOf(sept) },
          { type: "CREDIT_AUTOMATED_INVOICE_DEDUCTION", timestamp: "2026-10-01T00:00:00.000Z", amount: -63, segment_id: segOf(sept), invoice_id: "inv-sept" },
          { type: "CREDIT_EXPIRATION", timestamp: "2026-10-01T00:00:00.000Z", amount: -37, segment_id: segOf(sept) },
        ],
      ],
      [
        long,
        0,
        [
          { type: "CREDIT_SEGMENT_START", timestamp: "2026-01-01T00:00:00.000Z", amount: 500, segment_id: segOf(long) },
          { type: "CREDIT_MANUAL", timestamp: "2026-10-02T00:00:00.000Z", amount: 1, reason: "goodwill" },
          { type: "CREDIT_EXPIRATION", timestamp: "2027-01-01T00:00:00.000Z", amount: -501, segment_id: segOf(long) },
        ],
      ],
    ]);

    // Metronome's own SDK against this server: the same balances, ledgers and net balance.
    const sdk = new Metronome({ bearerToken: token, baseURL: server.url, maxRetries: 0 });
    const seen: unknown[] = [];
    for await (const b of sdk.v1.contracts.listBalances(body)) seen.push(b);
    expect(seen).toEqual((JSON.parse(raw.body) as { data: unknown[] }).data);
    const manual = (seen[1] as { ledger: Record<string, unknown>[] }).ledger[1]!;
    expect(Object.keys(manual).sort()).toEqual(["amount", "reason", "timestamp", "type"]);
    expect(await sdk.v1.contracts.getNetBalance({ customer_id: "cust-long", credit_type_id: USD_ID })).toEqual({ data: { balance: 0, credit_type_id: USD_ID } });
    // In December 2026 the long credit still holds all it had: September's usage never touched it.
    now = micros("2026-12-01T00:00:00.000Z");
    expect(await sdk.v1.contracts.getNetBalance({ customer_id: "cust-long" })).toEqual({ data: { balance: 501, credit_type_id: USD_ID } });
    expect(await post("/v1/contracts/customerBalances/getNetBalance", { customer_id: "cust-long" })).toEqual({ status: 200, body: JSON.stringify({ data: { balance: 501, credit_type_id: USD_ID } }) });
  });

  it("lists commits and credits in creation order, with keyset next_page cursors over it (the SDK's pager too)", async () => {
    now = micros("2026-08-01T00:00:00.000Z");
    const sched = { schedule_items: [{ amount: 1, starting_at: "2026-08-01T00:00:00.000Z", ending_before: "2027-08-01T00:00:00.000Z" }] };
    const created: string[] = [];
    // Interleaved, so that id order ("cmt_" < "cred_") is not creation order.
    for (let i = 0; i < 7; i++) {
      const r = i % 2 === 0
        ? await post("/v1/contracts/customerCredits/create", { customer_id: "cust-order", name: `n${i}`, priority: 1, product_id: "p", access_schedule: sched })
        : await post("/v1/contracts/customerCommits/create", { customer_id: "cust-order", type: "PREPAID", name: `n${i}`, priority: 1, product_id: "p", access_schedule: sched });
      created.push((JSON.parse(r.body) as { data: { id: string } }).data.id);
    }
    expect([...created].sort()).not.toEqual(created);
    const pages: string[][] = [];
    let next: string | null = null;
    do {
      const r = await post(LIST, { customer_id: "cust-order", limit: 3, ...(next !== null ? { next_page: next } : {}) });
      const page = JSON.parse(r.body) as { data: { id: string }[]; next_page: string | null };
      pages.push(page.data.map((d) => d.id));
      next = page.next_page;
      // Created during the walk: listed at its end, nothing skipped or repeated.
      if (pages.length === 1) {
        const r2 = await post("/v1/contracts/customerCredits/create", { customer_id: "cust-order", name: "late", priority: 1, product_id: "p", access_schedule: sched });
        created.push((JSON.parse(r2.body) as { data: { id: string } }).data.id);
      }
    } while (next !== null);
    expect(pages).toEqual([created.slice(0, 3), created.slice(3, 6), created.slice(6, 8)]);
    // customerCommits/list and customerCredits/list keep the same order among their kind.
    const ids = async (path: string) => (JSON.parse((await post(path, { customer_id: "cust-order" })).body) as { data: { id: string }[] }).data.map((d) => d.id);
    expect(await ids("/v1/contracts/customerCommits/list")).toEqual(created.filter((x) => x.startsWith("cmt_")));
    expect(await ids("/v1/contracts/customerCredits/list")).toEqual(created.filter((x) => x.startsWith("cred_")));
    const sdk = new Metronome({ bearerToken: token, baseURL: server.url, maxRetries: 0 });
    const viaSdk: string[] = [];
    for await (const b of sdk.v1.contracts.listBalances({ customer_id: "cust-order", limit: 2 })) viaSdk.push((b as { id: string }).id);
    expect(viaSdk).toEqual(created);
  });
});
