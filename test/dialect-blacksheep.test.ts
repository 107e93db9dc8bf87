import { createHash, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@connectrpc/connect";
import { ConnectError } from "@connectrpc/connect";
import { AccountBalanceService } from "../gen/blacksheep/v1/blacksheep_pb.js";
import { AdminService, KeyScope } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

// Blacksheep clients sign every request with Ed25519. Everything below is
// done as such a client would: raw fetch, headers built by hand, the signed
// string assembled from its documented parts (not from the server's code).

const PATH = "/account.balance.getMany";

interface Key {
  readonly id: string;
  readonly privateKey: KeyObject;
  /** Raw 32-byte public key. */
  readonly raw: Buffer;
}

function newKeyPair(id: string): Key {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url");
  return { id, privateKey, raw };
}

const now = () => String(Math.floor(Date.now() / 1000));
const newNonce = () => randomBytes(16).toString("base64");
const digestOf = (body: string) => `sha-256=:${createHash("sha256").update(body, "utf8").digest("base64")}:`;

interface SignOptions {
  body?: string;
  ts?: string;
  nonce?: string;
  method?: string;
  /** Path and query the signature covers (the request goes to `url`). */
  signedPath?: string;
  url?: string;
  /** Content-Digest to send; default: the body's digest when there is a body. null sends none. */
  digest?: string | null;
  /** Sign with this key instead (same key id). */
  signer?: KeyObject;
}

/** The headers a Blacksheep client sends. */
function signedHeaders(key: Key, o: SignOptions = {}): Record<string, string> {
  const ts = o.ts ?? now();
  const nonce = o.nonce ?? newNonce();
  const method = o.method ?? "POST";
  const pq = o.signedPath ?? o.url ?? PATH;
  const digest = o.digest === undefined ? (o.body ? digestOf(o.body) : null) : o.digest;
  const len = (s: string) => Buffer.byteLength(s, "utf8");
  const signed = `${len(key.id)}:${key.id}:${len(ts)}:${ts}:${len(nonce)}:${nonce}:${method}:${len(pq)}:${pq}:${digest ?? ""}`;
  const signature = sign(null, Buffer.from(signed, "utf8"), o.signer ?? key.privateKey).toString("base64");
  const h: Record<string, string> = { "Bs-Key-Id": key.id, "Bs-Timestamp": ts, "Bs-Nonce": nonce, "Bs-Signature": signature };
  if (digest !== null) h["Content-Digest"] = digest;
  if (o.body) h["Content-Type"] = "application/json";
  return h;
}

let server: TestServer;

async function post(headers: Record<string, string>, body?: string, url = PATH): Promise<{ status: number; text: string; type: string | null }> {
  const res = await fetch(server.url + url, { method: "POST", headers, body: body ?? null });
  return { status: res.status, text: await res.text(), type: res.headers.get("content-type") };
}

/** A correctly signed getMany. */
async function getMany(key: Key, o: SignOptions = {}) {
  return post(signedHeaders(key, o), o.body, o.url);
}

/** The documented balance id: SHA-256 of tenant, account and currency, as a version-8 UUID. */
function expectedId(tenant: string, account: string, code: string): string {
  const b = createHash("sha256").update(`blacksheep.balance\0${tenant}\0${account}\0${code}`).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x80;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function entry(tenant: string, account: string, code: string, value: string, decimals: number): string {
  return `{"id":"${expectedId(tenant, account, code)}","account_id":"${account}","balance":{"value":"${value}","code":"${code}","decimals":${decimals}}}`;
}

let ledger: Client<typeof LedgerService>;
let admin: Client<typeof AdminService>;
const alice = newKeyPair("key-alice");
const aliceSecond = newKeyPair("key-alice-2");
const empty = newKeyPair("key-empty");
const bob = newKeyPair("key-bob");
const revoked = newKeyPair("key-revoked");
const otherTenantKey = newKeyPair("key-t2-alice");
let aliceAccountKey = "";
let t2Ledger: Client<typeof LedgerService>;
let t2Admin: Client<typeof AdminService>;

let seq = 0;
async function pay(client: Client<typeof LedgerService>, debit: string, credit: string, asset: string, amount: bigint, pending = false) {
  return client.postTransfer({ idempotencyKey: `t${++seq}`, debitAccountId: debit, creditAccountId: credit, asset, amount, pending });
}

async function register(client: Client<typeof AdminService>, key: Key, accountId: string) {
  await client.createCredential({ kind: "blacksheep_public_key", accountId, publicKey: key.raw, id: key.id });
}

beforeAll(async () => {
  server = await startTestServer({ dialects: ["blacksheep"] });
  ledger = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
  admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);

  await ledger.defineAsset({ code: "AUD", scale: 6 });
  await ledger.defineAsset({ code: "JPY", scale: 0 });
  for (const id of ["alice", "empty", "bob"]) await ledger.createAccount({ id });
  await pay(ledger, "@world", "alice", "AUD", 1_500_000_000n);
  await pay(ledger, "@world", "alice", "USD", 250_000_000n);
  await pay(ledger, "@world", "alice", "JPY", 9_007_199_254_740_993n); // past 2^53: must stay exact
  // EUR went in and out again: a zero balance, filtered out.
  await pay(ledger, "@world", "alice", "EUR", 700n);
  await pay(ledger, "alice", "@world", "EUR", 700n);
  // GBP only pending (not settled): not held yet.
  await pay(ledger, "@world", "alice", "GBP", 5n, true);
  await pay(ledger, "@world", "bob", "AUD", 42n);
  await pay(ledger, "@world", "bob", "CHF", 7n);

  await register(admin, alice, "alice");
  await register(admin, aliceSecond, "alice");
  await register(admin, empty, "empty");
  await register(admin, bob, "bob");
  await register(admin, revoked, "bob");
  await admin.revokeCredential({ kind: "blacksheep_public_key", id: revoked.id });
  aliceAccountKey = (await admin.createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: "alice" })).secret;

  // A second tenant with an account of the same id.
  const t2 = await admin.createTenant({ id: "t2", name: "Tenant two" });
  t2Ledger = clientFor(LedgerService, server.url, "connect-binary", t2.adminKeySecret);
  t2Admin = clientFor(AdminService, server.url, "connect-binary", t2.adminKeySecret);
  await t2Ledger.createAccount({ id: "alice" });
  await pay(t2Ledger, "@world", "alice", "USD", 1n);
  await register(t2Admin, otherTenantKey, "alice");
}, 30_000);

afterAll(async () => {
  await server?.close();
});

const ALICE =
  `{"data":[${entry("default", "alice", "AUD", "1500000000", 6)},` +
  `${entry("default", "alice", "JPY", "9007199254740993", 0)},` +
  `${entry("default", "alice", "USD", "250000000", 6)}]}`;

describe("POST /account.balance.getMany", () => {
  it("lists every non-zero settled balance, by currency code, amounts exact, with no body", async () => {
    const r = await getMany(alice);
    expect(r.status).toBe(200);
    expect(r.type).toBe("application/json");
    expect(r.text).toBe(ALICE);
    // The id documented in docs/dialects/blacksheep.md for default/alice/AUD.
    expect(JSON.parse(r.text).data[0].id).toBe("60482652-c1cf-8298-b20e-82b19e61ba22");
  });

  it("accepts `{}` with its Content-Digest, and gives the same stable ids", async () => {
    const r = await getMany(alice, { body: "{}" });
    expect(r.status).toBe(200);
    expect(r.text).toBe(ALICE);
    // Another key of the same account sees the same balances under the same ids.
    const second = await getMany(aliceSecond, { body: "{}" });
    expect(second.text).toBe(ALICE);
  });

  it("writes an empty account as {\"data\":[]}", async () => {
    const r = await getMany(empty);
    expect(r.status).toBe(200);
    expect(r.text).toBe('{"data":[]}');
  });

  it("never shows another account's or another tenant's balances", async () => {
    const b = await getMany(bob);
    expect(b.text).toBe(`{"data":[${entry("default", "bob", "AUD", "42", 6)},${entry("default", "bob", "CHF", "7", 6)}]}`);
    const t2 = await getMany(otherTenantKey);
    expect(t2.text).toBe(`{"data":[${entry("t2", "alice", "USD", "1", 6)}]}`);
    // Same account id, different tenant: a different balance id.
    expect(expectedId("t2", "alice", "USD")).not.toBe(expectedId("default", "alice", "USD"));
  });

  it("follows the ledger: a balance that settles appears, one that empties disappears", async () => {
    await pay(ledger, "@world", "empty", "NZD", 3n);
    expect((await getMany(empty)).text).toBe(`{"data":[${entry("default", "empty", "NZD", "3", 6)}]}`);
    await pay(ledger, "empty", "@world", "NZD", 3n);
    expect((await getMany(empty)).text).toBe('{"data":[]}');
  });

  it("reads a Tally account-scoped key's account over Bearer; refuses an admin key", async () => {
    const ok = await post({ authorization: `Bearer ${aliceAccountKey}` });
    expect(ok.status).toBe(200);
    expect(ok.text).toBe(ALICE);
    const no = await post({ authorization: `Bearer ${server.adminKey}` });
    expect(no.status).toBe(403);
    expect(no.text).toBe('{"error":{"code":"forbidden","message":"this key cannot read account balances"}}');
    const bad = await post({ authorization: "Bearer tly_nope" });
    expect(bad.status).toBe(401);
    expect(bad.text).toBe('{"error":"invalid_api_key"}');
  });

  it("serves the same method over Connect for an account key", async () => {
    const c = clientFor(AccountBalanceService, server.url, "connect-json", aliceAccountKey);
    const res = await c.getMany({});
    expect(res.data.map((d) => [d.balance!.code, d.balance!.value])).toEqual([
      ["AUD", 1_500_000_000n],
      ["JPY", 9_007_199_254_740_993n],
      ["USD", 250_000_000n],
    ]);
  });

  it("refuses a body that is not a JSON object, or has unknown fields, in the general envelope", async () => {
    const arr = await getMany(alice, { body: "[]" });
    expect(arr.status).toBe(400);
    expect(arr.text).toBe('{"error":{"code":"invalid_body","message":"the request body must be a JSON object"}}');
    const unknown = await getMany(alice, { body: '{"account_id":"bob"}' });
    expect(unknown.status).toBe(400);
    expect(unknown.text).toBe(
      '{"error":{"code":"invalid_request","message":"cannot decode message blacksheep.v1.GetManyRequest from JSON: key \\"account_id\\" is unknown"}}',
    );
  });
});

describe("other methods", () => {
  it("answers GET with 405, Allow: POST, in Blacksheep's envelope", async () => {
    const res = await fetch(server.url + PATH, { headers: signedHeaders(alice, { method: "GET" }) });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST");
    expect(await res.text()).toBe('{"error":{"code":"unimplemented","message":"method GET not allowed"}}');
  });
});

describe("request signing", () => {
  const refused = async (r: { status: number; text: string }, code: string) => {
    expect(r.status).toBe(401);
    expect(r.text).toBe(`{"error":"${code}"}`);
  };

  it("refuses a request with no signature headers", async () => {
    await refused(await post({}), "missing_signature");
  });

  it("refuses a request missing one signature header", async () => {
    for (const name of ["Bs-Key-Id", "Bs-Timestamp", "Bs-Nonce", "Bs-Signature"]) {
      const h = signedHeaders(alice);
      delete h[name];
      await refused(await post(h), "missing_signature");
    }
  });

  it("refuses an unknown key id and a revoked key", async () => {
    await refused(await getMany(newKeyPair("key-nobody")), "unknown_key");
    await refused(await getMany(revoked), "unknown_key");
  });

  it("refuses a signature by another key, or over another request", async () => {
    const stranger = newKeyPair("x");
    await refused(await getMany(alice, { signer: stranger.privateKey }), "invalid_signature");
    // Signed for another path (or with a query the request does not carry).
    await refused(await getMany(alice, { signedPath: `${PATH}?x=1` }), "invalid_signature");
    await refused(await getMany(alice, { method: "PUT" }), "invalid_signature");
    // Garbage in the header.
    await refused(await post({ ...signedHeaders(alice), "Bs-Signature": "not base64!" }), "invalid_signature");
    // Another key id than the one that signed: bob's key did not sign this.
    await refused(await post({ ...signedHeaders(alice), "Bs-Key-Id": bob.id }), "invalid_signature");
  });

  it("refuses a timestamp outside ±300 s, and a malformed one", async () => {
    const t = Math.floor(Date.now() / 1000);
    await refused(await getMany(alice, { ts: String(t - 310) }), "stale_timestamp");
    await refused(await getMany(alice, { ts: String(t + 310) }), "stale_timestamp");
    await refused(await getMany(alice, { ts: "1.5e9" }), "invalid_timestamp");
    // Inside the window on either side: fine.
    expect((await getMany(alice, { ts: String(t - 250) })).status).toBe(200);
    expect((await getMany(alice, { ts: String(t + 250) })).status).toBe(200);
  });

  it("refuses a nonce that is not 16 bytes of base64", async () => {
    await refused(await getMany(alice, { nonce: randomBytes(8).toString("base64") }), "invalid_nonce");
    await refused(await getMany(alice, { nonce: randomBytes(16).toString("base64url") + "xx" }), "invalid_nonce");
  });

  it("refuses a replayed request, and any reuse of a nonce by the same key", async () => {
    const h = signedHeaders(alice, { body: "{}" });
    const first = await post(h, "{}");
    expect(first.status).toBe(200);
    expect(first.text).toBe(ALICE);
    await refused(await post(h, "{}"), "nonce_reused");
    // Freshly signed, new timestamp, same nonce.
    await refused(await getMany(alice, { nonce: h["Bs-Nonce"]!, ts: String(Number(h["Bs-Timestamp"]) + 1) }), "nonce_reused");
    // Nonces are per key: another key may use the same one.
    expect((await getMany(bob, { nonce: h["Bs-Nonce"]! })).status).toBe(200);
  });

  it("lets exactly one of several concurrent copies of a request through", async () => {
    const h = signedHeaders(alice);
    const results = await Promise.all(Array.from({ length: 6 }, () => post(h)));
    expect(results.map((r) => r.status).sort()).toEqual([200, 401, 401, 401, 401, 401]);
    expect(results.filter((r) => r.status === 401).every((r) => r.text === '{"error":"nonce_reused"}')).toBe(true);
  });

  it("does not burn a nonce on a refused request", async () => {
    const nonce = newNonce();
    const stranger = newKeyPair("y");
    await refused(await getMany(alice, { nonce, signer: stranger.privateKey }), "invalid_signature");
    await refused(await getMany(alice, { nonce, ts: String(Math.floor(Date.now() / 1000) - 1000) }), "stale_timestamp");
    const ok = await getMany(alice, { nonce });
    expect(ok.status).toBe(200);
    expect(ok.text).toBe(ALICE);
  });

  it("refuses a body without Content-Digest, or with a wrong one", async () => {
    await refused(await getMany(alice, { body: "{}", digest: null }), "missing_digest");
    // Signed over the digest of another body.
    await refused(await getMany(alice, { body: "{}", digest: digestOf("{ }") }), "invalid_digest");
    await refused(await getMany(alice, { body: "{}", digest: "sha-512=:AAAA:" }), "invalid_digest");
    // A digest sent with no body must be the empty body's.
    await refused(await getMany(alice, { digest: digestOf("{}") }), "invalid_digest");
    expect((await getMany(alice, { digest: digestOf("") })).status).toBe(200);
  });

  it("authentication runs before the body is read: an unsigned bad body is a 401", async () => {
    await refused(await post({ "content-type": "application/json" }, "[]"), "missing_signature");
  });
});

describe("blacksheep_public_key credentials", () => {
  const code = async (p: Promise<unknown>) => {
    try {
      await p;
      return "ok";
    } catch (e) {
      return `${ConnectError.from(e).code}:${ConnectError.from(e).rawMessage}`;
    }
  };

  it("validates the key, the account and the id", async () => {
    const k = newKeyPair("fresh");
    expect(await code(admin.createCredential({ kind: "blacksheep_public_key", accountId: "alice", publicKey: k.raw.subarray(0, 31), id: "k1" }))).toBe(
      "3:public_key must be a raw 32-byte Ed25519 public key",
    );
    expect(await code(admin.createCredential({ kind: "blacksheep_public_key", publicKey: k.raw, id: "k1" }))).toBe(
      "3:a blacksheep_public_key needs an account_id",
    );
    expect(await code(admin.createCredential({ kind: "blacksheep_public_key", accountId: "nobody", publicKey: k.raw, id: "k1" }))).toBe(
      '5:account "nobody" not found',
    );
    expect(await code(admin.createCredential({ kind: "blacksheep_public_key", accountId: "alice", publicKey: k.raw, id: "has space" }))).toBe(
      "3:a key id is 1-128 characters of A-Z a-z 0-9 . _ ~ -",
    );
    expect(await code(admin.createCredential({ kind: "blacksheep_public_key", accountId: "alice", publicKey: k.raw, id: alice.id }))).toBe(
      '6:a blacksheep_public_key credential "key-alice" already exists',
    );
    // Another tenant's account is not found, exactly like a missing one.
    expect(await code(t2Admin.createCredential({ kind: "blacksheep_public_key", accountId: "bob", publicKey: k.raw, id: "k1" }))).toBe(
      '5:account "bob" not found',
    );
  });

  it("issues a generated id when none is given, usable at once", async () => {
    const k = newKeyPair("");
    const res = await admin.createCredential({ kind: "blacksheep_public_key", accountId: "empty", publicKey: k.raw });
    expect(res.secret).toBe("");
    expect(res.credential!.id).toMatch(/^[0-9a-f]{20}$/);
    const r = await getMany({ ...k, id: res.credential!.id });
    expect(r.text).toBe('{"data":[]}');
  });
});
