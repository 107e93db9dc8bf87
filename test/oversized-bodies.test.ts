import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { status as grpcStatus } from "@grpc/grpc-js";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../gen/tally/admin/v1/admin_pb.js";
import { CreateAccountRequestSchema, LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { bearerMetadata, grpcJsClient, grpcJsError, grpcJsUnary, loadLedgerServiceForGrpcJs } from "./support/grpc-js.js";
import { PROTOCOLS, bearer, clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

/**
 * A 10 MB request body, ten times the message limit, on every protocol: the
 * client gets the protocol's own resource_exhausted answer, never a reset or
 * EPIPE, and the server goes on serving: on HTTP/2 on the same connection
 * (the refused stream alone is ended, with RST_STREAM NO_ERROR after the
 * answer), on HTTP/1.1 on a new one (the answer says Connection: close, and
 * the rest of the body is drained first so that the client can finish
 * sending). Stock clients (connect-node for each protocol, grpc-js, fetch)
 * and raw ones that show the frames and the connection.
 */
const MB10 = 10_000_000;
const MAX = 1024 * 1024;
const GET_ACCOUNT = "/tally.ledger.v1.LedgerService/GetAccount";
const CREATE_ACCOUNT = "/tally.ledger.v1.LedgerService/CreateAccount";
const METRONOME_LIST = "/v1/contracts/customerBalances/list";

let server: TestServer;
let metronomeToken = "";

beforeAll(async () => {
  server = await startTestServer({ maxMessageBytes: MAX, dialects: ["metronome"] });
  const admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
  metronomeToken = (await admin.createCredential({ kind: "metronome_platform_key", label: "big" })).secret;
  await clientFor(LedgerService, server.url, "connect-binary", server.adminKey).createAccount({ id: "present" });
});
afterAll(async () => {
  await server?.close();
});

const bigNote = () => ({ id: "big", metadata: { note: "x".repeat(MB10) } });

/** The request body of a 10 MB CreateAccount in each wire form. */
function bigBodies() {
  const proto = toBinary(CreateAccountRequestSchema, create(CreateAccountRequestSchema, bigNote()));
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(proto.length, 1);
  const json = Buffer.from(JSON.stringify(bigNote()));
  const jsonPrefix = Buffer.alloc(5);
  jsonPrefix.writeUInt32BE(json.length, 1);
  return {
    proto: Buffer.from(proto),
    envelope: Buffer.concat([prefix, proto]),
    json,
    /** One enveloped JSON message (gRPC+json, gRPC-Web+json): these go through connect's own pipeline. */
    jsonEnvelope: Buffer.concat([jsonPrefix, json]),
  };
}

describe("stock clients", () => {
  it.each(PROTOCOLS)("%s: resource_exhausted, then a normal call on the same client", async (protocol) => {
    const client = clientFor(LedgerService, server.url, protocol, server.adminKey);
    const err = await client.createAccount(bigNote()).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code, err?.message).toBe(Code.ResourceExhausted);
    expect(err?.rawMessage).toMatch(/larger than configured readMaxBytes 1048576/);
    // Nothing was written, and the client's connection (HTTP/2) or a new one (HTTP/1.1) serves the next call.
    const missing = await client.getAccount({ id: "big" }).catch((e: unknown) => ConnectError.from(e));
    expect((missing as ConnectError).code).toBe(Code.NotFound);
    expect((await client.getAccount({ id: "present" })).account?.id).toBe("present");
  });

  it("grpc-js: RESOURCE_EXHAUSTED with the status in the trailers, then a normal call on the same channel", async () => {
    const client = grpcJsClient(loadLedgerServiceForGrpcJs(), server.url);
    try {
      // grpc-js lifts Node's 10 MiB session memory cap, so a body past it is answered too.
      for (const size of [MB10, 12 * 1024 * 1024]) {
        const err = await grpcJsError(grpcJsUnary(client, "createAccount", { id: "big", metadata: { note: "x".repeat(size) } }, bearerMetadata(server.adminKey)));
        expect(err.code, err.details).toBe(grpcStatus.RESOURCE_EXHAUSTED);
        expect(err.details).toMatch(/larger than configured readMaxBytes 1048576/);
        const ok = await grpcJsUnary<{ account: { id: string } }>(client, "getAccount", { id: "present" }, bearerMetadata(server.adminKey));
        expect(ok.account.id).toBe("present");
      }
    } finally {
      client.close();
    }
  });

  it("connect-node over HTTP/2 past 10 MiB: answered too, once the client's own session memory cap allows it", async () => {
    // Node's HTTP/2 client holds what it has yet to send in its session memory,
    // capped at 10 MiB by default (maxSessionMemory): past that, the client
    // itself refuses the server's answer headers with ENHANCE_YOUR_CALM, before
    // any status can be read. grpc-js lifts the cap; connect-node takes nodeOptions.
    const transport = createGrpcTransport({ baseUrl: server.url, nodeOptions: { maxSessionMemory: 64 }, interceptors: [bearer(server.adminKey)] });
    const client = createClient(LedgerService, transport);
    const err = await client.createAccount({ id: "big", metadata: { note: "x".repeat(12 * 1024 * 1024) } }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code, err?.message).toBe(Code.ResourceExhausted);
    expect((await client.getAccount({ id: "present" })).account?.id).toBe("present");
  });

  it("fetch: Connect JSON 429 and REST 413, each with its error body", async () => {
    const { json } = bigBodies();
    const connect = await fetch(server.url + CREATE_ACCOUNT, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1", authorization: `Bearer ${server.adminKey}` },
      body: json,
    });
    expect(connect.status).toBe(429);
    expect(await connect.json()).toEqual({ code: "resource_exhausted", message: `message size ${json.length} is larger than configured readMaxBytes ${MAX}` });
    const rest = await fetch(server.url + METRONOME_LIST, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${metronomeToken}` },
      body: json,
    });
    expect(rest.status).toBe(413);
    expect(await rest.text()).toBe(JSON.stringify({ message: `request body is larger than ${MAX} bytes` }));
  });
});

// ---- raw HTTP/2: one session, writes paced by flow control ----

interface H2Outcome {
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
  readonly trailers: http2.IncomingHttpHeaders;
  readonly body: Buffer;
  readonly rstCode: number;
  /** Body bytes the client got to write before the stream ended. */
  readonly sent: number;
  readonly error: string | undefined;
}

/** Sends `body` on a stream of `session` as fast as flow control lets it; resolves when the stream closes. */
function h2Send(session: http2.ClientHttp2Session, path: string, headers: Record<string, string>, body: Buffer): Promise<H2Outcome> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path, ...headers });
    let status = 0;
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    let sent = 0;
    let error: string | undefined;
    // The request timeout is 60 s: an answer must not wait for it.
    const stuck = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`the stream was still open after 15 s (${sent} bytes sent, status ${status})`));
    }, 15_000);
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      head = h;
    });
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (d: Buffer) => chunks.push(d));
    stream.on("error", (e) => (error = e.message));
    stream.on("close", () => {
      clearTimeout(stuck);
      resolve({ status, headers: head, trailers, body: Buffer.concat(chunks), rstCode: stream.rstCode, sent, error });
    });
    const pump = () => {
      while (sent < body.length && !stream.destroyed) {
        const chunk = body.subarray(sent, sent + 64 * 1024);
        sent += chunk.length;
        if (!stream.write(chunk)) {
          stream.once("drain", pump);
          return;
        }
      }
      if (!stream.destroyed) stream.end();
    };
    pump();
  });
}

/** A unary GetAccount over gRPC on `session`, for "the connection still serves". */
async function h2GetAccount(session: http2.ClientHttp2Session): Promise<H2Outcome> {
  const msg = Buffer.from([0x0a, 7, ...Buffer.from("present")]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(msg.length, 1);
  return h2Send(session, GET_ACCOUNT, { "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${server.adminKey}` }, Buffer.concat([prefix, msg]));
}

describe("raw HTTP/2: the answer, then RST_STREAM NO_ERROR, and the session serves on", () => {
  const bodies = bigBodies();
  const auth = () => ({ authorization: `Bearer ${server.adminKey}` });
  const cases: readonly (readonly [string, string, () => Record<string, string>, Buffer, (o: H2Outcome) => void])[] = [
    [
      "gRPC",
      CREATE_ACCOUNT,
      () => ({ "content-type": "application/grpc", te: "trailers", ...auth() }),
      bodies.envelope,
      (o) => {
        expect(o.status).toBe(200);
        expect(o.trailers["grpc-status"] ?? o.headers["grpc-status"]).toBe("8");
        expect(decodeURIComponent(String(o.trailers["grpc-message"] ?? o.headers["grpc-message"]))).toMatch(/larger than configured readMaxBytes 1048576/);
      },
    ],
    [
      "gRPC JSON",
      CREATE_ACCOUNT,
      () => ({ "content-type": "application/grpc+json", te: "trailers", ...auth() }),
      bodies.jsonEnvelope,
      (o) => {
        expect(o.status).toBe(200);
        expect(o.trailers["grpc-status"] ?? o.headers["grpc-status"]).toBe("8");
      },
    ],
    [
      "gRPC-Web",
      CREATE_ACCOUNT,
      () => ({ "content-type": "application/grpc-web+proto", ...auth() }),
      bodies.envelope,
      (o) => {
        expect(o.status).toBe(200);
        // The status travels in a trailer envelope (flag 0x80) at the end of the body.
        expect(o.body.toString("latin1")).toMatch(/grpc-status: ?8/);
      },
    ],
    [
      "Connect JSON",
      CREATE_ACCOUNT,
      () => ({ "content-type": "application/json", "connect-protocol-version": "1", ...auth() }),
      bodies.json,
      (o) => {
        expect(o.status).toBe(429);
        expect(JSON.parse(o.body.toString()).code).toBe("resource_exhausted");
      },
    ],
    [
      "Connect binary",
      CREATE_ACCOUNT,
      () => ({ "content-type": "application/proto", "connect-protocol-version": "1", ...auth() }),
      bodies.proto,
      (o) => {
        expect(o.status).toBe(429);
        expect(JSON.parse(o.body.toString()).code).toBe("resource_exhausted");
      },
    ],
    [
      "REST (Metronome)",
      METRONOME_LIST,
      () => ({ "content-type": "application/json", authorization: `Bearer ${metronomeToken}` }),
      bodies.json,
      (o) => {
        expect(o.status).toBe(413);
        expect(o.body.toString()).toBe(JSON.stringify({ message: `request body is larger than ${MAX} bytes` }));
      },
    ],
  ];

  it.each(cases)("%s", async (_name, path, headers, body, check) => {
    const session = http2.connect(server.url);
    const sessionErrors: string[] = [];
    session.on("error", (e) => sessionErrors.push(e.message));
    try {
      // Twice on one session: a refused stream leaves the connection as it was.
      for (let i = 0; i < 2; i++) {
        const o = await h2Send(session, path, headers(), body);
        check(o);
        expect(o.rstCode, "the stream ends with NO_ERROR, after the answer").toBe(http2.constants.NGHTTP2_NO_ERROR);
        expect(o.error).toBeUndefined();
        // The client was told to stop: it did not have to push all 10 MB.
        expect(o.sent).toBeLessThan(body.length);
        const next = await h2GetAccount(session);
        expect(next.trailers["grpc-status"]).toBe("0");
      }
      expect(session.destroyed).toBe(false);
      expect(sessionErrors).toEqual([]);
    } finally {
      session.close();
    }
  });
});

// ---- raw HTTP/1.1: the answer, Connection: close, no EPIPE ----

interface H1Outcome {
  readonly status: number;
  /** Response headers, lower-case names. */
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  /** Socket errors the client saw (EPIPE, ECONNRESET). */
  readonly errors: string[];
  /** Whether every byte of the request was written. */
  readonly sentAll: boolean;
}

/**
 * POSTs `body` on a raw connection of its own, as curl does: the whole body
 * (by content-length or chunked), paced by the socket, whatever the server
 * answers meanwhile; then reads until the server closes the connection.
 */
function h1Send(path: string, headers: Record<string, string>, body: Buffer, chunked: boolean): Promise<H1Outcome> {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(u.port), u.hostname);
    const errors: string[] = [];
    const received: Buffer[] = [];
    let sentAll = false;
    const stuck = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept the connection open for 15 s (errors: ${errors.join()})`));
    }, 15_000);
    socket.on("data", (d: Buffer) => received.push(d));
    socket.on("error", (e) => errors.push(e.message));
    socket.on("close", () => {
      clearTimeout(stuck);
      const raw = Buffer.concat(received);
      const end = raw.indexOf("\r\n\r\n");
      const lines = raw.subarray(0, Math.max(0, end)).toString("latin1").split("\r\n");
      const h: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const c = line.indexOf(":");
        h[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
      }
      resolve({ status: Number(lines[0]?.split(" ")[1] ?? 0), headers: h, body: raw.subarray(end + 4, end + 4 + Number(h["content-length"] ?? raw.length)), errors, sentAll });
    });
    socket.once("connect", async () => {
      const framing = chunked ? "transfer-encoding: chunked" : `content-length: ${body.length}`;
      const head = [`POST ${path} HTTP/1.1`, `host: ${u.host}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), framing, "", ""].join("\r\n");
      const write = (b: Buffer | string) =>
        new Promise<boolean>((done) => {
          if (socket.destroyed) return done(false);
          if (socket.write(b, (e) => e && done(false))) done(true);
          else socket.once("drain", () => done(true));
        });
      if (!(await write(head))) return;
      for (let off = 0; off < body.length; off += 64 * 1024) {
        const chunk = body.subarray(off, off + 64 * 1024);
        const ok = chunked ? await write(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n")])) : await write(chunk);
        if (!ok) return;
      }
      if (chunked && !(await write("0\r\n\r\n"))) return;
      sentAll = true;
    });
  });
}

/** Node's own HTTP client: the answer, and no error on the request it gives up (it ends the connection once it has the answer). */
function nodeHttpSend(path: string, headers: Record<string, string>, body: Buffer): Promise<{ status: number; errors: string[] }> {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const errors: string[] = [];
    const req = http.request({ host: u.hostname, port: u.port, path, method: "POST", agent: false, headers }, (res) => {
      res.resume();
      // An EPIPE or reset, if any, follows the answer within moments.
      res.on("end", () => setTimeout(() => resolve({ status: res.statusCode ?? 0, errors }), 500));
    });
    req.on("error", (e) => errors.push(e.message));
    setTimeout(() => reject(new Error(`no answer within 15 s (errors: ${errors.join()})`)), 15_000).unref();
    let off = 0;
    const pump = () => {
      while (off < body.length) {
        const chunk = body.subarray(off, (off += 64 * 1024));
        if (!req.write(chunk)) {
          req.once("drain", pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

describe("raw HTTP/1.1: the answer, the body drained, then the connection closed", () => {
  const bodies = bigBodies();
  const cases: readonly (readonly [string, string, () => Record<string, string>, Buffer, (o: H1Outcome) => void])[] = [
    [
      "gRPC-Web",
      CREATE_ACCOUNT,
      () => ({ "content-type": "application/grpc-web+proto", authorization: `Bearer ${server.adminKey}`, connection: "close" }),
      bodies.envelope,
      (o) => {
        expect(o.status).toBe(200);
        expect(o.body.toString("latin1")).toMatch(/grpc-status: ?8/);
      },
    ],
    [
      "gRPC-Web JSON",
      CREATE_ACCOUNT,
      () => ({ "content-type": "application/grpc-web+json", authorization: `Bearer ${server.adminKey}`, connection: "close" }),
      bodies.jsonEnvelope,
      (o) => {
        expect(o.status).toBe(200);
        expect(o.body.toString("latin1")).toMatch(/grpc-status: ?8/);
      },
    ],
    [
      "Connect JSON",
      CREATE_ACCOUNT,
      () => ({ "content-type": "application/json", "connect-protocol-version": "1", authorization: `Bearer ${server.adminKey}` }),
      bodies.json,
      (o) => {
        expect(o.status).toBe(429);
        expect(o.headers.connection).toBe("close");
        expect(JSON.parse(o.body.toString()).code).toBe("resource_exhausted");
      },
    ],
    [
      "Connect binary",
      CREATE_ACCOUNT,
      () => ({ "content-type": "application/proto", "connect-protocol-version": "1", authorization: `Bearer ${server.adminKey}` }),
      bodies.proto,
      (o) => {
        expect(o.status).toBe(429);
        expect(o.headers.connection).toBe("close");
        expect(JSON.parse(o.body.toString()).code).toBe("resource_exhausted");
      },
    ],
    [
      "REST (Metronome)",
      METRONOME_LIST,
      () => ({ "content-type": "application/json", authorization: `Bearer ${metronomeToken}` }),
      bodies.json,
      (o) => {
        expect(o.status).toBe(413);
        expect(o.headers.connection).toBe("close");
        expect(o.body.toString()).toBe(JSON.stringify({ message: `request body is larger than ${MAX} bytes` }));
      },
    ],
  ];

  const newConnectionServes = async () => {
    const next = await fetch(server.url + GET_ACCOUNT, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1", authorization: `Bearer ${server.adminKey}` },
      body: JSON.stringify({ id: "present" }),
    });
    expect(next.status).toBe(200);
  };

  for (const chunked of [false, true]) {
    it.each(cases)(`%s, ${chunked ? "chunked" : "with a content-length"}: all of the body is taken, then a clean close`, async (_name, path, headers, body, check) => {
      const o = await h1Send(path, headers(), body, chunked);
      check(o);
      expect(o.errors, "no EPIPE or reset").toEqual([]);
      expect(o.sentAll, "the client could send all of its body").toBe(true);
      await newConnectionServes();
    });
  }

  it("gRPC-Web on a keep-alive connection: the answer, the body drained, and the same connection serves the next request", async () => {
    const u = new URL(server.url);
    const socket = net.connect(Number(u.port), u.hostname);
    const errors: string[] = [];
    socket.on("error", (e) => errors.push(e.message));
    let received = "";
    socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
    const closed = new Promise<void>((r) => socket.once("close", () => r()));
    await new Promise<void>((r) => socket.once("connect", () => r()));
    const body = bodies.envelope;
    const head = `POST ${CREATE_ACCOUNT} HTTP/1.1\r\nhost: ${u.host}\r\ncontent-type: application/grpc-web+proto\r\nauthorization: Bearer ${server.adminKey}\r\ncontent-length: ${body.length}\r\n\r\n`;
    socket.write(head);
    for (let off = 0; off < body.length; off += 64 * 1024) {
      if (!socket.write(body.subarray(off, off + 64 * 1024))) await new Promise((r) => socket.once("drain", r));
    }
    // Then a second request on the same connection, once the first answer is in.
    while (!/grpc-status: ?8/.test(received)) await new Promise((r) => socket.once("data", r));
    expect(received).not.toMatch(/connection: close/i);
    socket.write(`GET /healthz HTTP/1.1\r\nhost: ${u.host}\r\nconnection: close\r\n\r\n`);
    await closed;
    expect(errors).toEqual([]);
    const answers = received.match(/HTTP\/1\.1 \d+/g);
    expect(answers).toEqual(["HTTP/1.1 200", "HTTP/1.1 200"]);
  });

  it.each(cases)("%s with Node's HTTP client: the answer, and no EPIPE", async (_name, path, headers, body) => {
    const o = await nodeHttpSend(path, headers(), body);
    expect([200, 413, 429]).toContain(o.status);
    expect(o.errors).toEqual([]);
    await newConnectionServes();
  });
});
