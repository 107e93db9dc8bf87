/**
 * The store's ceiling: the rows one PostTransfer writes, inserted with raw
 * better-sqlite3 and no RPC, no validation, no reads and no savepoints, on the
 * same schema (Tally's own MIGRATIONS) with the same durability (WAL,
 * synchronous=FULL) as the server.
 *
 * Per transfer: 2 journal entries, 2 balance upserts (payer and one payee),
 * 1 transfer and 1 idempotency row, each with the size it has in Tally. `batch` transfers share
 * one BEGIN IMMEDIATE ... COMMIT, i.e. one WAL fsync.
 *
 * `--schema minimal` writes the same transfer into a minimal schema instead
 * (see MINIMAL_SCHEMA), so that what Tally's own indexes and row sizes cost
 * shows too.
 *
 * Usage: node --import tsx bench/raw-sqlite.ts --db FILE --batch N --duration S [--max N] [--payees N] [--schema tally|minimal]
 * Prints one JSON line. Runs in its own process so each measurement starts
 * from a fresh file and a fresh heap.
 */
import Database from "better-sqlite3";
import { existsSync, statSync } from "node:fs";
import { parseArgs } from "node:util";
import { newId } from "../src/domain/ids.js";
import { transferParams } from "../src/store/rows.js";
import { moveOne, rawTransfer } from "./raw-transfer.js";
import { MIGRATIONS } from "../src/store/sqlite/migrations.js";

/** The JSON line this process prints. */
export interface RawResult {
  readonly batch: number;
  readonly transfers: number;
  readonly commits: number;
  readonly seconds: number;
  readonly perSec: number;
  readonly commitsPerSec: number;
  /** Growth of the database file (with its WAL) per transfer. */
  readonly bytesPerTransfer: number;
}

/**
 * The minimal schema: 2 entries with one (account, asset, sequence) index, a
 * balance row per (account, asset), the transfer, the idempotency key. Same
 * pragmas as Tally's.
 */
const MINIMAL_SCHEMA = `
CREATE TABLE entries (sequence INTEGER PRIMARY KEY, transfer_id TEXT NOT NULL, account_id TEXT NOT NULL, asset TEXT NOT NULL,
  amount INTEGER NOT NULL, posted_after INTEGER NOT NULL) STRICT;
CREATE INDEX entries_by_account_asset ON entries (account_id, asset, sequence);
CREATE TABLE balances (account_id TEXT NOT NULL, asset TEXT NOT NULL, posted INTEGER NOT NULL, sequence INTEGER NOT NULL,
  PRIMARY KEY (account_id, asset)) STRICT, WITHOUT ROWID;
CREATE TABLE transfers (id TEXT PRIMARY KEY, debit_account_id TEXT NOT NULL, credit_account_id TEXT NOT NULL, asset TEXT NOT NULL,
  amount INTEGER NOT NULL, created_at INTEGER NOT NULL) STRICT, WITHOUT ROWID;
CREATE TABLE idempotency (key TEXT PRIMARY KEY, transfer_id TEXT NOT NULL) STRICT, WITHOUT ROWID;
`;

function fileBytes(path: string): number {
  let total = 0;
  for (const suffix of ["", "-wal"]) total += existsSync(path + suffix) ? statSync(path + suffix).size : 0;
  return total;
}

const { values } = parseArgs({
  options: {
    db: { type: "string" },
    batch: { type: "string", default: "64" },
    duration: { type: "string", default: "3" },
    max: { type: "string", default: "5000000" },
    payees: { type: "string", default: "64" },
    schema: { type: "string", default: "tally" },
  },
});
if (values.schema !== "tally" && values.schema !== "minimal") throw new Error("--schema is tally or minimal");
const minimal = values.schema === "minimal";
if (!values.db) throw new Error("--db FILE is required");
const batch = Number(values.batch);
const durationMs = Number(values.duration) * 1000;
const max = Number(values.max);
const payeeCount = Number(values.payees);

const db = new Database(values.db);
db.defaultSafeIntegers(true);
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
if (minimal) db.exec(MINIMAL_SCHEMA);
else for (const m of MIGRATIONS) db.exec(m.sql);
const emptyBytes = fileBytes(values.db);

// The same statements the store prepares (src/store/sqlite/statements.ts).
const tallyStatements = () => {
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
  "INSERT INTO idempotency (tenant_id, key, request_hash, transfer_id, sequence, debit_balance_after, credit_balance_after) VALUES (?, ?, ?, ?, ?, ?, ?)",
);
return { insertEntry, putBalance, insertTransfer, putIdempotency };
};

const tenant = "bench";
const asset = "USD";
const payer = "payer";
const payees = Array.from({ length: payeeCount }, (_, i) => `payee-${i}`);
const posted = new Map<string, bigint>([[payer, 1_000_000_000_000_000n]]);
// Stands in for the request hash (a base64url SHA-256, 43 characters).
const HASH = "x".repeat(43);

let n = 0;
/** One transfer's rows in Tally's tables, as the store writes them. */
function tallyWriter(): () => void {
  const { insertEntry, putBalance, insertTransfer, putIdempotency } = tallyStatements();
  return () => {
    const payee = payees[n % payees.length]!;
    const now = BigInt(Date.now()) * 1000n;
    const id = newId("tr");
    const { debitAfter: dAfter, creditAfter: cAfter } = moveOne(posted, payer, payee);
    const de = insertEntry.run(tenant, id, payer, payee, asset, "debit", "POSTED", -1n, 0n, dAfter, 0n, 0n, now);
    const ce = insertEntry.run(tenant, id, payee, payer, asset, "credit", "POSTED", 1n, 0n, cAfter, 0n, 0n, now);
    putBalance.run(tenant, payer, asset, dAfter, 0n, 0n, BigInt(de.lastInsertRowid), now);
    putBalance.run(tenant, payee, asset, cAfter, 0n, 0n, BigInt(ce.lastInsertRowid), now);
    const t = rawTransfer({ tenant, id, key: `raw-${n}`, payer, payee, asset, now, sequence: BigInt(ce.lastInsertRowid), debitAfter: dAfter, creditAfter: cAfter });
    insertTransfer.run(...transferParams(t));
    putIdempotency.run(tenant, t.idempotencyKey, HASH, id, t.sequence, dAfter, cAfter);
    n++;
  };
}

/** The same transfer in the minimal schema: what any ledger has to write at least. */
function minimalWriter(): () => void {
  const insertEntry = db.prepare("INSERT INTO entries (transfer_id, account_id, asset, amount, posted_after) VALUES (?, ?, ?, ?, ?)");
  const putBalance = db.prepare(
    `INSERT INTO balances (account_id, asset, posted, sequence) VALUES (?, ?, ?, ?)
     ON CONFLICT (account_id, asset) DO UPDATE SET posted = excluded.posted, sequence = excluded.sequence`,
  );
  const insertTransfer = db.prepare("INSERT INTO transfers (id, debit_account_id, credit_account_id, asset, amount, created_at) VALUES (?, ?, ?, ?, ?, ?)");
  const putKey = db.prepare("INSERT INTO idempotency (key, transfer_id) VALUES (?, ?)");
  return () => {
    const payee = payees[n % payees.length]!;
    const id = newId("tr");
    const { debitAfter: dAfter, creditAfter: cAfter } = moveOne(posted, payer, payee);
    const de = insertEntry.run(id, payer, asset, -1n, dAfter);
    const ce = insertEntry.run(id, payee, asset, 1n, cAfter);
    putBalance.run(payer, asset, dAfter, BigInt(de.lastInsertRowid));
    putBalance.run(payee, asset, cAfter, BigInt(ce.lastInsertRowid));
    insertTransfer.run(id, payer, payee, asset, 1n, BigInt(Date.now()) * 1000n);
    putKey.run(`raw-${n}`, id);
    n++;
  };
}

const writeOne = minimal ? minimalWriter() : tallyWriter();

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
// Closing checkpoints the WAL into the file and removes it.
db.close();
const result: RawResult = {
  batch,
  transfers: n,
  commits,
  seconds,
  perSec: n / seconds,
  commitsPerSec: commits / seconds,
  bytesPerTransfer: (fileBytes(values.db) - emptyBytes) / n,
};
process.stdout.write(JSON.stringify(result) + "\n");
