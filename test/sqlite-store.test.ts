import { spawnSync } from "node:child_process";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { Access } from "../src/domain/access.js";
import { LedgerError } from "../src/domain/errors.js";
import { Ledger } from "../src/domain/ledger.js";
import { MIGRATIONS } from "../src/store/sqlite/migrations.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { tempDir } from "./support/server.js";
import { payment } from "./support/transfer-input.js";

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function openLedger() {
  const { dir, remove } = tempDir();
  const path = join(dir, "tally.db");
  const store = SqliteStore.open({ path });
  const ledger = new Ledger({ store });
  const access = new Access(store, () => ledger.now());
  await access.createTenant({ id: "t1", name: "t1" });
  cleanups.push(remove, () => store.close());
  return { path, store, ledger };
}

const fund = (ledger: Ledger, key: string, to: string, amount: bigint) =>
  ledger.postTransfer("t1", payment(key, "@world", to, amount));

describe("SQLite store", () => {
  it("runs in WAL mode with synchronous=FULL and STRICT tables", async () => {
    const { path, store } = await openLedger();
    expect(store.pragmas()).toEqual({ journalMode: "wal", synchronous: 2 });
    const db = new Database(path, { readonly: true });
    const tables = db.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'table'").all() as { name: string; sql: string }[];
    db.close();
    expect(tables.length).toBeGreaterThanOrEqual(9);
    for (const t of tables) expect(t.sql, t.name).toMatch(/STRICT/);
  });

  it("shares commits between concurrent writes but rolls a failing write back alone", async () => {
    const { store, ledger } = await openLedger();
    await ledger.createAccount("t1", { id: "a", overdraftLimit: 0n, overdraftUnlimited: false, metadata: {} });
    const writes = Array.from({ length: 200 }, (_, i) => {
      if (i % 10 === 5) {
        // A write that changes something and then fails: none of it may stay.
        return store.write(async (tx) => {
          await tx.initMeta(`poison-${i}`, "x");
          throw new LedgerError("invalid_argument", "test", "planned failure");
        });
      }
      return fund(ledger, `k${i}`, "a", 1n);
    });
    const results = await Promise.allSettled(writes);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(180);
    expect(results.filter((r) => r.status === "rejected")).toHaveLength(20);
    expect((await ledger.getBalance("t1", "a", "USD")).posted).toBe(180n);
    // The joined read of a balance says the same as the two reads it replaces.
    expect(await store.getAccountBalance("t1", "a", "USD")).toEqual({ account: await store.getAccount("t1", "a"), balance: await store.getBalance("t1", "a", "USD") });
    expect(await store.getAccountBalance("t1", "a", "EUR")).toEqual({ account: await store.getAccount("t1", "a"), balance: undefined });
    expect(await store.getAccountBalance("t2", "a", "USD")).toBeUndefined();
    expect(await store.getMeta("poison-5")).toBeUndefined();
    expect((await ledger.verify("t1")).ok).toBe(true);
  });

  it("refuses to update or delete journal entries", async () => {
    const { path, ledger } = await openLedger();
    await ledger.createAccount("t1", { id: "a", overdraftLimit: 0n, overdraftUnlimited: false, metadata: {} });
    await fund(ledger, "k1", "a", 10n);
    const db = new Database(path);
    cleanups.push(() => {
      db.close();
    });
    expect(() => db.prepare("UPDATE entries SET amount = 11").run()).toThrow(/append-only/);
    expect(() => db.prepare("DELETE FROM entries").run()).toThrow(/append-only/);
  });

  it("verify finds a tampered balance and a tampered balance_after, and the CLI exits 1", async () => {
    const { path, store, ledger } = await openLedger();
    await ledger.createAccount("t1", { id: "a", overdraftLimit: 0n, overdraftUnlimited: false, metadata: {} });
    await fund(ledger, "k1", "a", 10n);
    await fund(ledger, "k2", "a", 5n);
    expect(await ledger.verify("t1")).toMatchObject({ ok: true, entriesChecked: 4n });

    const db = new Database(path);
    db.defaultSafeIntegers(true);
    db.prepare("UPDATE balances SET posted = posted + 1 WHERE account_id = 'a'").run();
    let report = await ledger.verify("t1");
    expect(report.ok).toBe(false);
    expect(report.discrepancies).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ accountId: "a", asset: "USD", field: "posted", stored: 16n, recomputed: 15n }),
        expect.objectContaining({ asset: "USD", field: "asset_sum", stored: 1n }),
      ]),
    );
    db.prepare("UPDATE balances SET posted = posted - 1 WHERE account_id = 'a'").run();
    // Simulate a corrupted journal row behind the store's back.
    db.exec("DROP TRIGGER entries_no_update");
    db.prepare("UPDATE entries SET posted_after = 99 WHERE account_id = 'a' AND sequence = (SELECT min(sequence) FROM entries WHERE account_id = 'a')").run();
    report = await ledger.verify("t1");
    expect(report.discrepancies).toEqual([expect.objectContaining({ accountId: "a", field: "balance_after", stored: 99n, recomputed: 10n })]);
    db.close();
    await store.close();

    const cli = spawnSync(process.execPath, ["--import", "tsx", "src/main.ts", "verify", "--db", path], {
      cwd: join(import.meta.dirname, ".."),
      encoding: "utf8",
    });
    expect(cli.status).toBe(1);
    expect(cli.stdout).toContain('"field":"balance_after"');
  });

  it("applies migrations once and keeps data across reopen", async () => {
    const { dir, remove } = tempDir();
    cleanups.push(remove);
    const path = join(dir, "tally.db");
    const s1 = SqliteStore.open({ path });
    await new Access(s1, () => 1n).createTenant({ id: "t1", name: "t1" });
    await s1.close();
    const s2 = SqliteStore.open({ path });
    expect(await s2.listTenantIds()).toEqual(["t1"]);
    await s2.close();
    const db = new Database(path, { readonly: true });
    expect(db.prepare("SELECT count(*) AS n FROM schema_migrations").get()).toEqual({ n: MIGRATIONS.length });
    db.close();
  });
});
