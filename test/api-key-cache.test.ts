import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService, KeyScope } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { refused } from "./support/ledger-kit.js";
import { DEFAULT_TENANT } from "../src/app.js";
import { Access } from "../src/domain/access.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

// The SQLite store keeps API keys in memory so that authenticating a call
// costs no read. A revoked key must still be refused by the very next call:
// when this process revoked it, and when another process on the same file did.
let a: TestServer;

beforeAll(async () => {
  a = await startTestServer();
});
afterAll(async () => {
  await a?.close();
});

/**
 * Issues a key on `a`, uses it there three times (so it is cached), revokes
 * it through `revokeVia`, and expects the very next call on `a` to be refused.
 */
async function expectRefusedRightAfterRevocation(revokeVia: { url: string } | { revoke: (id: string) => Promise<void> }, label: string): Promise<void> {
  const issued = await clientFor(AdminService, a.url, "connect-binary", a.adminKey).createApiKey({ scope: KeyScope.TENANT_ADMIN, label });
  const here = clientFor(LedgerService, a.url, "grpc", issued.secret);
  for (let i = 0; i < 3; i++) await here.getBalance({ accountId: "@world", asset: "USD" });
  if ("url" in revokeVia) await clientFor(AdminService, revokeVia.url, "grpc", a.adminKey).revokeApiKey({ id: issued.key!.id });
  else await revokeVia.revoke(issued.key!.id);
  const r = await refused(here.getBalance({ accountId: "@world", asset: "USD" }));
  expect([r.code, r.reason]).toEqual([Code.Unauthenticated, "invalid_api_key"]);
}

describe("API key revocation with the key cache", () => {
  it("a key revoked through this server is refused by the next call on the same connection", async () => {
    await expectRefusedRightAfterRevocation(a, "same-process");
  });

  it("a key revoked by another connection to the same SQLite file (the CLI, say) is refused by the next call here", async () => {
    // The other connection's revocation reaches this server only through the database.
    // (A second server on the file is refused: test/serve-lock.test.ts.)
    const other = SqliteStore.open({ path: a.dbPath });
    try {
      await expectRefusedRightAfterRevocation(
        { revoke: (id) => new Access(other, () => BigInt(Date.now()) * 1000n).revokeKey(DEFAULT_TENANT, id).then(() => undefined) },
        "other-connection",
      );
    } finally {
      await other.close();
    }
    // Keys the other process did not touch still work (the cache refills).
    await clientFor(LedgerService, a.url, "grpc", a.adminKey).getBalance({ accountId: "@world", asset: "USD" });
  });
});
