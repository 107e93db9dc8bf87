/**
 * Request ids, W3C trace context and the request log over real sockets,
 * through the server's real logger (pino, JSON lines): an `x-request-id`
 * sent is echoed and on the request's log line, on every protocol, REST,
 * probes and 404s; a missing or unusable one is replaced by a generated one;
 * a valid `traceparent` continues (the answer names the server's span of the
 * same trace), an invalid one is ignored; every request is logged once, with
 * REST's method, path, dialect and route, 404/405/415, preflights, and
 * authentication failures with their reason and the presented key or
 * credential id, and no secret anywhere; and one start-up line.
 */
import * as http from "node:http";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { jsonLogger } from "../src/transport/log.js";
import { PROTOCOLS, clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

const lines: Record<string, unknown>[] = [];
const out = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const l of chunk.toString("utf8").split("\n")) if (l !== "") lines.push(JSON.parse(l) as Record<string, unknown>);
    done();
  },
});
const ORIGIN = "https://app.example";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ logger: jsonLogger(out, "debug"), dialects: ["3plguys", "blacksheep", "frontier"], corsOrigins: [ORIGIN] });
});
afterAll(async () => {
  await server?.close();
});

/** Log lines written since `from`, once the line for `id` is there (pino writes asynchronously). */
async function lineOf(id: string, msg?: string): Promise<Record<string, unknown>> {
  await expect.poll(() => lines.some((l) => l.request_id === id && (msg === undefined || l.msg === msg))).toBe(true);
  const found = lines.filter((l) => l.request_id === id && (msg === undefined || l.msg === msg));
  expect(found, `one line for ${id}`).toHaveLength(1);
  return found[0]!;
}

interface Raw {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

function h1(method: string, path: string, headers: Record<string, string>, body?: string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${server.url}${path}`, { method, headers }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString("utf8")));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const GENERATED = /^[0-9a-z]{1,10}-[0-9a-z]+$/;
const TRACE = "0af7651916cd43dd8448eb211c80319c";
const PARENT = `00-${TRACE}-b7ad6b7169203331-01`;

describe("x-request-id", () => {
  it.each(PROTOCOLS)("is echoed and logged over %s", async (protocol) => {
    const id = `req-${protocol}-0123`;
    let echoed: string | null = null;
    const client = clientFor(LedgerService, server.url, protocol, server.adminKey);
    await client.getBalance({ accountId: "@world", asset: "USD" }, { headers: { "x-request-id": id }, onHeader: (h) => (echoed = h.get("x-request-id")) });
    expect(echoed).toBe(id);
    expect(await lineOf(id, "rpc")).toMatchObject({ level: "info", procedure: "/tally.ledger.v1.LedgerService/GetBalance", code: "ok", tenant: "default" });
  });

  it("is generated when missing or unusable, and echoed", async () => {
    const seen = new Set<string>();
    for (const sent of [undefined, "has space", "x".repeat(129), "quote\"d", ""]) {
      const res = await h1("GET", "/healthz", sent === undefined ? {} : { "x-request-id": sent });
      const id = String(res.headers["x-request-id"]);
      expect(id).toMatch(GENERATED);
      seen.add(id);
    }
    expect(seen.size).toBe(5);
    const kept = await h1("GET", "/healthz", { "x-request-id": "A-b_c.d:e/f+g=h@i" });
    expect(kept.headers["x-request-id"]).toBe("A-b_c.d:e/f+g=h@i");
    expect((await h1("GET", "/healthz", { "x-request-id": "x".repeat(128) })).headers["x-request-id"]).toBe("x".repeat(128));
  });

  it("is on REST answers and lines, with method, path, dialect and route", async () => {
    const res = await h1("GET", "/v0/balance?x=1", { authorization: `Bearer ${server.adminKey}`, "x-request-id": "rest-1" });
    expect(res.headers["x-request-id"]).toBe("rest-1");
    expect(await lineOf("rest-1", "rpc")).toMatchObject({ protocol: "rest", http_method: "GET", path: "/v0/balance", dialect: "3plguys", route: "GET /v0/balance" });
  });

  it("is on 404s and probes, which are logged (404 at info, probes at debug)", async () => {
    const nf = await h1("GET", "/no/such/path", { "x-request-id": "nf-1" });
    expect([nf.status, nf.headers["x-request-id"]]).toEqual([404, "nf-1"]);
    expect(await lineOf("nf-1")).toMatchObject({ level: "info", msg: "http", kind: "not_found", status: 404, path: "/no/such/path" });
    const um = await h1("POST", "/tally.ledger.v1.LedgerService/NoSuchMethod", { "x-request-id": "um-1", "content-type": "application/json" }, "{}");
    expect([um.status, um.headers["x-request-id"]]).toEqual([404, "um-1"]);
    expect(await lineOf("um-1")).toMatchObject({ level: "info", kind: "unknown_method", status: 404 });
    const probe = await h1("GET", "/readyz", { "x-request-id": "probe-1" });
    expect([probe.status, probe.headers["x-request-id"]]).toEqual([200, "probe-1"]);
    expect(await lineOf("probe-1")).toMatchObject({ level: "debug", kind: "endpoint", path: "/readyz", status: 200 });
  });
});

describe("traceparent", () => {
  it("continues a valid trace: the answer names this server's span of it, and the log line both", async () => {
    for (const protocol of PROTOCOLS) {
      const id = `tp-${protocol}`;
      let answered: string | null = null;
      await clientFor(LedgerService, server.url, protocol, server.adminKey).getBalance(
        { accountId: "@world", asset: "USD" },
        { headers: { "x-request-id": id, traceparent: PARENT }, onHeader: (h) => (answered = h.get("traceparent")) },
      );
      const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(answered ?? "");
      expect(m, `${protocol}: ${answered}`).not.toBeNull();
      expect(m![1]).toBe(TRACE);
      expect(m![2]).not.toBe("b7ad6b7169203331");
      expect(await lineOf(id, "rpc")).toMatchObject({ trace_id: TRACE, span_id: m![2] });
    }
  });

  it("ignores an invalid one (and answers none)", async () => {
    const invalid = [
      `00-${TRACE.toUpperCase()}-b7ad6b7169203331-01`,
      `00-${"0".repeat(32)}-b7ad6b7169203331-01`,
      `00-${TRACE}-${"0".repeat(16)}-01`,
      `ff-${TRACE}-b7ad6b7169203331-01`,
      `00-${TRACE}-b7ad6b7169203331-01-extra`,
      "garbage",
    ];
    for (const [i, tp] of invalid.entries()) {
      let answered: string | null = "unset";
      await clientFor(LedgerService, server.url, "grpc", server.adminKey).getBalance(
        { accountId: "@world", asset: "USD" },
        { headers: { "x-request-id": `bad-tp-${i}`, traceparent: tp }, onHeader: (h) => (answered = h.get("traceparent")) },
      );
      expect(answered, tp).toBeNull();
      expect((await lineOf(`bad-tp-${i}`, "rpc")).trace_id, tp).toBeUndefined();
    }
    // A later version is read by its first four fields.
    let answered: string | null = null;
    await clientFor(LedgerService, server.url, "grpc", server.adminKey).getBalance(
      { accountId: "@world", asset: "USD" },
      { headers: { traceparent: `01-${TRACE}-b7ad6b7169203331-00-more` }, onHeader: (h) => (answered = h.get("traceparent")) },
    );
    expect(answered).toMatch(new RegExp(`^00-${TRACE}-[0-9a-f]{16}-00$`));
  });
});

describe("the request log", () => {
  it("logs 405 and 415 (REST and RPC) once, with request id", async () => {
    const notAllowed = await h1("DELETE", "/v0/balance", { "x-request-id": "r405" });
    expect(notAllowed.status).toBe(405);
    expect(await lineOf("r405", "rpc")).toMatchObject({ protocol: "rest", http_method: "DELETE", path: "/v0/balance", code: "unimplemented", dialect: "3plguys", route: "DELETE /v0/balance" });
    const coding = await h1("GET", "/v0/balance", { "x-request-id": "r415", "content-encoding": "zstd" });
    expect(coding.status).toBe(415);
    expect(await lineOf("r415", "rpc")).toMatchObject({ protocol: "rest", code: "unimplemented", dialect: "3plguys" });
    const rpc = await h1("POST", "/tally.ledger.v1.LedgerService/GetBalance", { "x-request-id": "rpc415", "content-type": "text/plain" }, "hello");
    expect(rpc.status).toBe(415);
    expect(await lineOf("rpc415", "rpc")).toMatchObject({ procedure: "/tally.ledger.v1.LedgerService/GetBalance", http_status: 415 });
  });

  it("logs CORS preflights", async () => {
    const res = await h1("OPTIONS", "/tally.ledger.v1.LedgerService/GetBalance", { origin: ORIGIN, "access-control-request-method": "POST", "x-request-id": "pre-1" });
    expect(res.status).toBe(204);
    expect(String(res.headers["access-control-allow-headers"])).toContain("x-request-id");
    expect(await lineOf("pre-1", "preflight")).toMatchObject({ protocol: "cors", status: 204, origin: ORIGIN });
  });

  it("logs authentication failures with the reason and the presented id, never the secret", async () => {
    const secret = "0123456789abcdefghijklmnopqrstuv";
    const keyId = "k0123456789abcdefghij";
    const bad = `tly_${keyId}_${secret}`;
    await expect(clientFor(LedgerService, server.url, "grpc", bad).getBalance({ accountId: "@world", asset: "USD" }, { headers: { "x-request-id": "auth-1" } })).rejects.toThrow();
    expect(await lineOf("auth-1", "rpc")).toMatchObject({ code: "unauthenticated", reason: "invalid_api_key", credential_id: keyId });
    await h1("GET", "/v0/balance", { authorization: `Bearer ${bad}`, "x-request-id": "auth-2" });
    expect(await lineOf("auth-2", "rpc")).toMatchObject({ protocol: "rest", code: "unauthenticated", reason: "invalid_api_key", credential_id: keyId });
    await h1("GET", "/v0/balance", { "x-request-id": "auth-3" });
    expect(await lineOf("auth-3", "rpc")).toMatchObject({ code: "unauthenticated", reason: "missing_credentials" });
    // A dialect's credentials: a Frontier client id (Basic) and a Blacksheep key id.
    const basic = Buffer.from(`client-77:${secret}`).toString("base64");
    await h1("GET", "/v1beta1/organizations/org-1/billing/acct-1/balance", { authorization: `Basic ${basic}`, "x-request-id": "auth-4" });
    expect(await lineOf("auth-4", "rpc")).toMatchObject({ code: "unauthenticated", reason: "invalid_client_credentials", credential_id: "client-77" });
    const sig = "A".repeat(85) + "A==";
    const nonce = "A".repeat(21) + "A==";
    const bs = await h1("POST", "/account.balance.getMany", { "bs-key-id": "bs-key-9", "bs-timestamp": String(Math.floor(Date.now() / 1000)), "bs-nonce": nonce, "bs-signature": sig, "x-request-id": "auth-5" });
    expect(bs.status).toBe(401);
    expect(await lineOf("auth-5", "rpc")).toMatchObject({ code: "unauthenticated", reason: "invalid_signature", credential_id: "bs-key-9" });
    expect(JSON.stringify(lines)).not.toContain(secret);
    expect(JSON.stringify(lines)).not.toContain(basic);
    expect(JSON.stringify(lines)).not.toContain(server.adminKey.slice(-32));
  });

  it("writes one start-up line: version, store, durability, dialects and limits", () => {
    const started = lines.filter((l) => l.msg === "tally started");
    expect(started).toHaveLength(1);
    expect(started[0]).toMatchObject({
      level: "info",
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      store: "sqlite",
      durability: "full",
      dialects: ["3plguys", "blacksheep", "frontier"],
      metrics: "/metrics",
      request_ids: true,
      limits: { max_message_bytes: 1024 * 1024, streams_per_tenant: 100 },
    });
    expect(typeof started[0]!.time).toBe("number");
  });
});
