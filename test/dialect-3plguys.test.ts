/**
 * The 3PLGuys dialect over a real server: GET /v0/balance and
 * GET /v0/balance/transactions as the vendor's own clients call them (raw
 * fetch, `Authorization: Bearer`), every body compared byte for byte.
 */
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { AdminService, KeyScope } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { BalanceService } from "../gen/threeplguys/v0/balance_pb.js";
import { clientFor, startTestServer, transportFor } from "./support/server.js";
import type { TestServer } from "./support/server.js";
import { expectRefused } from "./support/ledger-kit.js";
import { threeplguysEnvelope } from "../src/dialects/threeplguys/envelope.js";

type Admin = Client<typeof AdminService>;
type Ledger = Client<typeof LedgerService>;

/** A clock the test sets, so createdAt is known to the microsecond. */
let now = micros("2026-03-01T00:00:00.000Z");
function micros(iso: string, extraMicros = 0n): bigint {
  return BigInt(Date.parse(iso)) * 1000n + extraMicros;
}

let server: TestServer;
const admin = (key = server.adminKey): Admin => clientFor(AdminService, server.url, "connect-binary", key);
const ledger = (key = server.adminKey): Ledger => clientFor(LedgerService, server.url, "connect-binary", key);

/** Tenant B, for cross-tenant probes. */
let bKey = "";

beforeAll(async () => {
  server = await startTestServer({ dialects: ["3plguys"], clock: () => now });
  bKey = (await admin().createTenant({ id: "tpg-b", name: "B" })).adminKeySecret;
});
afterAll(async () => {
  await server?.close();
});

interface Reply {
  readonly status: number;
  readonly body: string;
  readonly contentType: string | null;
}

/** GET as a 3PLGuys client sends it. */
async function get(path: string, token?: string, init: RequestInit = {}): Promise<Reply> {
  const headers = new Headers(init.headers);
  if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
  const res = await fetch(`${server.url}${path}`, { ...init, headers });
  return { status: res.status, body: await res.text(), contentType: res.headers.get("content-type") };
}

/** Issues a 3plguys_api_key through AdminService and returns the Bearer token. */
async function issueKey(accountId: string, scopes: string[] = ["invoices"], key = server.adminKey): Promise<{ id: string; token: string }> {
  const res = await admin(key).createCredential({ kind: "3plguys_api_key", accountId, scopes, label: "test" });
  return { id: res.credential!.id, token: res.secret };
}

let seq = 0;
/** Moves `amount` ledger units (micro-USD by default) from `from` to `to`, at time `at`. */
async function move(from: string, to: string, amount: bigint, note: string, at: bigint, key = server.adminKey, pending = false): Promise<string> {
  now = at;
  const res = await ledger(key).postTransfer({
    idempotencyKey: `move-${++seq}`,
    debitAccountId: from,
    creditAccountId: to,
    asset: "USD",
    amount,
    note,
    pending,
  });
  return res.transfer!.id;
}

const err = (status: number, error: string, message: string) => JSON.stringify({ message, error, statusCode: status });
const UNAUTHORIZED_INVALID = err(401, "Unauthorized", "Invalid or revoked API key");
const UNAUTHORIZED_MISSING = err(401, "Unauthorized", "Missing bearer token");
const PATHS = ["/v0/balance", "/v0/balance/transactions"] as const;

describe("GET /v0/balance and /v0/balance/transactions", () => {
  it("a new account: balance 0 and an empty array, as application/json", async () => {
    await ledger().createAccount({ id: "empty" });
    const { token } = await issueKey("empty");
    expect(token).toMatch(/^3pg_[0-9a-f]{20}_[0-9a-f]{40}$/);
    const bal = await get("/v0/balance", token);
    expect([bal.status, bal.body, bal.contentType]).toEqual([200, '{"balance":0,"currency":"USD"}', "application/json"]);
    const txs = await get("/v0/balance/transactions", token);
    expect([txs.status, txs.body, txs.contentType]).toEqual([200, "[]", "application/json"]);
  });

  it("a funded account: the vendor's example, cents as JSON numbers, newest first, ISO times with milliseconds", async () => {
    // Opened before its first movement: no write is effective before its account's opening.
    now = micros("2026-01-01T00:00:00.000Z");
    await ledger().createAccount({ id: "funded", overdraftUnlimited: true });
    // $1,500.00 paid in, then the vendor's two documented transactions.
    const t1 = await move("@world", "funded", 1_500_000_000n, "Opening balance", micros("2026-02-01T08:00:00.000Z"));
    // A microsecond part is cut to milliseconds, never rounded up.
    const t2 = await move("funded", "@world", 125_000_000n, "Invoice #INV-2026-0042 — Outbound SPD shipment", micros("2026-02-28T09:15:00.000Z", 999n));
    const t3 = await move("@world", "funded", 500_000_000n, "Payment received", micros("2026-03-01T12:00:00.123Z", 456n));
    const { token } = await issueKey("funded");
    const bal = await get("/v0/balance", token);
    expect([bal.status, bal.body]).toEqual([200, '{"balance":187500,"currency":"USD"}']);
    const txs = await get("/v0/balance/transactions", token);
    expect(txs.status).toBe(200);
    expect(txs.body).toBe(
      `[{"id":"${t3}","amount":50000,"note":"Payment received","currency":"USD","createdAt":"2026-03-01T12:00:00.123Z"},` +
        `{"id":"${t2}","amount":-12500,"note":"Invoice #INV-2026-0042 — Outbound SPD shipment","currency":"USD","createdAt":"2026-02-28T09:15:00.000Z"},` +
        `{"id":"${t1}","amount":150000,"note":"Opening balance","currency":"USD","createdAt":"2026-02-01T08:00:00.000Z"}]`,
    );
    // The balance is the sum of all transaction amounts.
    const list = JSON.parse(txs.body) as { amount: number; id: string }[];
    expect(list.reduce((s, t) => s + t.amount, 0)).toBe(187500);
    expect(list.every((t) => /^[A-Za-z0-9_-]{1,128}$/.test(t.id))).toBe(true);
  });

  it("negative balances: an account with an overdraft limit owes money, and the list adds up to it", async () => {
    // $100.00 of overdraft, in the ledger's micro-units.
    await ledger().createAccount({ id: "owing", overdraftLimit: 100_000_000n });
    const t = await move("owing", "@world", 42_500_000n, "Storage fee", micros("2026-03-02T00:00:00.000Z"));
    const { token } = await issueKey("owing");
    expect((await get("/v0/balance", token)).body).toBe('{"balance":-4250,"currency":"USD"}');
    expect((await get("/v0/balance/transactions", token)).body).toBe(
      `[{"id":"${t}","amount":-4250,"note":"Storage fee","currency":"USD","createdAt":"2026-03-02T00:00:00.000Z"}]`,
    );
    // Beyond the limit the ledger refuses the charge; the balance stays as it was.
    await expectRefused(move("owing", "@world", 57_500_001n, "Too much", now), Code.FailedPrecondition, "insufficient_funds");
    expect((await get("/v0/balance", token)).body).toBe('{"balance":-4250,"currency":"USD"}');
  });

  it("large balances stay exact (int64 digits, never through a double)", async () => {
    // At scale 6 no int64 balance exceeds 2^53 cents, so this needs a tenant counting USD in cents.
    const key = (await admin().createTenant({ id: "tpg-large" })).adminKeySecret;
    await ledger(key).defineAsset({ code: "USD", scale: 2 });
    await ledger(key).createAccount({ id: "whale" });
    await move("@world", "whale", 9_007_199_254_740_993n, "Big", micros("2026-03-03T00:00:00.000Z"), key);
    const { token } = await issueKey("whale", ["invoices"], key);
    expect((await get("/v0/balance", token)).body).toBe('{"balance":9007199254740993,"currency":"USD"}');
    expect((await get("/v0/balance/transactions", token)).body).toContain('"amount":9007199254740993,');
  });

  it("only posted movements are transactions: a pending hold is invisible until it posts; a voided one never shows", async () => {
    await ledger().createAccount({ id: "holds", overdraftUnlimited: true });
    const paid = await move("@world", "holds", 10_000_000n, "Payment received", micros("2026-03-04T00:00:00.000Z"));
    const held = await move("holds", "@world", 3_000_000n, "Held", micros("2026-03-04T01:00:00.000Z"), server.adminKey, true);
    const voided = await move("holds", "@world", 1_000_000n, "Voided", micros("2026-03-04T02:00:00.000Z"), server.adminKey, true);
    const { token } = await issueKey("holds");
    const paidJson = `{"id":"${paid}","amount":1000,"note":"Payment received","currency":"USD","createdAt":"2026-03-04T00:00:00.000Z"}`;
    expect((await get("/v0/balance", token)).body).toBe('{"balance":1000,"currency":"USD"}');
    expect((await get("/v0/balance/transactions", token)).body).toBe(`[${paidJson}]`);
    now = micros("2026-03-04T03:00:00.000Z");
    await ledger().voidPendingTransfer({ transferId: voided });
    // Posting part of the hold: the transaction is what moved, at the time it moved.
    now = micros("2026-03-04T04:00:00.000Z");
    await ledger().postPendingTransfer({ transferId: held, amount: 2_500_000n });
    expect((await get("/v0/balance", token)).body).toBe('{"balance":750,"currency":"USD"}');
    expect((await get("/v0/balance/transactions", token)).body).toBe(
      `[{"id":"${held}","amount":-250,"note":"Held","currency":"USD","createdAt":"2026-03-04T04:00:00.000Z"},${paidJson}]`,
    );
  });

  it("only USD counts: other assets of the account are not in the balance or the list", async () => {
    await ledger().createAccount({ id: "multi" });
    await ledger().postTransfer({ idempotencyKey: "multi-eur", debitAccountId: "@world", creditAccountId: "multi", asset: "EUR", amount: 5_000_000n });
    const t = await move("@world", "multi", 20_000n, "Two cents", micros("2026-03-05T00:00:00.000Z"));
    const { token } = await issueKey("multi");
    expect((await get("/v0/balance", token)).body).toBe('{"balance":2,"currency":"USD"}');
    expect((await get("/v0/balance/transactions", token)).body).toBe(
      `[{"id":"${t}","amount":2,"note":"Two cents","currency":"USD","createdAt":"2026-03-05T00:00:00.000Z"}]`,
    );
  });
});

describe("micro-units to cents", () => {
  it("scale 6: the running balance is floored to cents and each entry is the change it makes, so the balance is the sum", async () => {
    await ledger().createAccount({ id: "sub-cent", overdraftUnlimited: true });
    const at = micros("2026-03-06T00:00:00.000Z");
    // [micro-USD moved (+ credit, - charge), cents the entry shows], worked by hand.
    const rows: [bigint, number][] = [
      [1_234_567n, 123], //  running 123.4567c → 123c
      [5_000n, 0], //        running 123.9567c → 123c: the half cent is carried, not lost
      [5_000n, 1], //        running 124.4567c → 124c: and counted once it adds up
      [-2_000_000n, -200], // whole cents are exact: running -75.5433c → -76c
      [-4_567n, 0], //       running -76.0000c → -76c
      [-1n, -1], //          running -76.0001c → -77c
    ];
    const ids: string[] = [];
    for (const [i, [amount]] of rows.entries()) {
      const t = at + BigInt(i) * 1000n;
      ids.push(amount > 0n ? await move("@world", "sub-cent", amount, `c${i}`, t) : await move("sub-cent", "@world", -amount, `c${i}`, t));
    }
    const { token } = await issueKey("sub-cent");
    expect((await get("/v0/balance", token)).body).toBe('{"balance":-77,"currency":"USD"}');
    const expected = rows
      .map(([, c], i) => `{"id":"${ids[i]}","amount":${c},"note":"c${i}","currency":"USD","createdAt":"2026-03-06T00:00:00.00${i}Z"}`)
      .reverse();
    expect((await get("/v0/balance/transactions", token)).body).toBe(`[${expected.join(",")}]`);
    // Σ amounts = balance, although the ledger holds -760,001 micro-USD (not a whole cent).
    expect(rows.reduce((s, [, c]) => s + c, 0)).toBe(-77);
    expect((await ledger().getBalance({ accountId: "sub-cent", asset: "USD" })).balance?.posted).toBe(-760_001n);
  });

  it("a balance of a fraction of a cent: +0.9999c shows 0, -0.0001c shows -1 (never more credit than held)", async () => {
    await ledger().createAccount({ id: "fraction", overdraftUnlimited: true });
    const { token } = await issueKey("fraction");
    await move("@world", "fraction", 9_999n, "almost a cent", micros("2026-03-07T00:00:00.000Z"));
    expect((await get("/v0/balance", token)).body).toBe('{"balance":0,"currency":"USD"}');
    await move("fraction", "@world", 10_000n, "one cent", micros("2026-03-07T00:00:01.000Z"));
    expect((await get("/v0/balance", token)).body).toBe('{"balance":-1,"currency":"USD"}');
    const list = JSON.parse((await get("/v0/balance/transactions", token)).body) as { amount: number }[];
    expect(list.map((t) => t.amount)).toEqual([-1, 0]);
  });

  it("a tenant whose USD has scale 2 is exact, cent for cent", async () => {
    const key = (await admin().createTenant({ id: "tpg-scale2" })).adminKeySecret;
    await ledger(key).defineAsset({ code: "USD", scale: 2 });
    await ledger(key).createAccount({ id: "acct", overdraftUnlimited: true });
    const a = await move("@world", "acct", 150_001n, "in", micros("2026-03-08T00:00:00.000Z"), key);
    const b = await move("acct", "@world", 3n, "out", micros("2026-03-08T00:00:01.000Z"), key);
    const { token } = await issueKey("acct", ["invoices"], key);
    expect((await get("/v0/balance", token)).body).toBe('{"balance":149998,"currency":"USD"}');
    expect((await get("/v0/balance/transactions", token)).body).toBe(
      `[{"id":"${b}","amount":-3,"note":"out","currency":"USD","createdAt":"2026-03-08T00:00:01.000Z"},` +
        `{"id":"${a}","amount":150001,"note":"in","currency":"USD","createdAt":"2026-03-08T00:00:00.000Z"}]`,
    );
  });

  it("a tenant whose USD has scale 0 (whole dollars) multiplies by 100", async () => {
    const key = (await admin().createTenant({ id: "tpg-scale0" })).adminKeySecret;
    await ledger(key).defineAsset({ code: "USD", scale: 0 });
    await ledger(key).createAccount({ id: "acct", overdraftLimit: 10n });
    await move("acct", "@world", 7n, "fee", micros("2026-03-08T00:00:00.000Z"), key);
    const { token } = await issueKey("acct", ["invoices"], key);
    expect((await get("/v0/balance", token)).body).toBe('{"balance":-700,"currency":"USD"}');
    expect(JSON.parse((await get("/v0/balance/transactions", token)).body)).toMatchObject([{ amount: -700 }]);
  });
});

describe("paging with skip and take", () => {
  let token = "";
  const ids: string[] = [];
  beforeAll(async () => {
    await ledger().createAccount({ id: "paged" });
    for (let i = 0; i < 60; i++) {
      ids.push(await move("@world", "paged", BigInt(i + 1) * 10_000n, `n${i}`, micros("2026-04-01T00:00:00.000Z") + BigInt(i) * 1_000_000n));
    }
    // Pending holds in between must not shift the pages.
    await move("paged", "@world", 1n, "hold", now, server.adminKey, true);
    ids.reverse();
    token = (await issueKey("paged")).token;
  });
  const amountsOf = (body: string) => (JSON.parse(body) as { amount: number; id: string }[]).map((t) => t.amount);
  const idsOf = (body: string) => (JSON.parse(body) as { id: string }[]).map((t) => t.id);

  it("defaults: skip 0, take 10, newest first", async () => {
    const r = await get("/v0/balance/transactions", token);
    expect(r.status).toBe(200);
    expect(amountsOf(r.body)).toEqual([60, 59, 58, 57, 56, 55, 54, 53, 52, 51]);
    expect(idsOf(r.body)).toEqual(ids.slice(0, 10));
  });

  it("skip and take pick a window; pages neither overlap nor leave gaps", async () => {
    expect(amountsOf((await get("/v0/balance/transactions?skip=3&take=4", token)).body)).toEqual([57, 56, 55, 54]);
    expect(amountsOf((await get("/v0/balance/transactions?take=20", token)).body)).toEqual(Array.from({ length: 20 }, (_, i) => 60 - i));
    const seen: string[] = [];
    for (let skip = 0; skip < 60; skip += 7) seen.push(...idsOf((await get(`/v0/balance/transactions?skip=${skip}&take=7`, token)).body));
    expect(seen).toEqual(ids);
    expect(amountsOf((await get("/v0/balance/transactions?skip=58", token)).body)).toEqual([2, 1]);
    expect((await get("/v0/balance/transactions?skip=60", token)).body).toBe("[]");
    expect((await get("/v0/balance/transactions?skip=9223372036854775807", token)).body).toBe("[]");
  });

  it("take 50 is the maximum and is served", async () => {
    const r = await get("/v0/balance/transactions?take=50", token);
    expect(amountsOf(r.body)).toEqual(Array.from({ length: 50 }, (_, i) => 60 - i));
    expect(amountsOf((await get("/v0/balance/transactions?take=1", token)).body)).toEqual([60]);
  });

  it("take above 50 or below 1, a negative skip and non-integers are 400 (not clamped)", async () => {
    const takeRange = err(400, "Bad Request", "take must be an integer between 1 and 50");
    const cases: [string, string][] = [
      ["take=51", takeRange],
      ["take=1000", takeRange],
      ["take=0", takeRange],
      ["take=-1", takeRange],
      ["skip=-1", err(400, "Bad Request", "skip must be a non-negative integer")],
      ["take=abc", err(400, "Bad Request", 'query parameter "take" must be a decimal integer, got "abc"')],
      ["take=1.5", err(400, "Bad Request", 'query parameter "take" must be a decimal integer, got "1.5"')],
      ["skip=", err(400, "Bad Request", 'query parameter "skip" must be a decimal integer, got ""')],
      ["take=99999999999999999999", err(400, "Bad Request", "take: 99999999999999999999 is outside the range of int64")],
      ["skip=1e3", err(400, "Bad Request", 'query parameter "skip" must be a decimal integer, got "1e3"')],
      ["skip=%2B5", err(400, "Bad Request", 'query parameter "skip" must be a decimal integer, got "+5"')],
      ["take=10&take=20", err(400, "Bad Request", '"take" is not repeated but was given 2 times')],
    ];
    for (const [query, body] of cases) {
      const r = await get(`/v0/balance/transactions?${query}`, token);
      expect([query, r.status, r.body]).toEqual([query, 400, body]);
    }
  });

  it("skipping across many store pages, with holds interleaved, still lands on the right window", async () => {
    await ledger().createAccount({ id: "long", overdraftUnlimited: true });
    now = micros("2026-04-02T00:00:00.000Z");
    // 450 credits of n cents each, every third followed by a pending hold (journal entries that are not transactions).
    const transfers = [];
    for (let n = 1; n <= 450; n++) {
      transfers.push({ idempotencyKey: `long-${n}`, debitAccountId: "@world", creditAccountId: "long", asset: "USD", amount: BigInt(n) * 10_000n });
      if (n % 3 === 0) transfers.push({ idempotencyKey: `long-hold-${n}`, debitAccountId: "long", creditAccountId: "@world", asset: "USD", amount: 1n, pending: true });
    }
    await ledger().postTransfers({ transfers });
    const t = (await issueKey("long")).token;
    expect(amountsOf((await get("/v0/balance/transactions?skip=395&take=50", t)).body)).toEqual(Array.from({ length: 50 }, (_, i) => 55 - i));
    expect(amountsOf((await get("/v0/balance/transactions?skip=445&take=50", t)).body)).toEqual([5, 4, 3, 2, 1]);
    expect((await get("/v0/balance", t)).body).toBe(`{"balance":${(450 * 451) / 2},"currency":"USD"}`);
  });

  it("unknown query parameters are ignored", async () => {
    expect(amountsOf((await get("/v0/balance/transactions?take=2&order=asc", token)).body)).toEqual([60, 59]);
  });
});

describe("authentication and authorization", () => {
  let good = "";
  let goodId = "";
  beforeAll(async () => {
    await ledger().createAccount({ id: "authz" });
    await move("@world", "authz", 1_230_000n, "x", micros("2026-05-01T00:00:00.000Z"));
    ({ token: good, id: goodId } = await issueKey("authz", ["shipments", "invoices"]));
  });

  it("the key works on both paths", async () => {
    expect((await get("/v0/balance", good)).body).toBe('{"balance":123,"currency":"USD"}');
    expect((await get("/v0/balance/transactions", good)).status).toBe(200);
  });

  it("no Authorization header is 401 Missing bearer token", async () => {
    for (const path of PATHS) {
      const r = await get(path);
      expect([path, r.status, r.body, r.contentType]).toEqual([path, 401, UNAUTHORIZED_MISSING, "application/json"]);
    }
  });

  it("malformed, unknown, wrong-secret and non-Bearer credentials all get the same 401", async () => {
    const [, id, secret] = /^3pg_([0-9a-f]{20})_([0-9a-f]{40})$/.exec(good)!;
    const headers: Record<string, string> = {
      "not a token": "Bearer nope",
      "unknown id": `Bearer 3pg_${"0".repeat(20)}_${secret}`,
      "wrong secret": `Bearer 3pg_${id}_${"f".repeat(40)}`,
      "truncated secret": `Bearer ${good.slice(0, -1)}`,
      "upper-cased": `Bearer ${good.toUpperCase()}`,
      "unknown Tally key": `Bearer tly_k${"0".repeat(20)}_${"0".repeat(32)}`,
      "Basic scheme": `Basic ${Buffer.from(`${good}:`).toString("base64")}`,
      "token without scheme": good,
      "Bearer without token": "Bearer",
    };
    for (const [label, authorization] of Object.entries(headers)) {
      for (const path of PATHS) {
        const r = await get(path, undefined, { headers: { authorization } });
        expect([label, path, r.status, r.body]).toEqual([label, path, 401, UNAUTHORIZED_INVALID]);
      }
    }
    // The scheme is case-insensitive, as RFC 7235 says.
    expect((await get("/v0/balance", undefined, { headers: { authorization: `bearer ${good}` } })).status).toBe(200);
  });

  it("a key without the invoices scope is 403", async () => {
    const { token } = await issueKey("authz", ["shipments"]);
    const none = (await issueKey("authz", [])).token;
    for (const t of [token, none]) {
      for (const path of PATHS) {
        const r = await get(path, t);
        expect([path, r.status, r.body]).toEqual([path, 403, err(403, "Forbidden", "This API key lacks the required scope: invoices")]);
      }
    }
  });

  it("a Tally tenant admin key is 403 (it acts for no account); a Tally account key reads its own account", async () => {
    for (const path of PATHS) {
      const r = await get(path, server.adminKey);
      expect([path, r.status, r.body]).toEqual([path, 403, err(403, "Forbidden", "This API key is not bound to an account")]);
    }
    const reader = await admin().createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: "authz" });
    expect((await get("/v0/balance", reader.secret)).body).toBe('{"balance":123,"currency":"USD"}');
    // A revoked Tally key answers exactly like a bad 3PLGuys key.
    await admin().revokeApiKey({ id: reader.key!.id });
    expect((await get("/v0/balance", reader.secret)).body).toBe(UNAUTHORIZED_INVALID);
  });

  it("a revoked key is refused with the same 401 as an unknown one", async () => {
    const { token, id } = await issueKey("authz");
    expect((await get("/v0/balance", token)).status).toBe(200);
    const { credential } = await admin().revokeCredential({ kind: "3plguys_api_key", id });
    expect(credential?.revokedAt).toBeDefined();
    for (const path of PATHS) {
      const r = await get(path, token);
      expect([path, r.status, r.body]).toEqual([path, 401, UNAUTHORIZED_INVALID]);
    }
    // Other keys of the same account are unaffected.
    expect((await get("/v0/balance", good)).status).toBe(200);
    expect(goodId).not.toBe(id);
  });

  it("a request body on a GET is 400; other methods are 405", async () => {
    // fetch cannot send a GET body; a raw request can.
    const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${server.url}/v0/balance`, { method: "GET", headers: { authorization: `Bearer ${good}`, "content-type": "application/json", "content-length": "13" } }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      req.end('{"balance":1}');
    });
    expect(r).toEqual({ status: 400, body: err(400, "Bad Request", "this endpoint takes no request body") });
    const res = await fetch(`${server.url}/v0/balance/transactions`, { method: "POST", headers: { authorization: `Bearer ${good}` }, body: "{}" });
    expect([res.status, res.headers.get("allow"), await res.text()]).toEqual([405, "GET", err(405, "Method Not Allowed", "method POST not allowed")]);
  });
});

describe("isolation", () => {
  it("a key only ever sees its own account; the same account id in another tenant is another account", async () => {
    await ledger().createAccount({ id: "twin" });
    await ledger().createAccount({ id: "sibling" });
    await ledger(bKey).createAccount({ id: "twin" });
    const a = await move("@world", "twin", 10_000n, "A's", micros("2026-06-01T00:00:00.000Z"));
    await move("@world", "sibling", 990_000n, "sibling's", micros("2026-06-01T00:00:01.000Z"));
    const b = await move("@world", "twin", 20_000n, "B's", micros("2026-06-01T00:00:02.000Z"), bKey);
    const aKey = (await issueKey("twin")).token;
    const bTok = (await issueKey("twin", ["invoices"], bKey)).token;
    expect((await get("/v0/balance", aKey)).body).toBe('{"balance":1,"currency":"USD"}');
    expect((await get("/v0/balance", bTok)).body).toBe('{"balance":2,"currency":"USD"}');
    expect(JSON.parse((await get("/v0/balance/transactions", aKey)).body)).toMatchObject([{ id: a, note: "A's" }]);
    expect(JSON.parse((await get("/v0/balance/transactions", bTok)).body)).toMatchObject([{ id: b, note: "B's" }]);
    // There is no parameter that names an account: query ids are ignored, not obeyed.
    expect((await get("/v0/balance?accountId=sibling&account_id=sibling", aKey)).body).toBe('{"balance":1,"currency":"USD"}');
  });

  it("credentials are issued only for the caller's own tenant's accounts; others are not_found like nonexistent ones", async () => {
    await ledger(bKey).createAccount({ id: "b-only" });
    const foreign = await expectRefused(admin().createCredential({ kind: "3plguys_api_key", accountId: "b-only", scopes: ["invoices"] }), Code.NotFound, "account_not_found");
    const missing = await expectRefused(admin().createCredential({ kind: "3plguys_api_key", accountId: "no-such", scopes: ["invoices"] }), Code.NotFound, "account_not_found");
    expect(foreign.error.rawMessage.replace("b-only", "X")).toBe(missing.error.rawMessage.replace("no-such", "X"));
    // And another tenant cannot revoke this tenant's key.
    const { id, token } = await issueKey("authz");
    await expectRefused(admin(bKey).revokeCredential({ kind: "3plguys_api_key", id }), Code.NotFound, "credential_not_found");
    expect((await get("/v0/balance", token)).status).toBe(200);
  });
});

describe("issuing keys", () => {
  it("refuses what a 3PLGuys key cannot carry", async () => {
    const a = admin();
    const base = { kind: "3plguys_api_key", accountId: "authz", scopes: ["invoices"] };
    await expectRefused(a.createCredential({ ...base, accountId: "" }), Code.InvalidArgument, "missing_account_id");
    await expectRefused(a.createCredential({ ...base, orgId: "org" }), Code.InvalidArgument, "org_id_not_allowed");
    await expectRefused(a.createCredential({ ...base, publicKey: new Uint8Array(32) }), Code.InvalidArgument, "public_key_not_allowed");
    await expectRefused(a.createCredential({ ...base, id: "mine" }), Code.InvalidArgument, "id_not_allowed");
    await expectRefused(a.createCredential({ ...base, scopes: ["Invoices!"] }), Code.InvalidArgument, "invalid_scope");
    // Only tenant admins issue keys.
    const reader = await a.createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: "authz" });
    await expectRefused(admin(reader.secret).createCredential(base), Code.PermissionDenied, "admin_key_required");
  });

  it("records the account, the scopes (deduplicated) and the label; the secret is the Bearer token", async () => {
    const res = await admin().createCredential({ kind: "3plguys_api_key", accountId: "authz", scopes: ["invoices", "invoices", "shipments"], label: "ops" });
    expect(res.credential).toMatchObject({ kind: "3plguys_api_key", accountId: "authz", orgId: "", scopes: ["invoices", "shipments"], label: "ops" });
    expect(res.secret.startsWith(`3pg_${res.credential!.id}_`)).toBe(true);
    expect((await get("/v0/balance", res.secret)).status).toBe(200);
  });
});

describe("over Connect and gRPC", () => {
  it("the same service answers typed clients presenting a 3PLGuys key", async () => {
    const { token } = await issueKey("authz");
    for (const p of ["connect-json", "grpc"] as const) {
      const c = createClient(BalanceService, transportFor(server.url, p, token));
      expect((await c.getBalance({})).balance).toBe(123n);
      expect((await c.listTransactions({ take: 1n })).transactions.map((t) => t.amount)).toEqual([123n]);
      await expectRefused(c.listTransactions({ take: 51n }), Code.InvalidArgument, "invalid_take");
      const bad = createClient(BalanceService, transportFor(server.url, p, `${token.slice(0, -1)}${token.endsWith("0") ? "1" : "0"}`));
      await expectRefused(bad.getBalance({}), Code.Unauthenticated, "invalid_api_key");
    }
  });
});

describe("the error envelope", () => {
  it("never writes an internal message: a server fault is a fixed 500 body", () => {
    const written = threeplguysEnvelope(new ConnectError("SqliteError: disk I/O error at Store.write (/srv/x.ts:1)", Code.Internal), { status: 500 });
    expect(written).toEqual({ status: 500, body: '{"message":"Internal server error","error":"Internal Server Error","statusCode":500}' });
    // Client errors keep their (client-safe) text, with the status the route layer chose.
    expect(threeplguysEnvelope(new ConnectError("request body is larger than 10 bytes", Code.ResourceExhausted), { status: 413 }).body).toBe(
      '{"message":"request body is larger than 10 bytes","error":"Payload Too Large","statusCode":413}',
    );
  });
});
