/**
 * Migration 6 (lean idempotency records) on SQLite: a database written by the
 * previous schema, whose idempotency rows held a JSON copy of the first
 * answer, still replays every key byte for byte after the upgrade, including
 * a pending transfer posted before it (its row no longer says what the first
 * answer said). test/postgres-idempotency-migration.test.ts does the same on
 * PostgreSQL.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, it } from "vitest";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { expectReplays, legacyResult, writeBefore } from "./support/idempotency-migration.js";
import { tempDir } from "./support/server.js";

describe("SQLite: migration 6 keeps every replay", () => {
  const dirs: (() => void)[] = [];
  afterAll(() => dirs.forEach((remove) => remove()));

  it("replays keys recorded with a JSON copy of the answer", async () => {
    const { dir, remove } = tempDir();
    dirs.push(remove);
    const path = join(dir, "tally.db");
    const before = SqliteStore.open({ path });
    const first = await writeBefore(before);
    await before.close();
    // Back to the schema of version 5, with the rows it would have held.
    const db = new Database(path);
    db.defaultSafeIntegers(true);
    const records = db.prepare("SELECT * FROM idempotency").all() as { tenant_id: string; key: string; request_hash: string; transfer_id: string }[];
    db.exec(`DROP TABLE idempotency;
      CREATE TABLE idempotency (tenant_id TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, transfer_id TEXT NOT NULL,
        result TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (tenant_id, key)) STRICT, WITHOUT ROWID;
      DELETE FROM schema_migrations WHERE version = 6;`);
    const put = db.prepare("INSERT INTO idempotency VALUES (?, ?, ?, ?, ?, ?)");
    for (const r of records) {
      const t = first.find((x) => x.id === r.transfer_id)!;
      put.run(r.tenant_id, r.key, r.request_hash, r.transfer_id, legacyResult(t), t.createdAt);
    }
    db.close();
    const after = SqliteStore.open({ path });
    try {
      await expectReplays(after, first);
    } finally {
      await after.close();
    }
  });
});
