import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

// Dialects are switched on and off by configuration, and their credentials
// can be issued by the CLI as well as the admin API.
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ dialects: ["frontier"] });
});
afterAll(async () => {
  await server.close();
});

describe("dialect configuration", () => {
  it("serves only the enabled dialects: a disabled dialect's paths are not routes", async () => {
    const threepl = await fetch(`${server.url}/v0/balance`, { headers: { authorization: "Bearer x" } });
    expect(threepl.status).toBe(404);
    expect(await threepl.text()).toBe('{"code":"not_found","message":"no route for GET /v0/balance"}');
    const frontier = await fetch(`${server.url}/v1beta1/organizations/o/billing/b/balance`);
    expect(frontier.status).toBe(401);
  });

  it("offers only the enabled dialects' credential kinds", async () => {
    const admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
    await clientFor(LedgerService, server.url, "connect-binary", server.adminKey).createAccount({ id: "acme" });
    await expect(admin.createCredential({ kind: "3plguys_api_key", accountId: "acme", scopes: ["invoices"] })).rejects.toThrow(
      /unknown credential kind "3plguys_api_key"; known kinds: frontier_client/,
    );
    const ok = await admin.createCredential({ kind: "frontier_client", orgId: "org-1" });
    expect(ok.credential?.kind).toBe("frontier_client");
    expect(ok.secret).not.toBe("");
  });

  it("refuses an unknown dialect name at start", async () => {
    await expect(startTestServer({ dialects: ["nope"] })).rejects.toThrow(/unknown dialect "nope"/);
  });
});

describe("credential CLI", () => {
  it("issues a 3PLGuys key whose secret works against the server's database", async () => {
    await server.tally.ledger.createAccount("default", { id: "cli-acct", overdraftLimit: 0n, overdraftUnlimited: false, metadata: {} });
    const cli = spawnSync(
      process.execPath,
      ["--import", "tsx", "src/main.ts", "credential", "create", "--db", server.dbPath, "--tenant", "default", "--kind", "3plguys_api_key", "--account", "cli-acct", "--scope", "invoices"],
      { cwd: join(import.meta.dirname, ".."), encoding: "utf8" },
    );
    expect(cli.status, cli.stderr).toBe(0);
    const out = JSON.parse(cli.stdout) as { kind: string; id: string; secret: string };
    expect(out.kind).toBe("3plguys_api_key");
    expect(out.secret).toMatch(/^3pg_/);
    const stored = await server.tally.store.getCredential("3plguys_api_key", out.id);
    expect(stored?.accountId).toBe("cli-acct");
    expect(stored?.scopes).toEqual(["invoices"]);
  });
});
