import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { bearer, startTestServer, tempDir } from "./support/server.js";
import type { TestServer } from "./support/server.js";

let server: TestServer;
let ca: Buffer;
const certs = tempDir("tally-tls-");

beforeAll(async () => {
  const cert = join(certs.dir, "cert.pem");
  const key = join(certs.dir, "key.pem");
  const r = spawnSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
      "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  ca = readFileSync(cert);
  server = await startTestServer({ tlsCertFile: cert, tlsKeyFile: key });
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
