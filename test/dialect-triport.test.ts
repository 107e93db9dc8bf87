import { createHmac } from "node:crypto";
import { request } from "node:http";
import type { IncomingMessage } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@connectrpc/connect";
import { AdminService, KeyScope } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { BalanceService } from "../gen/triport/v1/triport_pb.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

// Triport over real sockets: raw fetch with the session cookie a browser
// sends, and a raw HTTP reader for the event stream. Bodies are compared byte
// for byte. The clock is fixed and moved by hand so every timestamp is known.

const T0 = 1748534400n; // 2025-05-29T16:00:00Z
let nowUs = T0 * 1_000_000n;
/** Sets the server clock to T0 + s seconds. */
const at = (s: number) => {
  nowUs = (T0 + BigInt(s)) * 1_000_000n;
  return Number(T0) + s;
};

let server: TestServer;
let ledger: Client<typeof LedgerService>;
let admin: Client<typeof AdminService>;
let key: Buffer;
/** The session key's id, as CreateCredential generated it. */
let KID = "";
const EXP = Number(T0) + 86_400;

/** A session token signed exactly as docs/dialects/triport.md says (an independent implementation). */
function sign(secret: Buffer, payload: Record<string, unknown>): string {
  const p = Buffer.from(JSON.stringify(payload), "utf8").toString("base64url");
  return `${p}.${createHmac("sha256", secret).update(p).digest("base64url")}`;
}
const cookieFor = (sub: string, opts: { kid?: string; exp?: number; secret?: Buffer } = {}) =>
  `triport_session=${sign(opts.secret ?? key, { kid: opts.kid ?? KID, sub, exp: opts.exp ?? EXP })}`;

async function call(method: string, path: string, headers: Record<string, string> = {}, body?: string) {
  const res = await fetch(server.url + path, { method, headers, body });
  return { status: res.status, text: await res.text(), type: res.headers.get("content-type") };
}
const get = (path: string, cookie?: string) => call("GET", path, cookie ? { cookie } : {});
const pay = (invoice: string, cookie?: string, body?: string) =>
  call("POST", `/v1/billing/invoices/${invoice}/pay-from-balance`, { ...(cookie ? { cookie } : {}), "content-type": "application/json" }, body);

async function fund(account: string, amount: bigint, idem: string, kind = "payment", extra: { note?: string; metadata?: Record<string, string>; from?: string } = {}) {
  const debit = extra.from ?? "@world";
  await ledger.postTransfer({ idempotencyKey: idem, debitAccountId: debit, creditAccountId: account, asset: "USD", amount, kind, note: extra.note ?? "", metadata: extra.metadata ?? {} });
}
async function charge(account: string, amount: bigint, idem: string, kind: string, extra: { note?: string; metadata?: Record<string, string> } = {}) {
  await ledger.postTransfer({ idempotencyKey: idem, debitAccountId: account, creditAccountId: "@world", asset: "USD", amount, kind, note: extra.note ?? "", metadata: extra.metadata ?? {} });
}
const invoice = (id: string, owner: string, amountMicro: string) =>
  ledger.createAccount({ id, metadata: { triport_invoice_owner: owner, triport_invoice_amount_micro: amountMicro } });

beforeAll(async () => {
  process.env["TALLY_TRIPORT_KEEPALIVE_MS"] = "300";
  server = await startTestServer({ dialects: ["triport"], clock: () => nowUs });
  ledger = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
  admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
});
afterAll(async () => {
  delete process.env["TALLY_TRIPORT_KEEPALIVE_MS"];
  await server?.close();
});

describe("before any session key exists", () => {
  it("answers every route 503 session resolver not configured, with or without a cookie", async () => {
    const body = '{"error":"session resolver not configured"}';
    for (const r of [
      await get("/v1/balance"),
      await get("/v1/balance", "triport_session=abc.def"),
      await get("/v1/balance/entries"),
      await get("/v1/balance/events"),
      await pay("inv_1"),
    ]) {
      expect(r.status).toBe(503);
      expect(r.text).toBe(body);
    }
  });
});

describe("session keys and 401", () => {
  beforeAll(async () => {
    at(0);
    const r = await admin.createCredential({ kind: "triport_session_key", label: "login" });
    expect(r.credential?.kind).toBe("triport_session_key");
    expect(r.credential?.id).toMatch(/^tsk_[0-9a-f]{20}$/);
    KID = r.credential!.id;
    expect(r.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    key = Buffer.from(r.secret, "base64url");
    for (const id of ["alice", "bob", "carol", "dave", "pager", "erin"]) await ledger.createAccount({ id });
  });

  it("refuses a key bound to an account", async () => {
    await expect(admin.createCredential({ kind: "triport_session_key", accountId: "alice" })).rejects.toThrow(/tenant-wide/);
  });

  it("answers 401 auth required for a missing, forged, expired, unknown-kid, malformed or revoked session", async () => {
    const other = await admin.createCredential({ kind: "triport_session_key" });
    const revokedId = other.credential!.id;
    const revokedCookie = cookieFor("alice", { kid: revokedId, secret: Buffer.from(other.secret, "base64url") });
    // The revoked key works until it is revoked.
    expect((await get("/v1/balance", revokedCookie)).status).toBe(200);
    await admin.revokeCredential({ kind: "triport_session_key", id: revokedId });
    const good = sign(key, { kid: KID, sub: "alice", exp: EXP });
    const cases = [
      undefined,
      "other=1",
      "triport_session=",
      cookieFor("alice", { secret: Buffer.alloc(32, 7) }), // wrong key
      cookieFor("alice", { exp: Number(T0) }), // expired (exp <= now)
      cookieFor("alice", { kid: "nope" }),
      revokedCookie,
      `triport_session=${good.slice(0, -2)}AA`, // tampered signature
      `triport_session=${good.split(".")[0]}`, // no signature
      `triport_session=${Buffer.from(JSON.stringify({ kid: KID, sub: "alice" })).toString("base64url")}.${good.split(".")[1]}`, // payload swapped
      cookieFor("a/b"), // not an account id
    ];
    for (const c of cases) {
      for (const path of ["/v1/balance", "/v1/balance/entries", "/v1/balance/events"]) {
        const r = await get(path, c);
        expect([c, path, r.status, r.text]).toEqual([c, path, 401, '{"error":"auth required"}']);
      }
      const p = await pay("inv_1", c);
      expect([p.status, p.text]).toEqual([401, '{"error":"auth required"}']);
    }
  });
});

describe("GET /v1/balance", () => {
  it("a new account with no history: zeros, updated_at = account creation", async () => {
    at(50);
    const r = await get("/v1/balance", cookieFor("bob"));
    expect(r.status).toBe(200);
    expect(r.type).toBe("application/json");
    expect(r.text).toBe(`{"amount_micro":0,"locked":false,"updated_at":${T0}}`);
  });

  it("a signed-in user Tally has no account for: zeros, updated_at = now", async () => {
    const now = at(60);
    expect((await get("/v1/balance", cookieFor("nobody"))).text).toBe(`{"amount_micro":0,"locked":false,"updated_at":${now}}`);
    expect((await get("/v1/balance/entries", cookieFor("nobody"))).text).toBe('{"entries":[]}');
  });

  it("a funded account: the posted micro-USD balance and the time of its last change", async () => {
    const t = at(100);
    await fund("alice", 12_500_000n, "fund-alice", "payment", { note: "Card top-up" });
    at(150);
    // A pending hold does not change amount_micro (posted), only what can be drawn.
    expect((await get("/v1/balance", cookieFor("alice"))).text).toBe(`{"amount_micro":12500000,"locked":false,"updated_at":${t}}`);
  });

  it("a frozen account: locked true and locked_at", async () => {
    const funded = at(200);
    await fund("carol", 12_500_000n, "fund-carol");
    const locked = at(300);
    await ledger.lockBalance({ accountId: "carol" });
    at(400);
    expect((await get("/v1/balance", cookieFor("carol"))).text).toBe(
      `{"amount_micro":12500000,"locked":true,"locked_at":${locked},"updated_at":${funded}}`,
    );
  });

  it("answers a Tally account-scoped key for its own account, and refuses a tenant admin key", async () => {
    const k = await admin.createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: "alice", label: "alice" });
    const r = await call("GET", "/v1/balance", { authorization: `Bearer ${k.secret}` });
    expect(r.status).toBe(200);
    expect(r.text).toMatch(/^\{"amount_micro":12500000,"locked":false,"updated_at":\d+\}$/);
    const a = await call("GET", "/v1/balance", { authorization: `Bearer ${server.adminKey}` });
    expect([a.status, a.text]).toEqual([401, '{"error":"auth required"}']);
    const bad = await call("GET", "/v1/balance", { authorization: "Bearer tly_nope" });
    expect([bad.status, bad.text]).toEqual([401, '{"error":"auth required"}']);
  });

  it("keeps tenants apart: the same sub under another tenant's key is that tenant's account", async () => {
    const t2 = await admin.createTenant({ id: "t2", name: "Other" });
    const l2 = clientFor(LedgerService, server.url, "connect-binary", t2.adminKeySecret);
    const a2 = clientFor(AdminService, server.url, "connect-binary", t2.adminKeySecret);
    const created = at(440);
    await l2.createAccount({ id: "alice" });
    const k = await a2.createCredential({ kind: "triport_session_key" });
    const c = cookieFor("alice", { kid: k.credential!.id, secret: Buffer.from(k.secret, "base64url") });
    at(450);
    expect((await get("/v1/balance", c)).text).toBe(`{"amount_micro":0,"locked":false,"updated_at":${created}}`);
    expect((await get("/v1/balance/entries", c)).text).toBe('{"entries":[]}');
    // The default tenant's invoice does not exist for t2's alice.
    await invoice("inv_t1", "alice", "1");
    const p = await pay("inv_t1", c);
    expect([p.status, p.text]).toEqual([404, '{"error":"invoice not found"}']);
  });
});

describe("GET /v1/balance/entries", () => {
  beforeAll(async () => {
    at(1000);
    await fund("dave", 5_000_000n, "d1", "payment", { note: "Top-up" });
    at(1001);
    await charge("dave", 1_250_000n, "d2", "invoice", { metadata: { invoice_id: "inv_9" } });
    at(1002);
    await fund("dave", 250_000n, "d3", "refund", { metadata: { invoice_id: "inv_9" } });
    at(1003);
    // A pending hold and its release move no posted money: not entries.
    const hold = await ledger.postTransfer({ idempotencyKey: "d4", debitAccountId: "dave", creditAccountId: "@world", asset: "USD", amount: 100n, kind: "charge", pending: true });
    await ledger.voidPendingTransfer({ transferId: hold.transfer!.id });
    at(1004);
    await charge("dave", 7n, "d5", "fee");
  });

  const E1 = (id: bigint) => `{"id":${id},"delta_micro":5000000,"kind":"payment_credit","created_at":${Number(T0) + 1000},"note":"Top-up"}`;
  const E2 = (id: bigint) => `{"id":${id},"delta_micro":-1250000,"kind":"invoice_debit","ref_invoice_id":"inv_9","created_at":${Number(T0) + 1001}}`;
  const E3 = (id: bigint) => `{"id":${id},"delta_micro":250000,"kind":"refund","ref_invoice_id":"inv_9","created_at":${Number(T0) + 1002}}`;
  const E5 = (id: bigint) => `{"id":${id},"delta_micro":-7,"kind":"adjust","created_at":${Number(T0) + 1004}}`;

  it("lists posted entries newest first; pages by next_cursor until it is absent", async () => {
    const all = JSON.parse((await get("/v1/balance/entries", cookieFor("dave"))).text) as { entries: { id: number }[] };
    const ids = all.entries.map((e) => BigInt(e.id));
    expect(ids).toHaveLength(4);
    const [i5, i3, i2, i1] = ids as [bigint, bigint, bigint, bigint];
    expect((await get("/v1/balance/entries", cookieFor("dave"))).text).toBe(`{"entries":[${E5(i5)},${E3(i3)},${E2(i2)},${E1(i1)}]}`);
    const p1 = await get("/v1/balance/entries?limit=2", cookieFor("dave"));
    expect(p1.text).toBe(`{"entries":[${E5(i5)},${E3(i3)}],"next_cursor":${i3}}`);
    const p2 = await get(`/v1/balance/entries?limit=2&after_id=${i3}`, cookieFor("dave"));
    expect(p2.text).toBe(`{"entries":[${E2(i2)},${E1(i1)}]}`);
    const p3 = await get(`/v1/balance/entries?limit=1&after_id=${i2}`, cookieFor("dave"));
    expect(p3.text).toBe(`{"entries":[${E1(i1)}]}`);
    expect((await get(`/v1/balance/entries?after_id=${i1}`, cookieFor("dave"))).text).toBe('{"entries":[]}');
    // The entries add up to the balance.
    expect((await get("/v1/balance", cookieFor("dave"))).text).toBe(`{"amount_micro":3999993,"locked":false,"updated_at":${Number(T0) + 1004}}`);
  });

  it("a new account: {\"entries\":[]}", async () => {
    expect((await get("/v1/balance/entries", cookieFor("bob"))).text).toBe('{"entries":[]}');
  });

  it("a missing or non-numeric limit is the default (20); a large one is clamped to 100", async () => {
    at(1100);
    await ledger.postTransfers({
      transfers: Array.from({ length: 101 }, (_, i) => ({ idempotencyKey: `p${i}`, debitAccountId: "@world", creditAccountId: "pager", asset: "USD", amount: BigInt(i + 1), kind: "payment" })),
    });
    const count = async (q: string) => {
      const body = JSON.parse((await get(`/v1/balance/entries${q}`, cookieFor("pager"))).text) as { entries: { id: number; delta_micro: number }[]; next_cursor?: number };
      return [body.entries.length, body.next_cursor === body.entries.at(-1)?.id, body.entries[0]?.delta_micro];
    };
    expect(await count("")).toEqual([20, true, 101]);
    expect(await count("?limit=abc")).toEqual([20, true, 101]);
    expect(await count("?limit=")).toEqual([20, true, 101]);
    expect(await count("?limit=0")).toEqual([20, true, 101]);
    expect(await count("?limit=-5")).toEqual([20, true, 101]);
    expect(await count("?limit=1000")).toEqual([100, true, 101]);
    expect(await count("?limit=3")).toEqual([3, true, 101]);
    // 101 entries: a page of 100 leaves exactly one.
    const first = JSON.parse((await get("/v1/balance/entries?limit=100", cookieFor("pager"))).text) as { next_cursor: number };
    const rest = await get(`/v1/balance/entries?limit=100&after_id=${first.next_cursor}`, cookieFor("pager"));
    expect(rest.text).toMatch(/^\{"entries":\[\{"id":\d+,"delta_micro":1,"kind":"payment_credit","created_at":\d+\}\]\}$/);
  });

  it("a mangled or empty after_id is 400 invalid after_id, never page one", async () => {
    for (const q of ["abc", "-1", "01", "1.5", "", "%20", "1e1", "0x5", "+5", "9223372036854775808"]) {
      const r = await get(`/v1/balance/entries?after_id=${q}`, cookieFor("dave"));
      expect([q, r.status, r.text]).toEqual([q, 400, '{"error":"invalid after_id"}']);
    }
    // Without the key at all it is the first page; with the limit beside an empty cursor, still 400.
    expect((await get("/v1/balance/entries", cookieFor("dave"))).status).toBe(200);
    expect((await get("/v1/balance/entries?limit=2&after_id=", cookieFor("dave"))).status).toBe(400);
  });
});

describe("POST /v1/billing/invoices/{id}/pay-from-balance", () => {
  beforeAll(async () => {
    at(2000);
    await invoice("inv_123", "alice", "2500000");
    await invoice("inv_124", "alice", "1");
    await invoice("inv_carol", "carol", "1000000");
    await invoice("inv_bob", "bob", "1");
  });

  it("debits the invoice amount once and returns the new balance; a repeat returns the same body", async () => {
    at(2100);
    const body = '{"invoice_id":"inv_123","status":"paid","new_balance_micro":10000000}';
    const first = await pay("inv_123", cookieFor("alice"));
    expect([first.status, first.text]).toEqual([200, body]);
    at(2200);
    const again = await pay("inv_123", cookieFor("alice"), "{}");
    expect([again.status, again.text]).toEqual([200, body]);
    expect((await get("/v1/balance", cookieFor("alice"))).text).toBe(`{"amount_micro":10000000,"locked":false,"updated_at":${Number(T0) + 2100}}`);
    const entries = JSON.parse((await get("/v1/balance/entries?limit=1", cookieFor("alice"))).text) as { entries: Record<string, unknown>[] };
    expect(entries.entries[0]).toMatchObject({ delta_micro: -2500000, kind: "invoice_debit", ref_invoice_id: "inv_123", created_at: Number(T0) + 2100, note: "Invoice inv_123" });
  });

  it("concurrent payments of one invoice debit it once", async () => {
    await invoice("inv_race", "alice", "1000000");
    const rs = await Promise.all(Array.from({ length: 8 }, () => pay("inv_race", cookieFor("alice"))));
    for (const r of rs) expect([r.status, r.text]).toEqual([200, '{"invoice_id":"inv_race","status":"paid","new_balance_micro":9000000}']);
    expect(JSON.parse((await get("/v1/balance", cookieFor("alice"))).text).amount_micro).toBe(9000000);
  });

  it("a frozen balance: balance_locked, nothing debited", async () => {
    const r = await pay("inv_carol", cookieFor("carol"));
    expect([r.status, r.text]).toEqual([409, '{"error":"balance_locked"}']);
    expect(JSON.parse((await get("/v1/balance", cookieFor("carol"))).text).amount_micro).toBe(12500000);
  });

  it("not enough balance: insufficient_balance, nothing debited", async () => {
    const r = await pay("inv_bob", cookieFor("bob"));
    expect([r.status, r.text]).toEqual([402, '{"error":"insufficient_balance"}']);
    expect((await get("/v1/balance/entries", cookieFor("bob"))).text).toBe('{"entries":[]}');
    // A user without a Tally account has nothing to draw on either.
    await invoice("inv_nobody", "nobody", "5");
    const n = await pay("inv_nobody", cookieFor("nobody"));
    expect([n.status, n.text]).toEqual([402, '{"error":"insufficient_balance"}']);
  });

  it("someone else's invoice: 403 not_owner, nothing debited", async () => {
    const r = await pay("inv_124", cookieFor("bob"));
    expect([r.status, r.text]).toEqual([403, '{"error":"not_owner"}']);
    const paid = await pay("inv_123", cookieFor("bob"));
    expect([paid.status, paid.text]).toEqual([403, '{"error":"not_owner"}']);
  });

  it("unknown ids, accounts that are not invoices and bad ids: 404 invoice not found", async () => {
    for (const id of ["inv_nope", "bob", "alice", "%40world", "a%2Fb", "x".repeat(129)]) {
      const r = await pay(id, cookieFor("alice"));
      expect([id, r.status, r.text]).toEqual([id, 404, '{"error":"invoice not found"}']);
    }
  });

  it("a body that is not a JSON object is 400 and changes nothing", async () => {
    const r = await pay("inv_124", cookieFor("alice"), "[1]");
    expect(r.status).toBe(400);
    expect(r.text).toMatch(/^\{"error":"[^"]+"\}$/);
    expect(JSON.parse((await get("/v1/balance", cookieFor("alice"))).text).amount_micro).toBe(9000000);
  });
});

/** Reads a text/event-stream response frame by frame, over a raw HTTP/1.1 socket. */
class SseReader {
  private buf = "";
  private wake: (() => void) | undefined;
  private ended = false;
  constructor(readonly res: IncomingMessage) {
    res.setEncoding("utf8");
    res.on("data", (d: string) => {
      this.buf += d;
      this.wake?.();
    });
    res.on("end", () => {
      this.ended = true;
      this.wake?.();
    });
  }

  /** The next block ending in a blank line; keep-alive comments too when `comments`. */
  async next(timeoutMs = 1000, comments = false): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.buf.indexOf("\n\n");
      if (i >= 0) {
        const block = this.buf.slice(0, i + 2);
        this.buf = this.buf.slice(i + 2);
        if (!comments && block.startsWith(":")) continue;
        return block;
      }
      if (this.ended) throw new Error("stream ended");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame within ${timeoutMs} ms (buffer: ${JSON.stringify(this.buf)})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  close(): void {
    this.res.destroy();
  }
}

function openStream(headers: Record<string, string>): Promise<IncomingMessage> {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: "/v1/balance/events", method: "GET", headers: { accept: "text/event-stream", ...headers } }, resolve);
    req.on("error", reject);
    req.end();
  });
}

describe("GET /v1/balance/events", () => {
  it("refuses without a session, in the JSON envelope", async () => {
    const res = await openStream({});
    let text = "";
    for await (const c of res) text += String(c);
    expect([res.statusCode, res.headers["content-type"], text]).toEqual([401, "application/json", '{"error":"auth required"}']);
  });

  it("takes a Tally account-scoped key like the other routes, and refuses a tenant admin key", async () => {
    const k = await admin.createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: "alice", label: "alice-sse" });
    const res = await openStream({ authorization: `Bearer ${k.secret}` });
    expect(res.statusCode).toBe(200);
    const s = new SseReader(res);
    expect(await s.next()).toMatch(/^id: \d+\nevent: snapshot\ndata: \{"amount_micro":\d+,/);
    s.close();
    const refused = await openStream({ authorization: `Bearer ${server.adminKey}` });
    let text = "";
    for await (const c of refused) text += String(c);
    expect([refused.statusCode, text]).toEqual([401, '{"error":"auth required"}']);
  });

  it("sends a snapshot, then each posted change within 1 s of its commit; Last-Event-ID resumes without gaps or repeats", async () => {
    const t1 = at(3000);
    await fund("erin", 1_000_000n, "e1");
    const res = await openStream({ cookie: cookieFor("erin") });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("text/event-stream; charset=utf-8");
    expect(res.headers["cache-control"]).toBe("no-cache");
    const s = new SseReader(res);
    const snap = await s.next();
    const m = /^id: (\d+)\n/.exec(snap);
    expect(m).not.toBeNull();
    const head = BigInt(m![1]!);
    expect(snap).toBe(`id: ${head}\nevent: snapshot\ndata: {"amount_micro":1000000,"locked":false,"updated_at":${t1}}\n\n`);

    // A credit, pushed on commit.
    const t2 = at(3001);
    let sent = Date.now();
    await fund("erin", 500_000n, "e2", "payment");
    const c1 = await s.next(1000);
    expect(Date.now() - sent).toBeLessThan(1000);
    const id1 = BigInt(/^id: (\d+)\n/.exec(c1)![1]!);
    expect(id1).toBeGreaterThan(head);
    expect(c1).toBe(`id: ${id1}\nevent: balance_credit\ndata: {"delta_micro":500000,"new_balance_micro":1500000,"kind":"payment_credit","entry_id":${id1},"at":${t2}}\n\n`);

    // A pending hold sends nothing; the invoice payment after it is the next frame.
    await ledger.postTransfer({ idempotencyKey: "e-hold", debitAccountId: "erin", creditAccountId: "@world", asset: "USD", amount: 1n, kind: "charge", pending: true });
    await invoice("inv_erin", "erin", "200000");
    const t3 = at(3002);
    sent = Date.now();
    expect((await pay("inv_erin", cookieFor("erin"))).text).toBe('{"invoice_id":"inv_erin","status":"paid","new_balance_micro":1300000}');
    const d1 = await s.next(1000);
    expect(Date.now() - sent).toBeLessThan(1000);
    const id2 = BigInt(/^id: (\d+)\n/.exec(d1)![1]!);
    expect(d1).toBe(`id: ${id2}\nevent: balance_debit\ndata: {"delta_micro":-200000,"new_balance_micro":1300000,"kind":"invoice_debit","entry_id":${id2},"at":${t3}}\n\n`);

    // Keep-alive comments arrive on an idle stream (every 300 ms in this test).
    expect(await s.next(1500, true)).toBe(":\n\n");
    s.close();

    // While disconnected: two more changes.
    const t4 = at(3003);
    await charge("erin", 300_000n, "e3", "usage");
    const t5 = at(3004);
    await fund("erin", 50_000n, "e4", "refund");

    const again = new SseReader(await openStream({ cookie: cookieFor("erin"), "last-event-id": String(id2) }));
    // The snapshot is as of the last id seen: the balance the client already had.
    expect(await again.next()).toBe(`id: ${id2}\nevent: snapshot\ndata: {"amount_micro":1300000,"locked":false,"updated_at":${t3}}\n\n`);
    const r1 = await again.next();
    const r2 = await again.next();
    const id3 = BigInt(/^id: (\d+)\n/.exec(r1)![1]!);
    const id4 = BigInt(/^id: (\d+)\n/.exec(r2)![1]!);
    expect(r1).toBe(`id: ${id3}\nevent: balance_debit\ndata: {"delta_micro":-300000,"new_balance_micro":1000000,"kind":"invoice_debit","entry_id":${id3},"at":${t4}}\n\n`);
    expect(r2).toBe(`id: ${id4}\nevent: balance_credit\ndata: {"delta_micro":50000,"new_balance_micro":1050000,"kind":"refund","entry_id":${id4},"at":${t5}}\n\n`);
    // Nothing else is queued: the next block is a keep-alive, not a repeated frame.
    expect(await again.next(1500, true)).toBe(":\n\n");
    // And it is live: the next commit arrives.
    const t6 = at(3005);
    await fund("erin", 1n, "e5");
    const live = await again.next();
    expect(live).toMatch(new RegExp(`^id: \\d+\\nevent: balance_credit\\ndata: \\{"delta_micro":1,"new_balance_micro":1050001,"kind":"payment_credit","entry_id":\\d+,"at":${t6}\\}\\n\\n$`));
    again.close();

    // Reconnecting with the very last id: the current balance and nothing to replay.
    const lastId = /^id: (\d+)\n/.exec(live)![1]!;
    const third = new SseReader(await openStream({ cookie: cookieFor("erin"), "last-event-id": lastId }));
    expect(await third.next()).toBe(`id: ${lastId}\nevent: snapshot\ndata: {"amount_micro":1050001,"locked":false,"updated_at":${t6}}\n\n`);
    expect(await third.next(800, true)).toBe(":\n\n");
    third.close();
  });

  it("an unusable Last-Event-ID (future or garbage) gives a fresh snapshot of the head", async () => {
    for (const id of ["999999999", "abc"]) {
      const s = new SseReader(await openStream({ cookie: cookieFor("erin"), "last-event-id": id }));
      expect(await s.next()).toMatch(/^id: \d+\nevent: snapshot\ndata: \{"amount_micro":1050001,"locked":false,"updated_at":\d+\}\n\n$/);
      s.close();
    }
  });

  it("a user Tally has no account for yet: a zero snapshot, then the first entries once the account appears", async () => {
    const now = at(4000);
    const s = new SseReader(await openStream({ cookie: cookieFor("frank") }));
    expect(await s.next()).toBe(`id: 0\nevent: snapshot\ndata: {"amount_micro":0,"locked":false,"updated_at":${now}}\n\n`);
    await ledger.createAccount({ id: "frank" });
    await fund("frank", 42n, "f1");
    expect(await s.next()).toMatch(new RegExp(`^id: \\d+\\nevent: balance_credit\\ndata: \\{"delta_micro":42,"new_balance_micro":42,"kind":"payment_credit","entry_id":\\d+,"at":${now}\\}\\n\\n$`));
    s.close();
  });
});

describe("the same service over Connect (Tally account-scoped key)", () => {
  it("GetBalance and StreamBalanceEvents answer for the key's account", async () => {
    const k = await admin.createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: "erin", label: "erin" });
    const c = clientFor(BalanceService, server.url, "connect-binary", k.secret);
    expect((await c.getBalance({})).balance?.amountMicro).toBe(1050001n);
    const abort = new AbortController();
    const stream = c.streamBalanceEvents({}, { signal: abort.signal });
    for await (const ev of stream) {
      expect(ev.event.case).toBe("snapshot");
      expect(ev.event.case === "snapshot" ? ev.event.value.amountMicro : undefined).toBe(1050001n);
      break;
    }
    abort.abort();
    const adminClient = clientFor(BalanceService, server.url, "connect-binary", server.adminKey);
    await expect(adminClient.getBalance({})).rejects.toThrow(/auth required/);
  });
});

describe("shutdown", () => {
  // Last in the file: it stops the server (afterAll's close is then a no-op).
  it("ends open event streams promptly, so clients reconnect with Last-Event-ID", async () => {
    const s = new SseReader(await openStream({ cookie: cookieFor("erin") }));
    expect(await s.next()).toMatch(/^id: \d+\nevent: snapshot\n/);
    const started = Date.now();
    const ended = new Promise<void>((resolve) => s.res.once("end", () => resolve()));
    await server.tally.close();
    await ended;
    expect(Date.now() - started).toBeLessThan(1500);
  });
});
