import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GetAccountRequestSchema, GetBalanceRequestSchema, WatchBalanceRequestSchema } from "../gen/tally/ledger/v1/ledger_pb.js";
import { h1Exchange, h2Exchange } from "./support/exchange.js";
import type { RawRequest, RawResponse } from "./support/exchange.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";

/**
 * Tally's protocol semantics are stock connect-node's: the same services,
 * mounted on stock `connectNodeAdapter` with the same router options, are the
 * reference, and every cell of protocol × case below must come back the same
 * from both (status, the headers that carry protocol meaning, trailers, and
 * the body byte for byte). Where Tally differs on purpose, the cell says so
 * and asserts both sides.
 */
const MAX_BYTES = 64 * 1024;

let tally: TestServer;
let refH2: http2.Http2Server;
let refH1: http.Server;
let refH2Url = "";
let refH1Url = "";

beforeAll(async () => {
  tally = await startTestServer({ maxMessageBytes: MAX_BYTES });
  const adapter = connectNodeAdapter({ ...tally.tally.connect.options, routes: tally.tally.connect.routes });
  refH2 = http2.createServer(adapter);
  refH1 = http.createServer(adapter);
  await new Promise<void>((r) => refH2.listen(0, "127.0.0.1", r));
  await new Promise<void>((r) => refH1.listen(0, "127.0.0.1", r));
  refH2Url = `http://127.0.0.1:${(refH2.address() as AddressInfo).port}`;
  refH1Url = `http://127.0.0.1:${(refH1.address() as AddressInfo).port}`;
  // A response large enough to be compressed (connect compresses from 1 KiB).
  const client = clientFor(LedgerService, tally.url, "grpc", tally.adminKey);
  const metadata = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`k${i}`, "v".repeat(200)]));
  await client.createAccount({ id: "big", metadata });
  await client.createAccount({ id: "watched" });
});
afterAll(async () => {
  refH2?.close();
  refH1?.close();
  await tally?.close();
});

// ---- protocols ---------------------------------------------------------------

type Kind = "unary" | "stream";

interface Protocol {
  readonly name: string;
  readonly family: "grpc" | "grpc-web" | "connect";
  readonly json: boolean;
  readonly http: "h2" | "h1";
  /** Connect GET: unary calls only, the message in the query. */
  readonly get?: true;
  /** Headers and body (or, for a GET, query) of a call carrying `message` (a Buffer: raw bytes given as is). */
  request<D extends DescMessage>(kind: Kind, schema: D, message: MessageInitShape<D> | Buffer, extra?: CallExtras): Call;
}

interface Call {
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  /** A GET's query string; the call is a POST without one. */
  readonly query?: string;
}

interface CallExtras {
  readonly key?: string | undefined;
  /** A raw timeout header value, valid or not. */
  readonly rawTimeout?: string;
  readonly gzipRequest?: boolean;
  /** Names this request compression without compressing the message. */
  readonly rawEncoding?: string;
  readonly acceptGzip?: boolean;
  readonly timeoutMs?: number;
  readonly contentType?: string;
}

function envelope(flags: number, data: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = flags;
  prefix.writeUInt32BE(data.length, 1);
  return Buffer.concat([prefix, data]);
}

function encode<D extends DescMessage>(schema: D, message: MessageInitShape<D> | Buffer, json: boolean): Buffer {
  if (Buffer.isBuffer(message)) return message;
  const m = create(schema, message);
  return json ? Buffer.from(toJsonString(schema, m)) : Buffer.from(toBinary(schema, m));
}

function auth(key: string | undefined): Record<string, string> {
  return key === undefined ? {} : { authorization: `Bearer ${key}` };
}

const grpcLike = (name: string, httpVersion: "h2" | "h1", contentType: string): Protocol => ({
  name,
  family: contentType.startsWith("application/grpc-web") ? "grpc-web" : "grpc",
  json: false,
  http: httpVersion,
  request(_kind, schema, message, x = {}) {
    const data = encode(schema, message, false);
    const body = x.gzipRequest ? envelope(1, gzipSync(data)) : envelope(0, data);
    return {
      headers: {
        "content-type": x.contentType ?? contentType,
        ...(httpVersion === "h2" ? { te: "trailers" } : {}),
        ...auth(x.key),
        ...(x.gzipRequest ? { "grpc-encoding": "gzip" } : {}),
        ...(x.rawEncoding !== undefined ? { "grpc-encoding": x.rawEncoding } : {}),
        ...(x.acceptGzip ? { "grpc-accept-encoding": "gzip" } : {}),
        ...(x.timeoutMs !== undefined ? { "grpc-timeout": `${x.timeoutMs}m` } : {}),
        ...(x.rawTimeout !== undefined ? { "grpc-timeout": x.rawTimeout } : {}),
      },
      body,
    };
  },
});

const connectLike = (name: string, httpVersion: "h2" | "h1", json: boolean): Protocol => ({
  name,
  family: "connect",
  json,
  http: httpVersion,
  request(kind, schema, message, x = {}) {
    const data = encode(schema, message, json);
    const timeout: Record<string, string> =
      x.rawTimeout !== undefined ? { "connect-timeout-ms": x.rawTimeout } : x.timeoutMs !== undefined ? { "connect-timeout-ms": String(x.timeoutMs) } : {};
    if (kind === "unary") {
      return {
        headers: {
          "content-type": x.contentType ?? (json ? "application/json" : "application/proto"),
          "connect-protocol-version": "1",
          ...auth(x.key),
          ...(x.gzipRequest ? { "content-encoding": "gzip" } : {}),
          ...(x.rawEncoding !== undefined ? { "content-encoding": x.rawEncoding } : {}),
          ...(x.acceptGzip ? { "accept-encoding": "gzip" } : {}),
          ...timeout,
        },
        body: x.gzipRequest ? gzipSync(data) : data,
      };
    }
    return {
      headers: {
        "content-type": x.contentType ?? (json ? "application/connect+json" : "application/connect+proto"),
        "connect-protocol-version": "1",
        ...auth(x.key),
        ...(x.gzipRequest ? { "connect-content-encoding": "gzip" } : {}),
        ...(x.rawEncoding !== undefined ? { "connect-content-encoding": x.rawEncoding } : {}),
        ...(x.acceptGzip ? { "connect-accept-encoding": "gzip" } : {}),
        ...timeout,
      },
      body: x.gzipRequest ? envelope(1, gzipSync(data)) : envelope(0, data),
    };
  },
});

/** Connect GET (side-effect-free unary methods): the message, base64 when binary or compressed, in the query. */
const connectGet = (name: string, httpVersion: "h2" | "h1", json: boolean): Protocol => ({
  name,
  family: "connect",
  json,
  http: httpVersion,
  get: true,
  request(_kind, schema, message, x = {}) {
    let data = encode(schema, message, json);
    const q = new URLSearchParams({ connect: "v1", encoding: json ? "json" : "proto" });
    if (x.gzipRequest) data = gzipSync(data);
    const compression = x.gzipRequest ? "gzip" : x.rawEncoding;
    if (compression !== undefined) q.set("compression", compression);
    if (json && !x.gzipRequest) q.set("message", data.toString("utf8"));
    else {
      q.set("base64", "1");
      q.set("message", data.toString("base64url"));
    }
    const timeout: Record<string, string> =
      x.rawTimeout !== undefined ? { "connect-timeout-ms": x.rawTimeout } : x.timeoutMs !== undefined ? { "connect-timeout-ms": String(x.timeoutMs) } : {};
    return {
      headers: {
        ...(x.contentType !== undefined ? { "content-type": x.contentType } : {}),
        ...auth(x.key),
        ...(x.acceptGzip ? { "accept-encoding": "gzip" } : {}),
        ...timeout,
      },
      body: Buffer.alloc(0),
      query: q.toString(),
    };
  },
});

const PROTOCOLS: readonly Protocol[] = [
  grpcLike("gRPC", "h2", "application/grpc"),
  grpcLike("gRPC-Web", "h1", "application/grpc-web+proto"),
  grpcLike("gRPC-Web over HTTP/2", "h2", "application/grpc-web+proto"),
  connectLike("Connect binary", "h2", false),
  connectLike("Connect binary over HTTP/1.1", "h1", false),
  connectLike("Connect JSON", "h1", true),
  connectLike("Connect JSON over HTTP/2", "h2", true),
  connectGet("Connect GET binary", "h2", false),
  connectGet("Connect GET JSON", "h1", true),
];

// ---- cases -------------------------------------------------------------------

interface Case {
  readonly name: string;
  build(p: Protocol): RawRequest;
  /** What the cell must show, so that two equal answers are also the right one. */
  readonly expect: (r: RawResponse, p: Protocol) => void;
  /** Protocols the case exists for (all when absent). */
  readonly only?: (p: Protocol) => boolean;
  /** A deliberate difference: checks both answers instead of comparing them. */
  readonly differs?: (tally: RawResponse, reference: RawResponse, p: Protocol) => void;
}

const SVC = "/tally.ledger.v1.LedgerService";
const key = () => tally.adminKey;
const post = (path: string, r: Call, until?: RawRequest["until"]): RawRequest => ({
  method: r.query === undefined ? "POST" : "GET",
  path: r.query === undefined ? path : `${path}?${r.query}`,
  headers: r.headers,
  body: r.body,
  ...(until ? { until } : {}),
});
const getBalance = { accountId: "@world", asset: "USD" };
const watched = { accountId: "watched", asset: "USD" };

const CASES: readonly Case[] = [
  { name: "unary ok", expect: (r, p) => expect(codeOf(r, p)).toBe("ok"), build: (p) => post(`${SVC}/GetBalance`, p.request("unary", GetBalanceRequestSchema, getBalance, { key: key() })) },
  {
    name: "unary error with details",
    expect: (r, p) => {
      expect(codeOf(r, p)).toBe("not_found");
      if (p.family === "grpc") expect(r.trailers["grpc-status-details-bin"]).toBeTruthy();
    },
    build: (p) => post(`${SVC}/GetAccount`, p.request("unary", GetAccountRequestSchema, { id: "no-such-account" }, { key: key() })),
  },
  { name: "trailers-only error (no key)", expect: (r, p) => expect(codeOf(r, p)).toBe("unauthenticated"), build: (p) => post(`${SVC}/GetBalance`, p.request("unary", GetBalanceRequestSchema, getBalance)) },
  { name: "unknown method", expect: (r) => expect(r.status).toBe(404), build: (p) => post(`${SVC}/NoSuchMethod`, p.request("unary", GetBalanceRequestSchema, getBalance, { key: key() })) },
  {
    name: "unsupported content type",
    expect: (r) => expect(r.status).toBe(415),
    build: (p) =>
      post(`${SVC}/GetBalance`, p.request("unary", GetBalanceRequestSchema, getBalance, { key: key(), contentType: p.family !== "connect" ? "application/grpc+bogus" : "application/bogus" })),
  },
  {
    name: "unparseable timeout",
    expect: (r, p) => expect(codeOf(r, p)).toBe("invalid_argument"),
    build: (p) => post(`${SVC}/GetBalance`, p.request("unary", GetBalanceRequestSchema, getBalance, { key: key(), rawTimeout: "12x" })),
  },
  {
    name: "timeout above the server's maximum",
    expect: (r, p) => expect(codeOf(r, p)).toBe("invalid_argument"),
    build: (p) => post(`${SVC}/GetBalance`, p.request("unary", GetBalanceRequestSchema, getBalance, { key: key(), timeoutMs: 10 * 60_000 })),
  },
  {
    name: "unknown request compression",
    expect: (r, p) => expect(codeOf(r, p)).toBe("unimplemented"),
    build: (p) => post(`${SVC}/GetBalance`, p.request("unary", GetBalanceRequestSchema, getBalance, { key: key(), rawEncoding: "snappy" })),
  },
  {
    name: "two messages for a unary method",
    // Only enveloped protocols can carry two; a Connect unary body is one message by construction.
    only: (p) => p.family !== "connect",
    expect: (r, p) => expect(codeOf(r, p)).toBe("unimplemented"),
    build: (p) => {
      const r = p.request("unary", GetBalanceRequestSchema, getBalance, { key: key() });
      return post(`${SVC}/GetBalance`, { headers: r.headers, body: Buffer.concat([r.body, r.body]) });
    },
  },
  {
    name: "an incomplete envelope",
    only: (p) => p.family !== "connect",
    expect: (r, p) => expect(codeOf(r, p)).toBe("invalid_argument"),
    build: (p) => {
      const r = p.request("unary", GetBalanceRequestSchema, getBalance, { key: key() });
      return post(`${SVC}/GetBalance`, { headers: r.headers, body: r.body.subarray(0, r.body.length - 1) });
    },
  },
  { name: "gzip request", expect: (r, p) => expect(codeOf(r, p)).toBe("ok"), build: (p) => post(`${SVC}/GetBalance`, p.request("unary", GetBalanceRequestSchema, getBalance, { key: key(), gzipRequest: true })) },
  { name: "gzip response", expect: (r, p) => expect(p.family !== "connect" ? r.headers["grpc-encoding"] : r.headers["content-encoding"]).toBe("gzip"), build: (p) => post(`${SVC}/GetAccount`, p.request("unary", GetAccountRequestSchema, { id: "big" }, { key: key(), acceptGzip: true })) },
  {
    name: "oversized message",
    // A GET's message is in its URL, which the HTTP header limit bounds long before the message limit.
    only: (p) => !p.get,
    expect: (r, p) => expect(codeOf(r, p)).toBe("resource_exhausted"),
    build: (p) => post(`${SVC}/GetAccount`, p.request("unary", GetAccountRequestSchema, { id: "x".repeat(MAX_BYTES + 100) }, { key: key() })),
  },
  {
    name: "malformed message",
    expect: (r, p) => expect(codeOf(r, p)).toBe("invalid_argument"),
    build: (p) =>
      post(`${SVC}/GetBalance`, p.request("unary", GetBalanceRequestSchema, p.json ? Buffer.from('{"accountId": ') : Buffer.from([0x0a, 0xff]), { key: key() })),
    // Tally never blames itself for a client's bytes: invalid_argument where stock connect-node says internal.
    differs: (_t, r, p) => expect(codeOf(r, p)).toBe(p.json ? "invalid_argument" : "internal"),
  },
  {
    name: "server stream ok (first message, then client cancel)",
    expect: (r) => expect(r.body.length).toBeGreaterThan(5),
    build: (p) => post(`${SVC}/WatchBalance`, p.request("stream", WatchBalanceRequestSchema, { accountId: "watched", asset: "USD" }, { key: key() }), "first-envelope"),
  },
  { name: "server stream, no key", expect: (r, p) => expect(codeOf(r, p)).toBe("unauthenticated"), build: (p) => post(`${SVC}/WatchBalance`, p.request("stream", WatchBalanceRequestSchema, { accountId: "watched", asset: "USD" })) },
  {
    name: "server stream deadline exceeded",
    expect: (r, p) => expect(codeOf(r, p)).toBe("deadline_exceeded"),
    build: (p) => post(`${SVC}/WatchBalance`, p.request("stream", WatchBalanceRequestSchema, { accountId: "watched", asset: "USD" }, { key: key(), timeoutMs: 300 })),
  },
  {
    name: "server stream error with details",
    expect: (r, p) => {
      expect(codeOf(r, p)).toBe("not_found");
      if (p.family === "grpc") expect(r.trailers["grpc-status-details-bin"]).toBeTruthy();
    },
    build: (p) => post(`${SVC}/WatchBalance`, p.request("stream", WatchBalanceRequestSchema, { accountId: "no-such-account", asset: "USD" }, { key: key() })),
  },
  {
    name: "server stream, unsupported content type",
    expect: (r) => expect(r.status).toBe(415),
    build: (p) =>
      post(`${SVC}/WatchBalance`, p.request("stream", WatchBalanceRequestSchema, watched, { key: key(), contentType: p.family !== "connect" ? "application/grpc+bogus" : "application/connect+bogus" })),
  },
  {
    name: "server stream, unparseable timeout",
    expect: (r, p) => expect(codeOf(r, p)).toBe("invalid_argument"),
    build: (p) => post(`${SVC}/WatchBalance`, p.request("stream", WatchBalanceRequestSchema, watched, { key: key(), rawTimeout: "12x" })),
  },
  {
    name: "server stream, unknown request compression",
    expect: (r, p) => expect(codeOf(r, p)).toBe("unimplemented"),
    build: (p) => post(`${SVC}/WatchBalance`, p.request("stream", WatchBalanceRequestSchema, watched, { key: key(), rawEncoding: "snappy" })),
  },
  {
    name: "server stream, gzip request",
    expect: (r) => expect(r.body.length).toBeGreaterThan(5),
    build: (p) => post(`${SVC}/WatchBalance`, p.request("stream", WatchBalanceRequestSchema, watched, { key: key(), gzipRequest: true }), "first-envelope"),
  },
  {
    name: "server stream, gzip response negotiated",
    expect: (r, p) => expect(r.headers[p.family !== "connect" ? "grpc-encoding" : "connect-content-encoding"]).toBe("gzip"),
    build: (p) => post(`${SVC}/WatchBalance`, p.request("stream", WatchBalanceRequestSchema, watched, { key: key(), acceptGzip: true }), "first-envelope"),
  },
  {
    name: "server stream, two request messages",
    expect: (r, p) => expect(codeOf(r, p)).toBe("unimplemented"),
    build: (p) => {
      const r = p.request("stream", WatchBalanceRequestSchema, watched, { key: key() });
      return post(`${SVC}/WatchBalance`, { headers: r.headers, body: Buffer.concat([r.body, r.body]) });
    },
  },
  {
    name: "server stream, an incomplete envelope",
    expect: (r, p) => expect(codeOf(r, p)).toBe("invalid_argument"),
    build: (p) => {
      const r = p.request("stream", WatchBalanceRequestSchema, watched, { key: key() });
      return post(`${SVC}/WatchBalance`, { headers: r.headers, body: r.body.subarray(0, r.body.length - 1) });
    },
  },
  {
    name: "server stream, oversized message",
    expect: (r, p) => expect(codeOf(r, p)).toBe("resource_exhausted"),
    build: (p) => post(`${SVC}/WatchBalance`, p.request("stream", WatchBalanceRequestSchema, { accountId: "x".repeat(MAX_BYTES + 100), asset: "USD" }, { key: key() })),
  },
  {
    name: "server stream, malformed message",
    expect: (r, p) => expect(codeOf(r, p)).toBe("invalid_argument"),
    build: (p) => post(`${SVC}/WatchBalance`, p.request("stream", WatchBalanceRequestSchema, p.json ? Buffer.from('{"accountId": ') : Buffer.from([0x0a, 0xff]), { key: key() })),
    // As for unary calls: the client's bytes are the client's invalid_argument, not the server's internal error.
    differs: (_t, r, p) => expect(codeOf(r, p)).toBe(p.json ? "invalid_argument" : "internal"),
  },
];

/** The status a response carries, in its protocol's own place, as a Connect code name ("ok" for success). */
function codeOf(r: RawResponse, p: Protocol): string {
  const grpcName = (status: string | undefined) => (status === undefined ? `HTTP ${r.status}` : status === "0" ? "ok" : codeToString(Number(status)));
  if (p.family === "grpc") return grpcName(r.trailers["grpc-status"] ?? r.headers["grpc-status"]);
  if (p.family === "grpc-web") return grpcName(r.headers["grpc-status"] ?? /grpc-status: ?(\d+)/.exec(r.body.toString("latin1"))?.[1]);
  const type = r.headers["content-type"] ?? "";
  if (type.startsWith("application/connect+")) {
    // Server stream: the end-stream envelope (flag 2) carries the outcome.
    for (let i = 0; i + 5 <= r.body.length; ) {
      const len = r.body.readUInt32BE(i + 1);
      if (r.body[i] === 2) return (JSON.parse(r.body.subarray(i + 5, i + 5 + len).toString()) as { error?: { code: string } }).error?.code ?? "ok";
      i += 5 + len;
    }
    return "no end-stream";
  }
  if (r.status === 200) return "ok";
  try {
    return (JSON.parse(r.body.toString()) as { code: string }).code;
  } catch {
    return `HTTP ${r.status}`;
  }
}

/** The headers and trailers that carry protocol meaning. */
const MEANINGFUL = /^(content-type|content-encoding|accept-encoding|grpc-|connect-)/;
function meaningful(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).filter(([k]) => MEANINGFUL.test(k)));
}

describe.each(PROTOCOLS)("$name: Tally answers as stock connect-node", (p) => {
  const send = (base: "tally" | "ref", req: RawRequest) =>
    p.http === "h2" ? h2Exchange(base === "tally" ? tally.url : refH2Url, req) : h1Exchange(base === "tally" ? tally.url : refH1Url, req);

  // A GET carries only unary calls.
  const cases = CASES.filter((c) => (c.only?.(p) ?? true) && !(p.get && c.name.startsWith("server stream")));
  it.each(cases)("$name", async (c) => {
    const req = c.build(p);
    const [t, r] = await Promise.all([send("tally", req), send("ref", req)]);
    c.expect(t, p);
    if (c.differs) {
      c.differs(t, r, p);
      return;
    }
    expect({ status: t.status, headers: meaningful(t.headers), trailers: meaningful(t.trailers) }).toEqual({
      status: r.status,
      headers: meaningful(r.headers),
      trailers: meaningful(r.trailers),
    });
    expect(t.body.toString("base64")).toBe(r.body.toString("base64"));
  });
});
