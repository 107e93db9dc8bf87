import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService, KeyScope } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { refused } from "./support/ledger-kit.js";
import { clientFor, spawnServer, startTestServer } from "./support/server.js";
import type { ChildServer, TestServer } from "./support/server.js";

// The SQLite store keeps API keys in memory so that authenticating a call
// costs no read. A revoked key must still be refused by the very next call:
// when this process revoked it, and when another process on the same file did.
let a: TestServer;
let b: ChildServer | undefined;

beforeAll(async () => {
  a = await startTestServer();
});
afterAll(async () => {
  await b?.stop();
  await a?.close();
});

async function issueKey(server: { url: string }, adminKey: string, label: string): Promise<{ id: string; secret: string }> {
  const admin = clientFor(AdminService, server.url, "connect-binary", adminKey);
  const k = await admin.createApiKey({ scope: KeyScope.TENANT_ADMIN, label });
  return { id: k.key!.id, secret: k.secret };
}

describe("API key revocation with the key cache", () => {
  it("a key revoked through this server is refused by the next call on the same connection", async () => {
    const k = await issueKey(a, a.adminKey, "same-process");
    const client = clientFor(LedgerService, a.url, "grpc", k.secret);
    for (let i = 0; i < 3; i++) await client.getBalance({ accountId: "@world", asset: "USD" });
    await clientFor(AdminService, a.url, "grpc", a.adminKey).revokeApiKey({ id: k.id });
    const r = await refused(client.getBalance({ accountId: "@world", asset: "USD" }));
    expect([r.code, r.reason]).toEqual([Code.Unauthenticated, "invalid_api_key"]);
  });

  it("a key revoked by another server process on the same SQLite file is refused by the next call here", async () => {
    b = await spawnServer(a.dbPath);
    const k = await issueKey(a, a.adminKey, "other-process");
    const here = clientFor(LedgerService, a.url, "grpc", k.secret);
    for (let i = 0; i < 3; i++) await here.getBalance({ accountId: "@world", asset: "USD" });
    // Revoked through the other process: this one learns of it only from the database.
    await clientFor(AdminService, b.url, "grpc", a.adminKey).revokeApiKey({ id: k.id });
    const r = await refused(here.getBalance({ accountId: "@world", asset: "USD" }));
    expect([r.code, r.reason]).toEqual([Code.Unauthenticated, "invalid_api_key"]);
    // Keys the other process did not touch still work (the cache refills).
    await clientFor(LedgerService, a.url, "grpc", a.adminKey).getBalance({ accountId: "@world", asset: "USD" });
  });
});
