import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { Call } from "../src/transport/lean/call.js";
import type { UnarySpec } from "../src/transport/lean/method-table.js";
import { becomesTrue, sleep } from "./support/poll.js";

/**
 * The lean unary path builds a call's AbortSignal only when someone reads it.
 * Read late, it must still say what connect's eagerly linked signal would: a
 * passed deadline, a client that reset its stream or dropped its socket, a
 * server that is stopping. Real sockets, no mocks of Node's request objects.
 */
const spec: UnarySpec = {
  kind: "unary",
  method: LedgerService.method.getBalance,
  impl: () => ({}),
} as unknown as UnarySpec;

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

function callFor(req: Req, res: Res, init: { timeoutMs?: number; shutdown?: AbortSignal } = {}): Call {
  return new Call({
    req,
    res,
    spec,
    protocolName: "connect",
    requestMethod: "POST",
    requestHeader: new Headers(),
    responseHeader: new Headers(),
    responseTrailer: new Headers(),
    contextValues: createContextValues(),
    timeoutMs: init.timeoutMs,
    shutdownSignal: init.shutdown,
  });
}

/** An h2c server whose handler hands each request to `onRequest`; returns a connected client session. */
async function h2Server(onRequest: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void): Promise<http2.ClientHttp2Session> {
  const server = http2.createServer(onRequest);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  client.on("error", () => {});
  closers.push(() => {
    client.destroy();
    server.close();
  });
  return client;
}

/** Sends one bodyless POST and drains the answer. */
function call(client: http2.ClientHttp2Session): void {
  const s = client.request({ ":path": "/", ":method": "POST" });
  s.end();
  s.resume();
}

describe("a unary call's lazily built signal", () => {
  it("is not aborted while the call runs, and is aborted once the call has ended", async () => {
    let seen: { during: boolean; after: boolean; reason: unknown } | undefined;
    const client = await h2Server((req, res) => {
      const call = callFor(req, res);
      const during = call.signal.aborted;
      call.end();
      seen = { during, after: call.signal.aborted, reason: call.signal.reason };
      res.end();
    });
    call(client);
    expect(await becomesTrue(() => seen !== undefined, 10_000)).toBe(true);
    expect(seen!.during).toBe(false);
    expect(seen!.after).toBe(true);
    expect(ConnectError.from(seen!.reason).code).toBe(Code.Canceled);
  });

  it("read after the deadline passed, is already aborted with deadline_exceeded", async () => {
    let reason: unknown;
    const client = await h2Server((req, res) => {
      const call = callFor(req, res, { timeoutMs: 20 });
      void sleep(80).then(() => {
        reason = call.signal.aborted ? call.signal.reason : "not aborted";
        call.end();
        res.end();
      });
    });
    call(client);
    expect(await becomesTrue(() => reason !== undefined, 10_000)).toBe(true);
    expect(reason).toBeInstanceOf(ConnectError);
    expect((reason as ConnectError).code).toBe(Code.DeadlineExceeded);
  });

  it("read before the deadline, aborts when it passes", async () => {
    let reason: unknown;
    const client = await h2Server((req, res) => {
      const call = callFor(req, res, { timeoutMs: 50 });
      const signal = call.signal;
      expect(signal.aborted).toBe(false);
      expect(call.context.timeoutMs()).toBeGreaterThan(0);
      signal.addEventListener("abort", () => {
        reason = signal.reason;
        call.end();
        res.end();
      });
    });
    call(client);
    expect(await becomesTrue(() => reason !== undefined, 10_000)).toBe(true);
    expect((reason as ConnectError).code).toBe(Code.DeadlineExceeded);
  });

  it("aborts with canceled when an HTTP/2 client resets the stream, whether read before or after", async () => {
    const reasons: unknown[] = [];
    const client = await h2Server((req, res) => {
      const call = callFor(req, res);
      if (req.headers["x-read"] === "early") call.signal.addEventListener("abort", () => reasons.push(call.signal.reason));
      req.once("close", () => {
        if (req.headers["x-read"] === "late") reasons.push(call.signal.aborted ? call.signal.reason : "not aborted");
      });
    });
    for (const when of ["early", "late"]) {
      const s = client.request({ ":path": "/", ":method": "POST", "x-read": when });
      s.on("error", () => {});
      await sleep(30);
      s.close(http2.constants.NGHTTP2_CANCEL);
    }
    expect(await becomesTrue(() => reasons.length === 2, 10_000)).toBe(true);
    for (const r of reasons) {
      expect(r).toBeInstanceOf(ConnectError);
      expect((r as ConnectError).code).toBe(Code.Canceled);
    }
  });

  it("aborts when an HTTP/1.1 client drops its socket, whether read before or after", async () => {
    const seen: boolean[] = [];
    const server = http.createServer((req, res) => {
      const call = callFor(req, res);
      if (req.headers["x-read"] === "early") call.signal.addEventListener("abort", () => seen.push(true));
      else res.once("close", () => setImmediate(() => seen.push(call.signal.aborted)));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    closers.push(() => server.close());
    for (const when of ["early", "late"]) {
      const req = http.request({ port: (server.address() as AddressInfo).port, host: "127.0.0.1", method: "POST", path: "/", headers: { "x-read": when } });
      req.on("error", () => {});
      req.write("x");
      await sleep(30);
      req.destroy();
    }
    expect(await becomesTrue(() => seen.length === 2, 10_000)).toBe(true);
    expect(seen).toEqual([true, true]);
  });

  it("carries the shutdown signal's reason when the server stops", async () => {
    const shutdown = new AbortController();
    const stopping = new ConnectError("the server is stopping", Code.Unavailable);
    let reason: unknown;
    const client = await h2Server((req, res) => {
      const call = callFor(req, res, { shutdown: shutdown.signal });
      call.signal.addEventListener("abort", () => {
        reason = call.signal.reason;
        call.end();
        res.end();
      });
      shutdown.abort(stopping);
    });
    call(client);
    expect(await becomesTrue(() => reason !== undefined, 10_000)).toBe(true);
    expect(reason).toBe(stopping);
  });
});
