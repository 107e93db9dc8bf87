import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { cors as connectCors } from "@connectrpc/connect";
import { GetBalanceRequestSchema } from "../gen/tally/ledger/v1/ledger_pb.js";
import type { Logger } from "../src/transport/log.js";
import { h1Exchange, h2Exchange } from "./support/exchange.js";
import type { RawRequest, RawResponse } from "./support/exchange.js";
import { startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

/**
 * CORS over real sockets, on both HTTP versions of the one port: preflights
 * for RPC and REST paths, the headers of actual answers (errors included),
 * and nothing at all for an origin that is not allowed or when CORS is off.
 */
const ORIGIN = "https://app.example.com";
const OTHER = "https://evil.example.com";
const GET_BALANCE = "/tally.ledger.v1.LedgerService/GetBalance";

const lines: Record<string, unknown>[] = [];
const logger: Logger = {
  info: (msg, fields) => lines.push({ msg, ...fields }),
  error: (msg, fields) => lines.push({ msg, level: "error", ...fields }),
};

let listed: TestServer;
let any: TestServer;
let off: TestServer;
beforeAll(async () => {
  [listed, any, off] = await Promise.all([
    // A small message limit, so that the 413 and 429 refusals take small bodies.
    startTestServer({ corsOrigins: [ORIGIN, "http://localhost:3000"], logger, maxMessageBytes: 4096 }),
    startTestServer({ corsOrigins: ["*"], dialects: ["3plguys"] }),
    startTestServer({ dialects: ["3plguys"] }),
  ]);
});
afterAll(async () => {
  await Promise.all([listed?.close(), any?.close(), off?.close()]);
});

type Exchange = (baseUrl: string, req: RawRequest) => Promise<RawResponse>;
const HTTP_VERSIONS: readonly (readonly [string, Exchange])[] = [
  ["HTTP/1.1", h1Exchange],
  ["HTTP/2", h2Exchange],
];

function preflight(url: string, path: string, origin: string, method: string, requestHeaders: string, exchange: Exchange = h1Exchange): Promise<RawResponse> {
  return exchange(url, {
    method: "OPTIONS",
    path,
    headers: { origin, "access-control-request-method": method, "access-control-request-headers": requestHeaders },
  });
}

function list(value: string | undefined): string[] {
  return (value ?? "").split(",").map((s) => s.trim().toLowerCase()).filter((s) => s !== "");
}

function corsHeadersOf(res: RawResponse): Record<string, string> {
  return Object.fromEntries(Object.entries(res.headers).filter(([k]) => k.startsWith("access-control-")));
}

/** What a browser checks in a preflight's answer before it sends the call. */
function expectPreflightAllows(res: RawResponse, origin: string, method: string, requestHeaders: readonly string[]): void {
  expect(res.status).toBe(204);
  expect(res.headers["access-control-allow-origin"]).toBe(origin);
  expect(res.headers["access-control-allow-credentials"]).toBe("true");
  expect(list(res.headers["vary"])).toContain("origin");
  expect(list(res.headers["access-control-allow-methods"])).toContain(method.toLowerCase());
  expect(list(res.headers["access-control-allow-headers"])).toEqual(expect.arrayContaining(requestHeaders.map((h) => h.toLowerCase())));
  expect(Number(res.headers["access-control-max-age"])).toBeGreaterThan(0);
}

/** What a browser needs on an actual answer to hand it, and its status headers, to the page. */
function expectReadable(res: RawResponse, origin = ORIGIN): void {
  expect(res.headers["access-control-allow-origin"]).toBe(origin);
  expect(list(res.headers["vary"])).toContain("origin");
  expect(list(res.headers["access-control-expose-headers"])).toEqual(
    expect.arrayContaining(["grpc-status", "grpc-message", "grpc-status-details-bin", ...connectCors.exposedHeaders.map((h) => h.toLowerCase())]),
  );
}

/** A gRPC-Web request body: one uncompressed enveloped message. */
function envelope(message: Uint8Array): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

const GRPC_WEB_HEADERS = ["content-type", "x-grpc-web", "x-user-agent", "grpc-timeout", "authorization"];
const CONNECT_HEADERS = ["content-type", "connect-protocol-version", "connect-timeout-ms", "authorization"];

describe("preflights with an allowed origin", () => {
  it.each(HTTP_VERSIONS)("allow a Connect call over %s", async (_v, exchange) => {
    const res = await preflight(listed.url, GET_BALANCE, ORIGIN, "POST", CONNECT_HEADERS.join(","), exchange);
    expectPreflightAllows(res, ORIGIN, "POST", CONNECT_HEADERS);
    // Every method and header connect-es says its protocols use.
    expect(list(res.headers["access-control-allow-methods"])).toEqual(connectCors.allowedMethods.map((m) => m.toLowerCase()));
    expect(list(res.headers["access-control-allow-headers"])).toEqual(expect.arrayContaining(connectCors.allowedHeaders.map((h) => h.toLowerCase())));
  });

  it.each(HTTP_VERSIONS)("allow a gRPC-Web call over %s", async (_v, exchange) => {
    const res = await preflight(listed.url, "/tally.ledger.v1.LedgerService/WatchBalance", ORIGIN, "POST", GRPC_WEB_HEADERS.join(","), exchange);
    expectPreflightAllows(res, ORIGIN, "POST", GRPC_WEB_HEADERS);
  });

  it("allow a Connect GET of a side-effect-free method, and an unknown method of a served service (so its 404 is readable)", async () => {
    expectPreflightAllows(await preflight(listed.url, "/tally.ledger.v1.LedgerService/GetAccount", ORIGIN, "GET", "connect-protocol-version"), ORIGIN, "GET", []);
    expectPreflightAllows(await preflight(listed.url, "/tally.ledger.v1.LedgerService/NoSuchMethod", ORIGIN, "POST", "content-type"), ORIGIN, "POST", []);
  });

  // One path of each dialect (and Triport's event stream), with the method it is served under and the headers its clients send.
  const REST: readonly (readonly [string, string, string, readonly string[]])[] = [
    ["triport", "GET", "/v1/balance", ["last-event-id"]],
    ["triport events", "GET", "/v1/balance/events", ["last-event-id"]],
    ["triport pay", "POST", "/v1/billing/invoices/inv_1/pay-from-balance", ["content-type"]],
    ["3plguys", "GET", "/v0/balance/transactions", ["authorization"]],
    ["blacksheep", "POST", "/account.balance.getMany", ["content-type", "bs-key-id", "bs-timestamp", "bs-nonce", "bs-signature", "content-digest"]],
    ["frontier", "GET", "/v1beta1/organizations/org-1/billing/b-1/balance", ["authorization"]],
    ["metronome", "POST", "/v1/contracts/customerBalances/list", ["authorization", "content-type"]],
  ];
  it.each(REST)("allow the %s REST path under its own method", async (_name, method, path, headers) => {
    for (const [, exchange] of HTTP_VERSIONS) {
      const res = await preflight(listed.url, path, ORIGIN, method, headers.join(","), exchange);
      expectPreflightAllows(res, ORIGIN, method, headers);
      expect(res.headers["access-control-allow-methods"]).toBe(method);
    }
  });

  it("allow every request header a dialect reads (checked on the source of src/dialects)", async () => {
    const read = new Set<string>();
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
    for (const f of files(join(import.meta.dirname, "..", "src", "dialects"))) {
      const text = readFileSync(f, "utf8");
      for (const m of text.matchAll(/headers\.(?:get|has)\(\s*"([^"]+)"|header\(\s*headers\s*,\s*"([^"]+)"/g)) read.add((m[1] ?? m[2]!).toLowerCase());
    }
    // The scan must see what is known to be there, or it proves nothing.
    expect([...read]).toEqual(expect.arrayContaining(["authorization", "bs-key-id", "content-digest", "cookie"]));
    // A browser sends cookies by itself (with credentials); no page may set one.
    read.delete("cookie");
    const res = await preflight(listed.url, "/account.balance.getMany", ORIGIN, "POST", "content-type");
    expect(list(res.headers["access-control-allow-headers"])).toEqual(expect.arrayContaining([...read]));
  });

  it("answer 404 for a path nothing serves", async () => {
    const res = await preflight(listed.url, "/no/such/path", ORIGIN, "GET", "authorization");
    expect(res.status).toBe(404);
    expect(res.headers["access-control-allow-methods"]).toBeUndefined();
  });

  it("are logged, one line each, with the origin and the method asked for", async () => {
    await preflight(listed.url, "/v0/balance?probe=log", ORIGIN, "GET", "authorization");
    await preflight(listed.url, "/v0/balance", OTHER, "GET", "authorization");
    const logged = lines.filter((l) => l["msg"] === "preflight" && l["path"] === "/v0/balance");
    expect(logged.slice(-2)).toEqual([
      expect.objectContaining({ protocol: "cors", http_method: "OPTIONS", origin: ORIGIN, request_method: "GET", status: 204 }),
      expect.objectContaining({ protocol: "cors", http_method: "OPTIONS", origin: OTHER, request_method: "GET", status: 403 }),
    ]);
    // A preflight is not a call: no "rpc" line for it.
    expect(lines.filter((l) => l["msg"] === "rpc" && l["http_method"] === "OPTIONS")).toEqual([]);
  });
});

describe("actual answers to an allowed origin", () => {
  it.each(HTTP_VERSIONS)("carry the origin and expose the status headers: Connect over %s, ok and unauthenticated", async (_v, exchange) => {
    const call = (key: string | undefined) =>
      exchange(listed.url, {
        method: "POST",
        path: GET_BALANCE,
        headers: { origin: ORIGIN, "content-type": "application/json", ...(key === undefined ? {} : { authorization: `Bearer ${key}` }) },
        body: Buffer.from(JSON.stringify({ accountId: "@world", asset: "USD" })),
      });
    const ok = await call(listed.adminKey);
    expect(ok.status).toBe(200);
    expectReadable(ok);
    const refused = await call(undefined);
    expect(refused.status).toBe(401);
    expectReadable(refused);
  });

  it.each(HTTP_VERSIONS)("carry them on a gRPC-Web answer over %s, trailers-only errors included", async (_v, exchange) => {
    const body = envelope(toBinary(GetBalanceRequestSchema, create(GetBalanceRequestSchema, { accountId: "@world", asset: "USD" })));
    const headers = { origin: ORIGIN, "content-type": "application/grpc-web+proto", "x-grpc-web": "1" };
    const ok = await exchange(listed.url, { method: "POST", path: GET_BALANCE, headers: { ...headers, authorization: `Bearer ${listed.adminKey}` }, body });
    expect(ok.status).toBe(200);
    expectReadable(ok);
    const refused = await exchange(listed.url, { method: "POST", path: GET_BALANCE, headers, body });
    // The status comes in a trailer envelope, or (trailers-only) in headers, which the page can read only because they are exposed.
    expect(refused.headers["grpc-status"] ?? /grpc-status: ?(\d+)/.exec(refused.body.toString("latin1"))?.[1]).toBe("16");
    expectReadable(refused);
  });

  it.each(HTTP_VERSIONS)("carry them on the router's and the guards' refusals over %s", async (_v, exchange) => {
    const big = Buffer.alloc(8192, 0x20);
    const answers = {
      "404 unknown path": await exchange(listed.url, { method: "GET", path: "/no/such/path", headers: { origin: ORIGIN } }),
      "404 unknown method": await exchange(listed.url, { method: "POST", path: "/tally.ledger.v1.LedgerService/NoSuchMethod", headers: { origin: ORIGIN, "content-type": "application/json" }, body: Buffer.from("{}") }),
      "405 REST method": await exchange(listed.url, { method: "POST", path: "/v0/balance", headers: { origin: ORIGIN }, body: Buffer.from("{}") }),
      "401 REST": await exchange(listed.url, { method: "GET", path: "/v0/balance", headers: { origin: ORIGIN } }),
      "413 REST body": await exchange(listed.url, { method: "POST", path: "/account.balance.getMany", headers: { origin: ORIGIN, "content-type": "application/json" }, body: big }),
      "429 RPC message": await exchange(listed.url, { method: "POST", path: GET_BALANCE, headers: { origin: ORIGIN, "content-type": "application/json" }, body: big }),
    };
    expect(Object.fromEntries(Object.entries(answers).map(([k, r]) => [k, r.status]))).toEqual({
      "404 unknown path": 404,
      "404 unknown method": 404,
      "405 REST method": 405,
      "401 REST": 401,
      "413 REST body": 413,
      "429 RPC message": 429,
    });
    for (const r of Object.values(answers)) expectReadable(r);
    // The 405's Allow is for the page too.
    expect(list(answers["405 REST method"].headers["access-control-expose-headers"])).toContain("allow");
  });

  it("carry them on a server-sent event stream's error answer", async () => {
    const res = await h1Exchange(listed.url, { method: "GET", path: "/v1/balance/events", headers: { origin: ORIGIN, accept: "text/event-stream" } });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expectReadable(res);
  });
});

describe("an origin that is not allowed", () => {
  it.each(HTTP_VERSIONS)("gets its preflight refused without any CORS header over %s", async (_v, exchange) => {
    for (const path of [GET_BALANCE, "/account.balance.getMany", "/no/such/path"]) {
      const res = await preflight(listed.url, path, OTHER, "POST", "content-type", exchange);
      expect(res.status).toBe(403);
      expect(corsHeadersOf(res)).toEqual({});
      // Still marked as depending on Origin, for caches.
      expect(list(res.headers["vary"])).toContain("origin");
    }
  });

  it.each(HTTP_VERSIONS)("gets actual answers without any CORS header over %s", async (_v, exchange) => {
    for (const origin of [OTHER, `${ORIGIN}/`, ORIGIN.toUpperCase(), "null", `${ORIGIN}, ${OTHER}`]) {
      const res = await exchange(listed.url, {
        method: "POST",
        path: GET_BALANCE,
        headers: { origin, "content-type": "application/json", authorization: `Bearer ${listed.adminKey}` },
        body: Buffer.from("{}"),
      });
      expect(res.status).toBe(400);
      expect(corsHeadersOf(res)).toEqual({});
    }
  });

  it("nor does a request without Origin (not a browser's cross-origin call)", async () => {
    const res = await h1Exchange(listed.url, { method: "GET", path: "/v0/balance", headers: {} });
    expect(corsHeadersOf(res)).toEqual({});
  });
});

describe('"*"', () => {
  it.each(HTTP_VERSIONS)("allows any origin without credentials over %s", async (_v, exchange) => {
    const pre = await preflight(any.url, GET_BALANCE, OTHER, "POST", CONNECT_HEADERS.join(","), exchange);
    expect(pre.status).toBe(204);
    expect(pre.headers["access-control-allow-origin"]).toBe("*");
    expect(pre.headers["access-control-allow-credentials"]).toBeUndefined();
    expect(list(pre.headers["access-control-allow-headers"])).toEqual(expect.arrayContaining(CONNECT_HEADERS));
    const res = await exchange(any.url, { method: "GET", path: "/v0/balance", headers: { origin: OTHER } });
    expect(res.status).toBe(401);
    expect(res.headers["access-control-allow-origin"]).toBe("*");
    expect(res.headers["access-control-allow-credentials"]).toBeUndefined();
    expect(list(res.headers["access-control-expose-headers"])).toContain("grpc-status");
  });
});

describe("CORS is off by default", () => {
  it.each(HTTP_VERSIONS)("a preflight gets no CORS header and is not answered 2xx over %s", async (_v, exchange) => {
    for (const path of [GET_BALANCE, "/v0/balance"]) {
      const res = await preflight(off.url, path, ORIGIN, "POST", "content-type", exchange);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(corsHeadersOf(res)).toEqual({});
    }
    const res = await exchange(off.url, { method: "GET", path: "/v0/balance", headers: { origin: ORIGIN } });
    expect(res.status).toBe(401);
    expect(corsHeadersOf(res)).toEqual({});
    expect(res.headers["vary"]).toBeUndefined();
  });
});
