import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { Access } from "../src/domain/access.js";
import { Ledger, systemClock } from "../src/domain/ledger.js";
import { MIGRATIONS } from "../src/store/sqlite/migrations.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { ServerFleet, integrityCheck, runTallyCli } from "./support/durability.js";
import { clientFor, tempDir } from "./support/server.js";

// `tally backup` as a child process on real SQLite files: while a server
// (another child process) keeps writing, and the ways it refuses.

const scratch = tempDir("tally-backup-");
const fleet = new ServerFleet();
afterAll(async () => {
  await fleet.killAll();
  scratch.remove();
});

function count(path: string, sql: string): number {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return Number(db.prepare(sql).pluck().get());
  } finally {
    db.close();
  }
}

/** A database with tenant "default", account alice and `n` transfers to it. */
async function smallLedger(path: string, n: number): Promise<void> {
  const store = SqliteStore.open({ path });
  const ledger = new Ledger({ store });
  await new Access(store, systemClock).createTenant({ id: "default", name: "" });
  await ledger.createAccount("default", { id: "alice", overdraftLimit: 0n, overdraftUnlimited: false, metadata: {} });
  for (let i = 0; i < n; i++) {
    await ledger.postTransfer("default", { idempotencyKey: `k${i}`, debitAccountId: "@world", creditAccountId: "alice", asset: "USD", amount: 5n, kind: "payment", note: "", metadata: {}, pending: false });
  }
  await store.close();
}

describe("tally backup", () => {
  it("copies a database a server is writing to, and the copy passes integrity_check and verify", async () => {
    const db = join(scratch.dir, "live.db");
    const to = join(scratch.dir, "live-backup.db");
    const { server } = await fleet.spawn(db);
    const client = clientFor(LedgerService, server.url, "grpc", server.adminKey!);
    await client.createAccount({ id: "alice" });
    let acked = 0;
    let stop = false;
    // Four writers, so that commits keep landing while the copy is taken.
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        await client.postTransfer({ idempotencyKey: `w${w}-${i}`, debitAccountId: "@world", creditAccountId: "alice", asset: "USD", amount: 1n });
        acked++;
      }
    });
    while (acked < 200) await new Promise((r) => setTimeout(r, 20));
    const ackedBefore = acked;
    const result = await runTallyCli(["backup", "--db", db, "--to", to]);
    const ackedAfter = acked;
    stop = true;
    await Promise.all(writers);
    await server.stop();

    expect(result.code, result.stderr).toBe(0);
    expect(ackedAfter).toBeGreaterThan(ackedBefore); // the server really was writing meanwhile
    const report = (JSON.parse(result.stdout) as { backup: Record<string, unknown> }).backup;
    expect(report).toMatchObject({ to, integrity: "ok", verified: true, tenants: 1, schema_version: Math.max(...MIGRATIONS.map((m) => m.version)) });
    expect(report.bytes).toBe(statSync(to).size);
    expect(integrityCheck(to)).toBe("ok");
    // A snapshot: everything acknowledged before the backup began, and no more than the server ever wrote.
    const copied = count(to, "SELECT count(*) FROM transfers");
    expect(copied).toBeGreaterThanOrEqual(ackedBefore);
    expect(copied).toBeLessThanOrEqual(count(db, "SELECT count(*) FROM transfers"));
    expect(count(to, "SELECT posted FROM balances WHERE account_id = 'alice'")).toBe(copied);
    const verify = await runTallyCli(["verify", "--db", to]);
    expect(verify.code, verify.stderr).toBe(0);
    // Nothing left beside the target but the target.
    expect(readdirSync(scratch.dir).filter((f) => f.startsWith("live-backup"))).toEqual(["live-backup.db"]);
  }, 120_000);

  it("refuses to overwrite a file unless --force, and then replaces it whole", async () => {
    const db = join(scratch.dir, "small.db");
    const to = join(scratch.dir, "taken.db");
    await smallLedger(db, 3);
    writeFileSync(to, "not a database");
    const refused = await runTallyCli(["backup", "--db", db, "--to", to]);
    expect(refused).toMatchObject({ code: 1, stdout: "" });
    expect(refused.stderr).toContain(`${to} exists; give --force to replace it`);
    expect(readFileSync(to, "utf8")).toBe("not a database");
    const forced = await runTallyCli(["backup", "--db", db, "--to", to, "--force"]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(count(to, "SELECT count(*) FROM transfers")).toBe(3);
  });

  it("refuses what it cannot do safely, with exit 2 for a wrong call and 1 for a refusal", async () => {
    const db = join(scratch.dir, "small.db");
    const cases: [string[], number, RegExp][] = [
      [["backup", "--database", "postgres://x@127.0.0.1/x", "--to", join(scratch.dir, "pg.db")], 2, /pg_dump/],
      [["backup", "--db", db], 2, /--to is required/],
      [["backup", "--db", db, "--to", db, "--force"], 2, /--to is the database itself/],
      [["backup", "--db", join(scratch.dir, "missing.db"), "--to", join(scratch.dir, "m.db")], 1, /no database at .*missing.db/],
      [["backup", "--db", db, "--to", join(scratch.dir, "no-such-dir", "b.db")], 2, /directory does not exist/],
    ];
    for (const [args, code, message] of cases) {
      const r = await runTallyCli(args);
      expect(r.code, args.join(" ")).toBe(code);
      expect(r.stderr, args.join(" ")).toMatch(message);
    }
    // A WAL file beside the target would be replayed into the new copy: refused even with --force.
    const walTarget = join(scratch.dir, "in-use.db");
    writeFileSync(`${walTarget}-wal`, "");
    const wal = await runTallyCli(["backup", "--db", db, "--to", walTarget, "--force"]);
    expect(wal.code).toBe(1);
    expect(wal.stderr).toContain("in-use.db-wal exists");
    expect(existsSync(walTarget)).toBe(false);
  });

  it("reports failure and writes nothing when the copy does not verify", async () => {
    const db = join(scratch.dir, "tampered.db");
    const to = join(scratch.dir, "tampered-backup.db");
    await smallLedger(db, 2);
    const raw = new Database(db);
    raw.prepare("UPDATE balances SET posted = posted + 1 WHERE account_id = 'alice'").run();
    raw.close();
    const r = await runTallyCli(["backup", "--db", db, "--to", to]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the copy does not verify .*tally verify --db/);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ tenant: "default", ok: false });
    expect(readdirSync(scratch.dir).filter((f) => f.startsWith("tampered-backup"))).toEqual([]);
  });

  it("keeps an older schema as it was: the check runs on a scratch copy, migrated, then removed", async () => {
    const db = join(scratch.dir, "old.db");
    const to = join(scratch.dir, "old-backup.db");
    const old = MIGRATIONS.slice(0, -1);
    const raw = new Database(db);
    raw.exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT");
    for (const m of old) {
      raw.exec(m.sql);
      raw.prepare("INSERT INTO schema_migrations VALUES (?, ?, 0)").run(m.version, m.name);
    }
    raw.prepare("INSERT INTO tenants VALUES ('old', 'Old', 0)").run();
    raw.close();
    const r = await runTallyCli(["backup", "--db", db, "--to", to]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ backup: { schema_version: old.at(-1)!.version, tenants: 1, verified: true } });
    expect(count(to, "SELECT max(version) FROM schema_migrations")).toBe(old.at(-1)!.version);
    expect(count(db, "SELECT max(version) FROM schema_migrations")).toBe(old.at(-1)!.version);
    expect(readdirSync(scratch.dir).filter((f) => f.startsWith("old-backup"))).toEqual(["old-backup.db"]);
  });
});
