/**
 * Migration 6 (lean idempotency records) on PostgreSQL; see
 * test/idempotency-migration.test.ts.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, describe, it } from "vitest";
import { PostgresStore } from "../src/store/postgres/postgres-store.js";
import { expectReplays, legacyResult, writeBefore } from "./support/idempotency-migration.js";

const PG_URL = process.env.TALLY_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";

describe("PostgreSQL: migration 6 keeps every replay", () => {
  const schema = `t_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  afterAll(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await admin.end().catch(() => {});
  });

  it("replays keys recorded with a JSON copy of the answer", async () => {
    await admin.connect();
    const before = await PostgresStore.open({ url: PG_URL, schema });
    const first = await writeBefore(before);
    await before.close();
    const s = `"${schema}"`;
    const { rows } = await admin.query(`SELECT tenant_id, key, transfer_id FROM ${s}.idempotency`);
    await admin.query(`ALTER TABLE ${s}.idempotency DROP COLUMN sequence, DROP COLUMN debit_balance_after, DROP COLUMN credit_balance_after,
      ADD COLUMN result text COLLATE "C", ADD COLUMN created_at bigint`);
    for (const r of rows as { tenant_id: string; key: string; transfer_id: string }[]) {
      const t = first.find((x) => x.id === r.transfer_id)!;
      await admin.query(`UPDATE ${s}.idempotency SET result = $1, created_at = $2 WHERE tenant_id = $3 AND key = $4`, [
        legacyResult(t),
        t.createdAt.toString(),
        r.tenant_id,
        r.key,
      ]);
    }
    await admin.query(`ALTER TABLE ${s}.idempotency ALTER COLUMN result SET NOT NULL, ALTER COLUMN created_at SET NOT NULL`);
    await admin.query(`DELETE FROM ${s}.schema_migrations WHERE version = 6`);
    const after = await PostgresStore.open({ url: PG_URL, schema });
    try {
      await expectReplays(after, first);
    } finally {
      await after.close();
    }
  });
});
