import * as http2 from "node:http2";
import { connect as netConnect } from "node:net";
import type { ConnectionOptions } from "node:tls";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { LedgerService, WatchBalanceRequestSchema } from "../gen/tally/ledger/v1/ledger_pb.js";
import { makeCert } from "./support/certs.js";
import { FLAG, FRAME, compressionBombs, serverHoldsConnection, H2_ERROR, PREFACE, SETTINGS, errorCodeOf, frame, headersFrame, rawConnect, socketsInState } from "./support/h2-frames.js";
import { bearer, clientFor, startTestServer, tempDir } from "./support/server.js";
import type { TestServer } from "./support/server.js";
import { WatchStream } from "./support/watch-stream.js";
import { becomesTrue, sleep } from "./support/poll.js";

// Short bounds, so that every "closed within" below is a matter of a second or two.
const HEADERS_MS = 1000;
const REQUEST_MS = 1500;
const IDLE_MS = 1000;
// Closing takes a timer tick plus the socket teardown; on a loaded CI core that can be a while.
const SLACK_MS = 2500;
const WATCH_QUIET_MS = Number(process.env.WATCH_QUIET_MS ?? 120_000);

let plain: TestServer;
let secure: TestServer;
let ca: Buffer;
const certs = tempDir("tally-lifetime-");
let watch: WatchStream;
let watchOpenedAt = 0;

const limits = {
  headersTimeoutMs: HEADERS_MS,
  requestTimeoutMs: REQUEST_MS,
  idleTimeoutMs: IDLE_MS,
  // Pinged often: a quiet stream with a live client must survive the pings.
  pingIntervalMs: 500,
};

beforeAll(async () => {
  const cert = makeCert(certs.dir);
  ca = cert.ca;
  plain = await startTestServer(limits);
  secure = await startTestServer({ ...limits, tlsCertFile: cert.certFile, tlsKeyFile: cert.keyFile });
  // Opened first, checked last: a WatchBalance stream with no traffic for two minutes.
  const client = clientFor(LedgerService, plain.url, "grpc", plain.adminKey);
  await client.createAccount({ id: "quiet" });
  watch = new WatchStream(client, { accountId: "quiet", asset: "USD" });
  await watch.next();
  watchOpenedAt = performance.now();
});
afterAll(async () => {
  watch?.close();
  await plain?.close();
  await secure?.close();
  certs.remove();
});

const tlsOpts = (): ConnectionOptions => ({ ca, servername: "localhost" });


describe.each([
  ["plaintext", () => plain, false],
  ["TLS", () => secure, true],
] as const)("sessions that nghttp2 ended with GOAWAY, %s", (_name, server, tls) => {
  it("200 compression-error sessions leave no socket in CLOSE-WAIT after the idle bound, and the server still serves", async () => {
    const { port } = server().tally;
    await compressionBombs(port, 200, 20, tls ? tlsOpts() : undefined);
    // The client side is gone: every server socket of the attack is in CLOSE-WAIT until the server closes it.
    const cleared = await becomesTrue(async () => (await socketsInState(port, "close-wait")) === 0, IDLE_MS + SLACK_MS);
    expect(cleared, `CLOSE-WAIT sockets left: ${await socketsInState(port, "close-wait")}`).toBe(true);
    const client = tls
      ? createClient(LedgerService, createGrpcTransport({ baseUrl: server().url, nodeOptions: { ca }, interceptors: [bearer(server().adminKey)] }))
      : clientFor(LedgerService, server().url, "grpc", server().adminKey);
    const { balance } = await client.getBalance({ accountId: "@world", asset: "USD" });
    expect(balance?.posted).toBe(0n);
  });

  it("a session whose client sent GOAWAY and went quiet is let go of, not just half-closed", async () => {
    const { port } = server().tally;
    const c = await rawConnect(port, tls ? tlsOpts() : undefined, { allowHalfOpen: true });
    const clientPort = c.socket.localPort!;
    expect(serverHoldsConnection(port, clientPort)).toBe(true);
    c.socket.write(Buffer.concat([PREFACE, SETTINGS, frame(FRAME.GOAWAY, 0, 0, Buffer.alloc(8))]));
    // Node answers a GOAWAY by ending its side; the client here never ends its own, so
    // without the close grace the server would keep the socket (FIN-WAIT-2) for good.
    await c.closed;
    const released = await becomesTrue(() => !serverHoldsConnection(port, clientPort), HEADERS_MS + SLACK_MS);
    expect(released).toBe(true);
    c.socket.destroy();
  });
});

describe("connection setup is bounded by the headers timeout", () => {
  const within = async (c: { closed: Promise<number> }) => {
    const ms = await Promise.race([c.closed, sleep(HEADERS_MS + SLACK_MS + 1000).then(() => Infinity)]);
    expect(ms).toBeGreaterThan(HEADERS_MS * 0.8);
    expect(ms).toBeLessThan(HEADERS_MS + SLACK_MS);
  };

  it("a plaintext connection that sends 'P' and stalls", async () => {
    const c = await rawConnect(plain.tally.port);
    c.socket.write("P");
    await within(c);
  });

  it("a plaintext connection that sends the whole preface and no SETTINGS", async () => {
    const c = await rawConnect(plain.tally.port);
    c.socket.write(PREFACE);
    await within(c);
  });

  it("a TLS connection that never starts the handshake", async () => {
    const s = netConnect(secure.tally.port, "127.0.0.1");
    const start = performance.now();
    s.on("error", () => undefined);
    s.resume();
    await within({ closed: new Promise((r) => s.once("close", () => r(performance.now() - start))) });
  });

  it("HTTP/1.1 over TLS (ALPN) with half-sent headers", async () => {
    const c = await rawConnect(secure.tally.port, { ...tlsOpts(), ALPNProtocols: ["http/1.1"] });
    expect((c.socket as import("node:tls").TLSSocket).alpnProtocol).toBe("http/1.1");
    c.socket.write("POST /tally.ledger.v1.LedgerService/GetBalance HTTP/1.1\r\nHost: x\r\n");
    await within(c);
  });
});

describe("idle sessions", () => {
  it.each([
    ["plaintext", false],
    ["TLS", true],
  ] as const)("an idle %s h2 session gets GOAWAY NO_ERROR and is closed after the idle timeout", async (_n, tls) => {
    const c = await rawConnect((tls ? secure : plain).tally.port, tls ? tlsOpts() : undefined);
    c.socket.write(Buffer.concat([PREFACE, SETTINGS]));
    const goaway = await c.waitFor((f) => f.type === FRAME.GOAWAY, IDLE_MS + SLACK_MS);
    expect(errorCodeOf(goaway)).toBe(H2_ERROR.NO_ERROR);
    const ms = await Promise.race([c.closed, sleep(IDLE_MS + HEADERS_MS + SLACK_MS).then(() => Infinity)]);
    expect(ms).toBeLessThan(IDLE_MS + HEADERS_MS + SLACK_MS);
  });
});

describe("a stream whose request never ends", () => {
  const grpcHeaders = (path: string) => ({
    ":method": "POST",
    ":scheme": "http",
    ":path": path,
    ":authority": "127.0.0.1",
    "content-type": "application/grpc",
    te: "trailers",
    authorization: `Bearer ${plain.adminKey}`,
  });

  it("is reset within the request timeout (raw frames)", async () => {
    const c = await rawConnect(plain.tally.port);
    const start = performance.now();
    c.socket.write(Buffer.concat([PREFACE, SETTINGS, headersFrame(1, grpcHeaders("/tally.ledger.v1.LedgerService/GetBalance"))]));
    const rst = await c.waitFor((f) => f.type === FRAME.RST_STREAM && f.streamId === 1, REQUEST_MS + SLACK_MS);
    expect(performance.now() - start).toBeGreaterThan(REQUEST_MS * 0.8);
    // A complete deadline_exceeded answer went first, so the reset says "stop sending", not "failed".
    expect(errorCodeOf(rst)).toBe(H2_ERROR.NO_ERROR);
    expect(c.frames.some((f) => f.type === FRAME.HEADERS && f.streamId === 1)).toBe(true);
    c.socket.destroy();
  });

  it("answers a gRPC unary call deadline_exceeded", async () => {
    const session = http2.connect(plain.url);
    try {
      const stream = session.request(grpcHeaders("/tally.ledger.v1.LedgerService/GetBalance"));
      stream.write(Buffer.from([0, 0, 0, 0, 10])); // an envelope announcing 10 bytes, never sent
      const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        let headers: http2.IncomingHttpHeaders = {};
        stream.on("response", (h) => (headers = h));
        stream.on("trailers", (t) => resolve({ ...headers, ...t }));
        stream.on("close", () => resolve(headers));
        stream.on("error", reject);
        stream.resume();
      });
      expect(trailers["grpc-status"]).toBe("4");
      expect(decodeURIComponent(String(trailers["grpc-message"]))).toMatch(/not sent within 1500 ms/);
    } finally {
      session.destroy();
    }
  });

  it("answers a Connect unary call 504 deadline_exceeded, on HTTP/2 and HTTP/1.1", async () => {
    const session = http2.connect(plain.url);
    try {
      const stream = session.request({ ...grpcHeaders("/tally.ledger.v1.LedgerService/GetBalance"), "content-type": "application/json" });
      stream.write('{"accountId":');
      const [status, body] = await new Promise<[number, string]>((resolve, reject) => {
        let s = 0;
        let b = "";
        stream.on("response", (h) => (s = Number(h[":status"])));
        stream.on("data", (d: Buffer) => (b += d.toString()));
        stream.on("end", () => resolve([s, b]));
        stream.on("error", reject);
      });
      expect(status).toBe(504);
      expect(JSON.parse(body)).toMatchObject({ code: "deadline_exceeded" });
    } finally {
      session.destroy();
    }
    const c = await rawConnect(plain.tally.port);
    let received = "";
    c.socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
    c.socket.write(
      "POST /tally.ledger.v1.LedgerService/GetBalance HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
        `Authorization: Bearer ${plain.adminKey}\r\nContent-Length: 100\r\n\r\n{"accountId":`,
    );
    const closedMs = await Promise.race([c.closed, sleep(REQUEST_MS + SLACK_MS).then(() => Infinity)]);
    expect(closedMs).toBeLessThan(REQUEST_MS + SLACK_MS);
    expect(received).toMatch(/^HTTP\/1\.1 504/);
    expect(received).toContain('"code":"deadline_exceeded"');
  });
});

describe("HTTP/1.1 requests whose body never ends", () => {
  it("a gRPC-Web call gets deadline_exceeded in its trailers, then the connection closes", async () => {
    const c = await rawConnect(plain.tally.port);
    let received = "";
    c.socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
    c.socket.write(
      "POST /tally.ledger.v1.LedgerService/GetBalance HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc-web+proto\r\n" +
        `Authorization: Bearer ${plain.adminKey}\r\nContent-Length: 100\r\n\r\n`,
    );
    c.socket.write(Buffer.from([0, 0, 0, 0, 50]));
    const bound = REQUEST_MS + 1000 + SLACK_MS;
    const closedMs = await Promise.race([c.closed, sleep(bound).then(() => Infinity)]);
    expect(closedMs).toBeLessThan(bound);
    expect(received).toMatch(/^HTTP\/1\.1 200/);
    expect(received).toMatch(/grpc-status: ?4/);
  });
});

/** HEADERS and the request envelope of a gRPC WatchBalance call on stream `id`, from raw frames. */
function rawWatch(id: number): Buffer {
  const request = toBinary(WatchBalanceRequestSchema, create(WatchBalanceRequestSchema, { accountId: "quiet", asset: "USD" }));
  const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, request.length]), request]);
  return Buffer.concat([
    headersFrame(id, {
      ":method": "POST",
      ":scheme": "http",
      ":path": "/tally.ledger.v1.LedgerService/WatchBalance",
      ":authority": "127.0.0.1",
      "content-type": "application/grpc",
      te: "trailers",
      authorization: `Bearer ${plain.adminKey}`,
    }),
    frame(FRAME.DATA, FLAG.END_STREAM, id, envelope),
  ]);
}

describe("peers that stop answering", () => {
  it("a session with an open stream whose peer ignores pings is cut", async () => {
    const c = await rawConnect(plain.tally.port, undefined, { answerPings: false });
    c.socket.write(Buffer.concat([PREFACE, SETTINGS, rawWatch(1)]));
    // The stream is live: its snapshot arrives.
    await c.waitFor((f) => f.type === FRAME.DATA && f.streamId === 1, 5000);
    const ping = await c.waitFor((f) => f.type === FRAME.PING, limits.pingIntervalMs + SLACK_MS);
    expect(ping.flags & FLAG.ACK).toBe(0);
    const bound = limits.pingIntervalMs + HEADERS_MS + SLACK_MS;
    expect(await Promise.race([c.closed, sleep(bound + 1000).then(() => Infinity)])).toBeLessThan(bound);
  });

  it("a session whose client sent GOAWAY with a stream still open is cut after the close grace", async () => {
    const c = await rawConnect(plain.tally.port);
    c.socket.write(Buffer.concat([PREFACE, SETTINGS, rawWatch(1)]));
    await c.waitFor((f) => f.type === FRAME.DATA && f.streamId === 1, 5000);
    const sent = performance.now();
    c.socket.write(frame(FRAME.GOAWAY, 0, 0, Buffer.alloc(8)));
    // The close grace is min(5 s, headers timeout).
    const bound = HEADERS_MS + SLACK_MS;
    await Promise.race([c.closed, sleep(bound + 1000)]);
    expect(performance.now() - sent).toBeLessThan(bound);
    expect(c.socket.readableEnded || c.socket.destroyed).toBe(true);
  });
});

describe("long-lived streams", () => {
  it(
    "a WatchBalance stream with no traffic for two minutes stays open, and still delivers",
    async () => {
      const left = WATCH_QUIET_MS - (performance.now() - watchOpenedAt);
      // Timers may fire a fraction of a millisecond early against performance.now().
      if (left > 0) await sleep(left + 100);
      expect(performance.now() - watchOpenedAt).toBeGreaterThanOrEqual(WATCH_QUIET_MS);
      const client = clientFor(LedgerService, plain.url, "grpc", plain.adminKey);
      await client.postTransfer({ idempotencyKey: "quiet-1", debitAccountId: "@world", creditAccountId: "quiet", asset: "USD", amount: 5n, kind: "payment" });
      const update = await watch.next(10_000);
      expect(update.event.case).toBe("change");
      expect(update.event.case === "change" ? update.event.value.delta : undefined).toBe(5n);
    },
    WATCH_QUIET_MS + 60_000,
  );
});
