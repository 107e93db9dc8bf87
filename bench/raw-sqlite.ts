/**
 * The store's ceiling: the rows one PostTransfer writes, inserted with raw
 * better-sqlite3 and no RPC, no validation, no reads and no savepoints, on the
 * same schema (Tally's own MIGRATIONS) with the same durability (WAL,
 * synchronous=FULL) as the server.
 *
 * Per transfer: 2 journal entries, 2 balance upserts (payer and one payee),
 * 1 transfer and 1 idempotency row whose `result` is the real encoded
 * transfer, so every row has the size it has in Tally. `batch` transfers share
 * one BEGIN IMMEDIATE ... COMMIT, i.e. one WAL fsync.
 *
 * Usage: node --import tsx bench/raw-sqlite.ts --db FILE --batch N --duration S [--max N] [--payees N]
 * Prints one JSON line. Runs in its own process so each measurement starts
 * from a fresh file and a fresh heap.
 */
import Database from "better-sqlite3";
import { parseArgs } from "node:util";
import { newId } from "../src/domain/ids.js";
import type { Transfer } from "../src/domain/model.js";
import { transferParams } from "../src/store/rows.js";
import { MIGRATIONS } from "../src/store/sqlite/migrations.js";
import { encodeTransfer } from "../src/domain/transfer-codec.js";

/** The JSON line this process prints. */
export interface RawResult {
  readonly batch: number;
  readonly transfers: number;
  readonly commits: number;
  readonly seconds: number;
  readonly perSec: number;
  readonly commitsPerSec: number;
}

const { values } = parseArgs({
  options: {
    db: { type: "string" },
    batch: { type: "string", default: "64" },
    duration: { type: "string", default: "3" },
    max: { type: "string", default: "5000000" },
    payees: { type: "string", default: "64" },
  },
});
if (!values.db) throw new Error("--db FILE is required");
const batch = Number(values.batch);
const durationMs = Number(values.duration) * 1000;
const max = Number(values.max);
const payeeCount = Number(values.payees);

const db = new Database(values.db);
db.defaultSafeIntegers(true);
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
for (const m of MIGRATIONS) db.exec(m.sql);

// The same statements the store prepares (src/store/sqlite/statements.ts).
const insertEntry = db.prepare(
  `INSERT INTO entries (tenant_id, transfer_id, account_id, counterparty_id, asset, direction, status, amount,
     pending_change, posted_after, pending_in_after, pending_out_after, created_at)
   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
);
const putBalance = db.prepare(
  `INSERT INTO balances (tenant_id, account_id, asset, posted, pending_in, pending_out, sequence, updated_at)
   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
   ON CONFLICT (tenant_id, account_id, asset) DO UPDATE SET
     posted = excluded.posted, pending_in = excluded.pending_in, pending_out = excluded.pending_out,
     sequence = excluded.sequence, updated_at = excluded.updated_at`,
);
const insertTransfer = db.prepare(
  `INSERT INTO transfers (tenant_id, id, idempotency_key, debit_account_id, credit_account_id, asset, amount,
     posted_amount, kind, note, metadata, status, created_at, updated_at, sequence, debit_balance_after, credit_balance_after)
   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
);
const putIdempotency = db.prepare(
  "INSERT INTO idempotency (tenant_id, key, request_hash, transfer_id, result, created_at) VALUES (?, ?, ?, ?, ?, ?)",
);

const tenant = "bench";
const asset = "USD";
const payer = "payer";
const payees = Array.from({ length: payeeCount }, (_, i) => `payee-${i}`);
const posted = new Map<string, bigint>([[payer, 1_000_000_000_000_000n]]);
// Stands in for the request hash (a base64url SHA-256, 43 characters).
const HASH = "x".repeat(43);

let n = 0;
function writeOne(): void {
  const payee = payees[n % payees.length]!;
  const now = BigInt(Date.now()) * 1000n;
  const id = newId("tr");
  const dAfter = posted.get(payer)! - 1n;
  const cAfter = (posted.get(payee) ?? 0n) + 1n;
  posted.set(payer, dAfter);
  posted.set(payee, cAfter);
  const de = insertEntry.run(tenant, id, payer, payee, asset, "debit", "POSTED", -1n, 0n, dAfter, 0n, 0n, now);
  const ce = insertEntry.run(tenant, id, payee, payer, asset, "credit", "POSTED", 1n, 0n, cAfter, 0n, 0n, now);
  putBalance.run(tenant, payer, asset, dAfter, 0n, 0n, BigInt(de.lastInsertRowid), now);
  putBalance.run(tenant, payee, asset, cAfter, 0n, 0n, BigInt(ce.lastInsertRowid), now);
  const t: Transfer = {
    tenantId: tenant,
    id,
    idempotencyKey: `raw-${n}`,
    debitAccountId: payer,
    creditAccountId: payee,
    asset,
    amount: 1n,
    postedAmount: 1n,
    kind: "payment",
    note: "",
    metadata: {},
    status: "POSTED",
    createdAt: now,
    updatedAt: now,
    sequence: BigInt(ce.lastInsertRowid),
    debitBalanceAfter: dAfter,
    creditBalanceAfter: cAfter,
  };
  insertTransfer.run(...transferParams(t));
  putIdempotency.run(tenant, t.idempotencyKey, HASH, id, encodeTransfer(t), now);
  n++;
}

const commitBatch = db.transaction((count: number) => {
  for (let i = 0; i < count; i++) writeOne();
});

let commits = 0;
const start = performance.now();
// Bounded by time and by count.
while (performance.now() - start < durationMs && n < max) {
  commitBatch.immediate(Math.min(batch, max - n));
  commits++;
}
const seconds = (performance.now() - start) / 1000;
db.close();
const result: RawResult = { batch, transfers: n, commits, seconds, perSec: n / seconds, commitsPerSec: commits / seconds };
process.stdout.write(JSON.stringify(result) + "\n");
