import { connect as tlsConnect } from "node:tls";
import type { ConnectionOptions } from "node:tls";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { bearer, startTestServer, tempDir } from "./support/server.js";
import type { TestServer } from "./support/server.js";
import { makeCert } from "./support/certs.js";

let server: TestServer;
let ca: Buffer;
const certs = tempDir("tally-tls-");

beforeAll(async () => {
  const cert = makeCert(certs.dir, "rsa");
  ca = cert.ca;
  server = await startTestServer({ tlsCertFile: cert.certFile, tlsKeyFile: cert.keyFile });
});
afterAll(async () => {
  await server?.close();
  certs.remove();
});

describe("TLS", () => {
  it("serves https URLs", () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it("serves gRPC over h2 negotiated by ALPN", async () => {
    const client = createClient(
      LedgerService,
      createGrpcTransport({ baseUrl: server.url, nodeOptions: { ca }, interceptors: [bearer(server.adminKey)] }),
    );
    const { balance } = await client.getBalance({ accountId: "@world", asset: "USD" });
    expect(balance?.posted).toBe(0n);
  });

  it("serves Connect over HTTP/1.1 on the same port", async () => {
    const client = createClient(
      LedgerService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", nodeOptions: { ca }, interceptors: [bearer(server.adminKey)] }),
    );
    const { account } = await client.createAccount({ id: "tls-alice" });
    expect(account?.id).toBe("tls-alice");
  });
});

/** Whether a TLS handshake with these client settings succeeds. */
function handshake(port: number, opts: ConnectionOptions): Promise<{ ok: true; protocol: string | null; cipher: string } | { ok: false; error: string }> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: "127.0.0.1", port, ca, servername: "localhost", ...opts });
    s.once("secureConnect", () => {
      resolve({ ok: true, protocol: s.getProtocol(), cipher: s.getCipher().name });
      s.destroy();
    });
    s.once("error", (e: NodeJS.ErrnoException) => resolve({ ok: false, error: e.code ?? e.message }));
  });
}

describe("HTTP/1.1 over TLS gets the plaintext limits", () => {
  it("answers 431 to request headers over 16 KiB", async () => {
    const received = await new Promise<string>((resolve) => {
      const s = tlsConnect({ host: "127.0.0.1", port: server.tally.port, ca, servername: "localhost", ALPNProtocols: ["http/1.1"] });
      let got = "";
      s.on("data", (d: Buffer) => (got += d.toString("latin1")));
      s.on("error", () => resolve(got));
      s.on("close", () => resolve(got));
      s.once("secureConnect", () => s.write(`POST /tally.ledger.v1.LedgerService/GetBalance HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`));
    });
    expect(received).toMatch(/^HTTP\/1\.1 431/);
  });
});

describe("TLS policy", () => {
  it("negotiates TLS 1.3 with a modern client", async () => {
    const r = await handshake(server.tally.port, {});
    expect(r).toMatchObject({ ok: true, protocol: "TLSv1.3" });
  });

  it("accepts TLS 1.2 with an ECDHE AEAD suite", async () => {
    const r = await handshake(server.tally.port, { maxVersion: "TLSv1.2", ciphers: "ECDHE-RSA-AES128-GCM-SHA256" });
    expect(r).toMatchObject({ ok: true, protocol: "TLSv1.2", cipher: "ECDHE-RSA-AES128-GCM-SHA256" });
  });

  it("refuses TLS 1.2 suites without forward secrecy or without AEAD", async () => {
    // Static RSA key exchange and CBC: in Node's default list, not in Tally's.
    for (const cipher of ["AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES256-SHA", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES128-SHA256"]) {
      const r = await handshake(server.tally.port, { maxVersion: "TLSv1.2", ciphers: cipher });
      expect([cipher, r.ok]).toEqual([cipher, false]);
    }
  });

  it("refuses TLS 1.1 and 1.0", async () => {
    for (const v of ["TLSv1.1", "TLSv1"] as const) {
      const r = await handshake(server.tally.port, { minVersion: v, maxVersion: v, ciphers: "DEFAULT:@SECLEVEL=0" });
      expect([v, r.ok]).toEqual([v, false]);
    }
  });
});
