import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { GrpcJsonSession, connectGet, connectPost, grpcWebJson } from "./support/rpc-wire.js";
import type { WireOutcome } from "./support/rpc-wire.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

/*
 * The strict integer rule on Tally's own 32-bit fields, through a real server
 * and a real database: DefineAsset `scale` (uint32, fixed forever once
 * defined), page sizes (int32), the API key scope (an enum), and a vendor
 * dialect's `limit` in a REST body (Metronome, optional int32). Each
 * non-canonical value is invalid_argument naming the field, and nothing is
 * written. The full matrix over every kind and path: test/strict-ints.test.ts.
 */

let server: TestServer;
let grpc: GrpcJsonSession;
let auth: Record<string, string>;
let metronomeToken = "";
const LEDGER = "/tally.ledger.v1.LedgerService";

beforeAll(async () => {
  server = await startTestServer({ dialects: ["metronome"] });
  auth = { authorization: `Bearer ${server.adminKey}` };
  grpc = new GrpcJsonSession(server.url);
  const ledger = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
  for (const id of ["ia", "ib", "ic"]) await ledger.createAccount({ id });
  for (let i = 0; i < 3; i++) {
    await ledger.postTransfer({ idempotencyKey: `strict-ints-${i}`, debitAccountId: "@world", creditAccountId: "ia", asset: "USD", amount: 1n });
  }
  metronomeToken = (await clientFor(AdminService, server.url, "connect-binary", server.adminKey).createCredential({ kind: "metronome_platform_key", label: "t" })).secret;
});
afterAll(async () => {
  grpc?.close();
  await server?.close();
});

/** Non-canonical spellings of small numbers, and out-of-range values, as raw JSON. */
const BAD = ['"0x6"', '"0b11"', '"0o7"', '"1e1"', "1e1", '"+2"', '"06"', "3.0", '"3.0"', '"-0"', "-0", '" 6"', "6.5"];

function expectRefused(o: WireOutcome, field: string, what: string): void {
  expect(o.ok, what).toBe(false);
  if (o.ok) return;
  expect(o.code, what).toBe("invalid_argument");
  expect(o.message.startsWith(`${field}: `), `${what}: ${o.message}`).toBe(true);
}

async function assets(): Promise<Record<string, number>> {
  const o = await connectPost(server.url, `${LEDGER}/ListAssets`, "{}", auth);
  if (!o.ok) throw new Error(o.message);
  const list = (o.message.assets ?? []) as { code: string; scale?: number }[];
  return Object.fromEntries(list.map((a) => [a.code, a.scale ?? 0]));
}

describe("DefineAsset scale (uint32): fixed forever, so never guessed", () => {
  const protocols: [string, (json: string) => Promise<WireOutcome>][] = [
    ["Connect JSON", (json) => connectPost(server.url, `${LEDGER}/DefineAsset`, json, auth)],
    ["gRPC JSON", (json) => grpc.call(`${LEDGER}/DefineAsset`, json, auth)],
    ["gRPC-Web JSON", (json) => grpcWebJson(server.url, `${LEDGER}/DefineAsset`, json, auth)],
  ];

  it.each(protocols.map(([name, send], i) => [name, send, `ZS${i}`] as const))("over %s, refuses every non-canonical or negative scale and defines nothing", async (_name, send, code) => {
    for (const v of [...BAD, "-1", '"-1"', "4294967296", '"4294967296"']) {
      const o = await send(`{"code":"${code}","scale":${v}}`);
      expectRefused(o, "scale", v);
      if (!o.ok && v.includes("-1")) expect(o.message).toBe(`scale: -1 is outside the range of uint32`);
    }
    expect(await assets()).not.toHaveProperty(code);
    const ok = await send(`{"code":"${code}","scale":"4"}`);
    expect(ok.ok, JSON.stringify(ok)).toBe(true);
    expect((await assets())[code]).toBe(4);
  });

  it('answers "0x6", the issue\'s example, naming the field and the rule', async () => {
    const o = await connectPost(server.url, `${LEDGER}/DefineAsset`, '{"code":"ZHEX","scale":"0x6"}', auth);
    expect(o).toEqual({
      ok: false,
      code: "invalid_argument",
      message: 'scale: 32-bit integers must be decimal integers such as 6 or "6" (no fraction, exponent, "+", leading zero or -0), got "0x6"',
    });
    expect(await assets()).not.toHaveProperty("ZHEX");
  });
});

describe("page sizes (int32)", () => {
  it("ListAccounts page_size, over Connect GET and POST: 1e3 and friends are refused, canonical values page", async () => {
    for (const send of [connectGet, connectPost]) {
      for (const v of [...BAD, '"1e3"', "1e3", "2147483648"]) {
        expectRefused(await send(server.url, `${LEDGER}/ListAccounts`, `{"pageSize":${v}}`, auth), "page_size", v);
      }
      for (const v of ["2", '"2"']) {
        const o = await send(server.url, `${LEDGER}/ListAccounts`, `{"pageSize":${v}}`, auth);
        expect(o.ok && (o.message.accounts as unknown[]).length, v).toBe(2);
      }
    }
  });

  it("ListTransactions page_size, over gRPC-Web JSON and gRPC JSON", async () => {
    for (const send of [(json: string) => grpcWebJson(server.url, `${LEDGER}/ListTransactions`, json, auth), (json: string) => grpc.call(`${LEDGER}/ListTransactions`, json, auth)]) {
      for (const v of BAD) expectRefused(await send(`{"accountId":"ia","page_size":${v}}`), "page_size", v);
      const o = await send('{"accountId":"ia","page_size":2}');
      expect(o.ok && (o.message.transactions as unknown[]).length).toBe(2);
    }
  });

  it("CreditService ListBalances page_size", async () => {
    const o = await connectPost(server.url, "/tally.credits.v1.CreditService/ListBalances", '{"customerId":"ia","pageSize":"1e1"}', auth);
    expectRefused(o, "page_size", "1e1");
  });
});

describe("an enum given as a number: the API key scope", () => {
  it("refuses 1.0, 1e0 and -0 (1 would be a tenant admin key) and takes canonical numbers and names", async () => {
    for (const v of ["1.0", "1e0", "-0", "2.0", "2147483648"]) {
      const o = await connectPost(server.url, "/tally.admin.v1.AdminService/CreateApiKey", `{"scope":${v},"label":"probe"}`, auth);
      expectRefused(o, "scope", v);
    }
    const byNumber = await connectPost(server.url, "/tally.admin.v1.AdminService/CreateApiKey", '{"scope":2,"accountId":"ia"}', auth);
    expect(byNumber.ok && (byNumber.message.key as { scope: string }).scope).toBe("KEY_SCOPE_ACCOUNT_READ");
    const byName = await connectPost(server.url, "/tally.admin.v1.AdminService/CreateApiKey", '{"scope":"KEY_SCOPE_ACCOUNT_READ","accountId":"ia"}', auth);
    expect(byName.ok).toBe(true);
  });
});

describe("a vendor dialect's 32-bit field in a REST body: Metronome limit", () => {
  async function list(body: string): Promise<{ status: number; body: string }> {
    const res = await fetch(`${server.url}/v1/contracts/customerBalances/list`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${metronomeToken}` },
      body,
    });
    return { status: res.status, body: await res.text() };
  }

  it("answers 400 in Metronome's envelope naming limit, and pages with a canonical one", async () => {
    for (const v of [...BAD, "1e1", "2.5"]) {
      const r = await list(`{"customer_id":"ia","limit":${v}}`);
      expect(r.status, v).toBe(400);
      expect((JSON.parse(r.body) as { message: string }).message, v).toMatch(/^limit: 32-bit integers must be decimal integers/);
    }
    expect(await list('{"customer_id":"ia","limit":2147483648}')).toEqual({ status: 400, body: JSON.stringify({ message: "limit: 2147483648 is outside the range of int32" }) });
    // In range but not a page size: the dialect's own rule, after the wire's.
    expect(await list('{"customer_id":"ia","limit":-1}')).toEqual({ status: 400, body: JSON.stringify({ message: "limit must be between 1 and 25" }) });
    expect((await list('{"customer_id":"ia","limit":5}')).status).toBe(200);
  });
});
