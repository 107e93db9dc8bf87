import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { Access } from "../src/domain/access.js";
import { systemClock } from "../src/domain/ledger.js";
import type { Store } from "../src/domain/store.js";
import { PG_MIGRATIONS } from "../src/store/postgres/migrations.js";
import { PostgresStore } from "../src/store/postgres/postgres-store.js";
import { MIGRATIONS } from "../src/store/sqlite/migrations.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { openDomainStore } from "./support/domain-store.js";
import { runTallyCli } from "./support/durability.js";
import { freshPgUrl, testStore } from "./support/postgres.js";
import { clientFor, startTestServer, tempDir } from "./support/server.js";
import type { TestServer } from "./support/server.js";

// The operator commands (migrate, tenant list, key create/list/revoke) as
// child processes against the store a running server uses, on SQLite and,
// in the postgres project, on PostgreSQL; and the store read behind key list.

const pg = testStore() === "postgres";
const LATEST = Math.max(...(pg ? PG_MIGRATIONS : MIGRATIONS).map((m) => m.version));

/** JSON lines of a CLI's stdout. */
function lines(stdout: string): Record<string, unknown>[] {
  return stdout.trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("store: listApiKeys", () => {
  let store: Store;
  let close: () => Promise<void>;
  beforeAll(async () => ({ store, close } = await openDomainStore("keys")));
  afterAll(() => close());

  it("lists a tenant's keys oldest first, revoked ones included, and no other tenant's", async () => {
    const access = new Access(store, systemClock);
    const { admin } = await access.createTenant({ id: "k-one", name: "" });
    await access.createTenant({ id: "k-two", name: "" });
    const ops = await access.createKey("k-one", { scope: "tenant_admin", accountId: "", label: "ops", operator: true });
    await access.revokeKey("k-one", admin.key.id);
    const keys = await store.listApiKeys("k-one");
    expect(keys.map((k) => [k.id, k.label, k.operator, k.revokedAt === null])).toEqual([
      [admin.key.id, "admin", false, false],
      [ops.key.id, "ops", true, true],
    ]);
    expect(await store.listApiKeys("k-none")).toEqual([]);
  });

  it("refuses an operator key that is not a tenant admin key", async () => {
    const access = new Access(store, systemClock);
    await access.createTenant({ id: "k-three", name: "" });
    await expect(access.createKey("k-three", { scope: "account_read", accountId: "alice", label: "", operator: true })).rejects.toThrow(/operator/);
  });
});

describe("tally migrate", () => {
  const scratch = tempDir();
  afterAll(() => scratch.remove());

  it("applies every migration on an empty store, then has nothing to do, printing the versions", async () => {
    const args = pg ? ["--database", freshPgUrl("migrate")] : ["--db", join(scratch.dir, "m.db")];
    // migrate refuses a SQLite file that does not exist (cli-missing-db.test.ts); an empty file is an empty database.
    if (!pg) writeFileSync(args[1]!, "");
    const first = await runTallyCli(["migrate", ...args]);
    expect(first.code, first.stderr).toBe(0);
    const [done] = lines(first.stdout);
    expect(done).toMatchObject({ store: testStore(), before: 0, after: LATEST });
    expect((done!.applied as number[]).length).toBe((pg ? PG_MIGRATIONS : MIGRATIONS).length);
    const again = await runTallyCli(["migrate", ...args]);
    expect(lines(again.stdout)[0]).toMatchObject({ before: LATEST, after: LATEST, applied: [] });
    // What the command reported is what the store finds: a server opening it now migrates nothing.
    const store = pg ? await PostgresStore.open({ url: args[1]! }) : SqliteStore.open({ path: args[1]! });
    expect(store.schemaVersions).toEqual({ before: LATEST, after: LATEST, applied: [] });
    await store.close();
  });
});

describe("tenant and key commands beside a running server", () => {
  let server: TestServer;
  let storeArgs: string[];
  beforeAll(async () => {
    server = await startTestServer();
    storeArgs = server.databaseUrl === undefined ? ["--db", server.dbPath] : ["--database", server.databaseUrl];
  });
  afterAll(() => server.close());

  async function cli(...args: string[]) {
    const r = await runTallyCli([...args, ...storeArgs]);
    return { ...r, json: r.code === 0 ? lines(r.stdout) : [] };
  }

  it("tenant create and tenant list", async () => {
    const created = await cli("tenant", "create", "--id", "acme", "--name", "Acme Inc");
    expect(created.code, created.stderr).toBe(0);
    expect(created.json[0]).toMatchObject({ tenant: "acme", name: "Acme Inc" });
    const listed = await cli("tenant", "list");
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.json.map((t) => t.tenant)).toEqual(["acme", "default"]);
    expect(listed.json[0]).toMatchObject({ name: "Acme Inc", created: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
  });

  it("a lost admin key: key create --admin --operator mints one that works at once, then key list and key revoke", async () => {
    const minted = await cli("key", "create", "--tenant", "default", "--admin", "--operator", "--label", "recovered");
    expect(minted.code, minted.stderr).toBe(0);
    const { id, key } = minted.json[0] as { id: string; key: string };
    expect(key).toMatch(new RegExp(`^tly_${id}_`));

    // The running server accepts it, operator rights included.
    const admin = clientFor(AdminService, server.url, "grpc", key);
    await admin.createTenant({ id: "made-by-recovered-key" });
    const plain = await cli("key", "create", "--tenant", "default", "--admin");
    const plainKey = (plain.json[0] as { key: string }).key;
    await expect(clientFor(AdminService, server.url, "grpc", plainKey).createTenant({ id: "refused" })).rejects.toMatchObject({ code: Code.PermissionDenied });

    const listed = await cli("key", "list", "--tenant", "default");
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.json.map((k) => k.label)).toEqual(["admin", "recovered", ""]);
    expect(listed.json[1]).toEqual({
      id,
      tenant: "default",
      scope: "tenant_admin",
      account: null,
      operator: true,
      label: "recovered",
      created: expect.stringMatching(/Z$/),
      revoked: null,
    });
    // Never a secret, nor its hash.
    expect(listed.stdout).not.toContain(key.slice(-32));
    expect(listed.stdout).not.toMatch(/secret|hash/i);

    // Revoked from the command line: refused by the running server on the very next call.
    const ledger = clientFor(LedgerService, server.url, "grpc", key);
    await ledger.listAccounts({});
    const revoked = await cli("key", "revoke", "--tenant", "default", "--id", id);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.json[0]).toMatchObject({ id, revoked: expect.stringMatching(/Z$/) });
    const refused = await ledger.listAccounts({}).catch((e: unknown) => ConnectError.from(e));
    expect(refused).toMatchObject({ code: Code.Unauthenticated });
    const again = await cli("key", "revoke", "--tenant", "default", "--id", id);
    expect(again.json[0]!.revoked).toBe(revoked.json[0]!.revoked);
  });

  it("warns when a tenant's last admin key is revoked, and says how to mint one", async () => {
    const acmeKeys = await cli("key", "list", "--tenant", "acme");
    const [only] = acmeKeys.json;
    const revoked = await cli("key", "revoke", "--tenant", "acme", "--id", String(only!.id));
    expect(revoked.code).toBe(0);
    expect(revoked.stderr).toContain(`tenant "acme" has no admin key left; mint one with: tally key create --tenant acme --admin`);
  });

  it("an unknown tenant or key is exit 1 with a message, not an empty answer", async () => {
    const list = await cli("key", "list", "--tenant", "nobody");
    expect(list).toMatchObject({ code: 1, stdout: "" });
    expect(list.stderr).toContain(`tenant "nobody" not found`);
    // A key of another tenant is as unknown as no key at all.
    const other = await cli("key", "list", "--tenant", "made-by-recovered-key");
    const foreignId = String(other.json[0]!.id);
    const revoke = await cli("key", "revoke", "--tenant", "default", "--id", foreignId);
    expect(revoke).toMatchObject({ code: 1, stdout: "" });
    expect(revoke.stderr).toContain(`api_key "${foreignId}" not found`);
  });
});
