import { connect } from "node:net";
import type { Socket } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ headersTimeoutMs: 500, maxMessageBytes: 64 * 1024 });
});
afterAll(async () => {
  await server.close();
});

/** Resolves with the time until the server closed the socket, and what it sent. */
function openRaw(send: (s: Socket) => void): Promise<{ ms: number; received: string }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const s = connect(server.tally.port, "127.0.0.1");
    let received = "";
    s.on("data", (d) => (received += d.toString("latin1")));
    s.on("error", () => undefined);
    s.on("close", () => resolve({ ms: performance.now() - start, received }));
    s.on("connect", () => send(s));
    setTimeout(() => {
      s.destroy();
      reject(new Error("server kept a slow connection open for 5 s"));
    }, 5000);
  });
}

describe("client-controlled limits", () => {
  it("closes a connection that never sends a byte after the headers timeout", async () => {
    const { ms } = await openRaw(() => undefined);
    expect(ms).toBeGreaterThan(400);
    expect(ms).toBeLessThan(3000);
  });

  it("closes an HTTP/1.1 connection whose headers trickle in (slow loris)", async () => {
    const { ms } = await openRaw((s) => {
      s.write("GET /tally.ledger.v1.LedgerService/GetBalance HTTP/1.1\r\nHost: x\r\n");
      const t = setInterval(() => (s.writable ? s.write("X-Slow: 1\r\n") : clearInterval(t)), 100);
      s.on("close", () => clearInterval(t));
    });
    expect(ms).toBeLessThan(3000);
  });

  it("answers 431 to request headers over 16 KiB", async () => {
    const { received } = await openRaw((s) => {
      s.write(`POST /tally.ledger.v1.LedgerService/GetBalance HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
    });
    expect(received).toMatch(/^HTTP\/1\.1 431/);
  });

  it("refuses a gRPC message over the configured size with resource_exhausted", async () => {
    const client = clientFor(LedgerService, server.url, "grpc", server.adminKey);
    const err = await client
      .createAccount({ id: "big", metadata: { note: "x".repeat(100 * 1024) } })
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err?.code).toBe(Code.ResourceExhausted);
    const missing = await client.getAccount({ id: "big" }).catch((e: unknown) => ConnectError.from(e));
    expect(missing).toBeInstanceOf(ConnectError);
    expect((missing as ConnectError).code).toBe(Code.NotFound);
  });

  it("refuses a Connect binary message over the configured size with resource_exhausted", async () => {
    const client = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
    const err = await client.createAccount({ id: "big2", metadata: { note: "x".repeat(100 * 1024) } }).catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
  });
});
