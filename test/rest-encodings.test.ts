import { createHash, createHmac, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { brotliCompressSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { h1Exchange, h2Exchange } from "./support/exchange.js";
import type { RawRequest, RawResponse } from "./support/exchange.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

/**
 * Request bodies in a Content-Encoding on every dialect's REST routes, over
 * real sockets on both HTTP versions: gzip and br bodies get exactly the
 * answer of the same body sent plain (so they are decoded, not parsed as
 * JSON); any other coding is 415 in the dialect's envelope naming the
 * supported ones; corrupt data is 400; a small body that inflates past the
 * message limit is the size limit's 413. Bodies are built and signed here as
 * each vendor's clients would (the signature covers the body as sent).
 */
const MAX = 64 * 1024;
let server: TestServer;

/** How each dialect writes an error, from its wire contract (not from the server's code). */
type Envelope = (status: number, code: { name: string; number: number }, message: string) => string;
const REASONS: Record<number, string> = { 400: "Bad Request", 413: "Payload Too Large", 415: "Unsupported Media Type" };

interface Route {
  readonly dialect: string;
  readonly method: "GET" | "POST";
  readonly path: () => string;
  /** The body a client sends plain ("" for none). */
  readonly body: string;
  /** The headers of an authenticated request carrying exactly `sent`. */
  readonly auth: (sent: Buffer) => Record<string, string>;
  readonly envelope: Envelope;
}

// ---- the dialects' credentials ----

let triportKey: Buffer;
let triportKid: string;
let threePlGuysToken = "";
let frontierBasic = "";
let frontierAccount = "";
let metronomeToken = "";
let blacksheep: { id: string; privateKey: KeyObject };

function triportCookie(sub: string): string {
  const payload = Buffer.from(JSON.stringify({ kid: triportKid, sub, exp: Math.floor(Date.now() / 1000) + 3600 })).toString("base64url");
  return `triport_session=${payload}.${createHmac("sha256", triportKey).update(payload).digest("base64url")}`;
}

/** Blacksheep's signed headers for a POST of `sent` (Content-Digest over the bytes as sent, RFC 9530). */
function blacksheepHeaders(path: string, sent: Buffer): Record<string, string> {
  const ts = String(Math.floor(Date.now() / 1000));
  const nonce = randomBytes(16).toString("base64");
  const digest = `sha-256=:${createHash("sha256").update(sent).digest("base64")}:`;
  const { id } = blacksheep;
  const signed = `${id.length}:${id}:${ts.length}:${ts}:${nonce.length}:${nonce}:POST:${path.length}:${path}:${digest}`;
  const signature = sign(null, Buffer.from(signed, "utf8"), blacksheep.privateKey).toString("base64");
  return { "bs-key-id": id, "bs-timestamp": ts, "bs-nonce": nonce, "bs-signature": signature, "content-digest": digest };
}

const ROUTES: readonly Route[] = [
  {
    dialect: "triport",
    method: "POST",
    path: () => "/v1/billing/invoices/inv-none/pay-from-balance",
    body: "{}",
    auth: () => ({ cookie: triportCookie("enc-alice") }),
    envelope: (_s, _c, m) => JSON.stringify({ error: m }),
  },
  {
    dialect: "3plguys",
    method: "GET",
    path: () => "/v0/balance",
    body: "",
    auth: () => ({ authorization: `Bearer ${threePlGuysToken}` }),
    envelope: (s, _c, m) => JSON.stringify({ message: m, error: REASONS[s], statusCode: s }),
  },
  {
    dialect: "blacksheep",
    method: "POST",
    path: () => "/account.balance.getMany",
    body: "{}",
    auth: (sent) => blacksheepHeaders("/account.balance.getMany", sent),
    envelope: (_s, c, m) => JSON.stringify({ error: { code: c.name, message: m } }),
  },
  {
    dialect: "frontier",
    method: "GET",
    path: () => `/v1beta1/organizations/org-enc/billing/${frontierAccount}/balance`,
    body: "",
    auth: () => ({ authorization: frontierBasic }),
    envelope: (_s, c, m) => JSON.stringify({ code: c.number, message: m, details: [] }),
  },
  {
    dialect: "metronome",
    method: "POST",
    path: () => "/v1/contracts/customerBalances/list",
    body: JSON.stringify({ customer_id: "enc-customer" }),
    auth: () => ({ authorization: `Bearer ${metronomeToken}` }),
    envelope: (_s, _c, m) => JSON.stringify({ message: m }),
  },
];

beforeAll(async () => {
  server = await startTestServer({ maxMessageBytes: MAX });
  const admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
  const ledger = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
  await ledger.createAccount({ id: "enc-alice" });
  await ledger.createAccount({ id: "enc-customer" });
  // A Frontier billing account: its id is generated.
  frontierAccount = (await ledger.createAccount({ metadata: { org_id: "org-enc" } })).account!.id;
  // Credential ids are the server's (test/credential-ids.test.ts): use the ones it returns.
  const t = await admin.createCredential({ kind: "triport_session_key" });
  triportKey = Buffer.from(t.secret, "base64url");
  triportKid = t.credential!.id;
  threePlGuysToken = (await admin.createCredential({ kind: "3plguys_api_key", accountId: "enc-alice", scopes: ["invoices"] })).secret;
  const f = await admin.createCredential({ kind: "frontier_client", orgId: "org-enc" });
  frontierBasic = "Basic " + Buffer.from(`${f.credential!.id}:${f.secret}`).toString("base64");
  metronomeToken = (await admin.createCredential({ kind: "metronome_platform_key", label: "enc" })).secret;
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const b = await admin.createCredential({ kind: "blacksheep_public_key", accountId: "enc-alice", publicKey: Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url") });
  blacksheep = { id: b.credential!.id, privateKey };
});
afterAll(async () => {
  await server?.close();
});

type Exchange = (baseUrl: string, req: RawRequest) => Promise<RawResponse>;
const HTTP_VERSIONS: readonly (readonly [string, Exchange])[] = [
  ["HTTP/1.1", h1Exchange],
  ["HTTP/2", h2Exchange],
];

/** Sends `sent` to the route with `Content-Encoding: coding` (none when undefined), authenticated unless `anonymous`. */
async function send(exchange: Exchange, r: Route, sent: Buffer, coding?: string, anonymous = false): Promise<{ status: number; body: string; headers: Record<string, string> }> {
  const headers: Record<string, string> = {
    ...(anonymous ? {} : r.auth(sent)),
    ...(sent.length > 0 ? { "content-type": "application/json" } : {}),
    ...(coding === undefined ? {} : { "content-encoding": coding }),
    // Node's HTTP/1.1 client frames a GET's body only with a length given.
    ...(sent.length > 0 ? { "content-length": String(sent.length) } : {}),
  };
  const res = await exchange(server.url, { method: r.method, path: r.path(), headers, ...(sent.length > 0 || coding !== undefined ? { body: sent } : {}) });
  return { status: res.status, body: res.body.toString("utf8"), headers: res.headers };
}

const UNSUPPORTED = (name: string) => `content-encoding "${name}" is not supported: supported encodings are gzip, br, identity`;

describe.each(HTTP_VERSIONS)("REST request encodings over %s", (_v, exchange) => {
  describe.each(ROUTES)("$dialect $method", (r) => {
    const plain = Buffer.from(r.body, "utf8");

    it("decodes gzip, x-gzip and br bodies, in any letter case, and takes identity as it is: the plain body's answer, byte for byte", async () => {
      const reference = await send(exchange, r, plain);
      expect([200, 404], reference.body).toContain(reference.status);
      for (const [coding, sent] of [
        ["gzip", gzipSync(plain)],
        ["GZip", gzipSync(plain)],
        ["x-gzip", gzipSync(plain)],
        ["br", brotliCompressSync(plain)],
        ["identity", plain],
      ] as const) {
        const got = await send(exchange, r, sent, coding);
        expect({ coding, status: got.status, body: got.body }).toEqual({ coding, status: reference.status, body: reference.body });
      }
    });

    it("answers any other coding 415 in the dialect's envelope, naming the supported ones, before authentication", async () => {
      for (const anonymous of [false, true]) {
        for (const coding of ["zz", "compress", "deflate"]) {
          const got = await send(exchange, r, gzipSync(plain), coding, anonymous);
          expect(got.status, coding).toBe(415);
          expect(got.body, coding).toBe(r.envelope(415, { name: "unimplemented", number: 12 }, UNSUPPORTED(coding)));
          expect(got.headers["accept-encoding"]).toBe("gzip, br, identity");
        }
      }
      const stacked = await send(exchange, r, brotliCompressSync(gzipSync(plain)), "gzip, br");
      expect(stacked.status).toBe(415);
    });

    it("answers corrupt or truncated gzip and br 400 in the dialect's envelope", async () => {
      const gz = gzipSync(Buffer.from(JSON.stringify({ pad: "x".repeat(200) })));
      for (const [coding, sent] of [
        ["gzip", gz.subarray(0, gz.length - 12)],
        ["gzip", Buffer.from("not gzip at all")],
        ["br", Buffer.from([0xff, 0xff, 0xff, 0xff])],
      ] as const) {
        const got = await send(exchange, r, sent, coding);
        expect(got.status, coding).toBe(400);
        expect(got.body).toBe(r.envelope(400, { name: "invalid_argument", number: 3 }, `the ${coding} data could not be decompressed`));
      }
    });

    it("answers a body that inflates past the message limit 413, the size limit's answer, in the dialect's envelope", async () => {
      const inflated = Buffer.alloc(16 * MAX, 0x20);
      for (const [coding, sent] of [
        ["gzip", gzipSync(inflated)],
        ["br", brotliCompressSync(inflated)],
      ] as const) {
        expect(sent.length).toBeLessThan(MAX);
        const got = await send(exchange, r, sent, coding);
        expect(got.status, coding).toBe(413);
        expect(got.body).toBe(r.envelope(413, { name: "resource_exhausted", number: 8 }, `request body is larger than ${MAX} bytes once decoded`));
      }
      // The raw bytes are bounded too, before any decoding.
      const big = await send(exchange, r, Buffer.alloc(2 * MAX, 0x20), "gzip");
      expect(big.status).toBe(413);
      expect(big.body).toBe(r.envelope(413, { name: "resource_exhausted", number: 8 }, `request body is larger than ${MAX} bytes`));
    });
  });
});

describe("the one deliberate 5xx: an unknown encoding on a Connect route", () => {
  it("is 501 unimplemented naming the supported encodings, as the Connect protocol specifies; REST answers the same mistake 415", async () => {
    const res = await h1Exchange(server.url, {
      method: "POST",
      path: "/tally.ledger.v1.LedgerService/GetAccount",
      headers: { "content-type": "application/json", "content-encoding": "zz", authorization: `Bearer ${server.adminKey}` },
      body: Buffer.from('{"id":"enc-alice"}'),
    });
    expect(res.status).toBe(501);
    expect(JSON.parse(res.body.toString())).toEqual({ code: "unimplemented", message: 'unknown compression "zz": supported encodings are gzip,br' });
    expect(res.headers["accept-encoding"]).toBe("gzip,br");
  });
});

describe("after all of that", () => {
  it("still serves every route", async () => {
    for (const r of ROUTES) {
      const got = await send(h1Exchange, r, Buffer.from(r.body, "utf8"));
      expect([200, 404], `${r.dialect} ${got.body}`).toContain(got.status);
    }
  });
});
