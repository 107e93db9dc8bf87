/**
 * The PostgreSQL store's ceiling, the counterpart of bench/raw-sqlite.ts: the
 * rows one PostTransfer writes, inserted with raw `pg` and no RPC, no
 * validation, no reads and no account locks, on Tally's own schema
 * (PG_MIGRATIONS) with the store's own statements (pg-queries.ts), in a fresh
 * schema of the given database.
 *
 * Per transfer, in one BEGIN ... COMMIT: 2 journal entries (RETURNING their
 * sequence, as the store needs it), 2 balance upserts (payer and one payee),
 * 1 transfer and 1 idempotency row, as Tally writes them.
 * `connections` workers, each on its own connection with one
 * transaction in flight: what a Tally process with `--pg-pool-size N` could
 * at most do if every connection were always busy.
 *
 * As in the Tally load (bench/post-load.ts), worker i always credits payee i
 * and every transfer debits the same payer, so the payer's balance row is a
 * hot row here too: its upsert holds the row lock until COMMIT returns (WAL
 * flushed), and that is part of what this measures. `--payers N` gives the
 * workers N payers instead (worker i debits payer i mod N): with one payer
 * per connection there is no shared row, which shows what the hot row costs.
 *
 * Usage: node --import tsx bench/raw-pg.ts --url postgres://… --schema NAME --connections N --duration S [--payers N] [--max N]
 * Prints one JSON line. Creates the schema, and drops it again at the end
 * (also when a query fails), so a run leaves nothing behind.
 */
import pg from "pg";
import { parseArgs } from "node:util";
import { newId } from "../src/domain/ids.js";
import { PG_MIGRATIONS } from "../src/store/postgres/migrations.js";
import { Q, all, run } from "../src/store/postgres/pg-queries.js";
import { transferParams } from "../src/store/rows.js";
import { moveOne, rawTransfer } from "./raw-transfer.js";
import { p50p99 } from "./stats.js";

/** The JSON line this process prints. */
export interface RawPgResult {
  readonly connections: number;
  readonly payers: number;
  readonly transfers: number;
  readonly seconds: number;
  readonly perSec: number;
  /** Commit round trips (BEGIN to COMMIT answered), ms. */
  readonly p50Ms: number;
  readonly p99Ms: number;
}

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    schema: { type: "string" },
    connections: { type: "string", default: "10" },
    duration: { type: "string", default: "2" },
    max: { type: "string", default: "5000000" },
    payers: { type: "string", default: "1" },
  },
});
if (!values.url || !values.schema) throw new Error("--url and --schema are required");
if (!/^[a-z_][a-z0-9_]*$/.test(values.schema)) throw new Error("--schema must be a plain lower-case identifier");
const schema = values.schema;
const connections = Number(values.connections);
const durationMs = Number(values.duration) * 1000;
const max = Number(values.max);
const payerCount = Number(values.payers);
if (!Number.isInteger(payerCount) || payerCount < 1) throw new Error("--payers must be a positive integer");

// search_path set at connect time, so the store's unqualified statements land in the scratch schema.
const pool = new pg.Pool({ connectionString: values.url, max: connections, options: `-c search_path=${schema}` });
pool.on("error", () => {
  // An idle client dying is reported by the next query that uses it.
});

const tenant = "bench";
const asset = "USD";
const payers = Array.from({ length: payerCount }, (_, i) => (payerCount === 1 ? "payer" : `payer-${i}`));
// The running balances are kept here, as the store would compute them from its reads.
// With a shared payer, workers interleave and the values written are not exact; the rows have the right shape and size.
const posted = new Map<string, bigint>(payers.map((p) => [p, 1_000_000_000_000_000n]));
// Stands in for the request hash (a base64url SHA-256, 43 characters).
const HASH = "x".repeat(43);

let n = 0;
let stopping = false;
const latencies: number[] = [];

async function writeOne(client: pg.PoolClient, worker: number): Promise<void> {
  const i = n++;
  const payer = payers[worker % payers.length]!;
  const payee = `payee-${worker}`;
  const now = BigInt(Date.now()) * 1000n;
  const id = newId("tr");
  const { debitAfter: dAfter, creditAfter: cAfter } = moveOne(posted, payer, payee);
  await client.query("BEGIN");
  try {
    const de = await all(client, Q.insertEntry, [tenant, id, payer, payee, asset, "debit", "POSTED", -1n, 0n, dAfter, 0n, 0n, now]);
    const ce = await all(client, Q.insertEntry, [tenant, id, payee, payer, asset, "credit", "POSTED", 1n, 0n, cAfter, 0n, 0n, now]);
    const dSeq = BigInt(String(de[0]!.sequence));
    const cSeq = BigInt(String(ce[0]!.sequence));
    await run(client, Q.putBalance, [tenant, payer, asset, dAfter, 0n, 0n, dSeq, now]);
    await run(client, Q.putBalance, [tenant, payee, asset, cAfter, 0n, 0n, cSeq, now]);
    const t = rawTransfer({ tenant, id, key: `raw-${i}`, payer, payee, asset, now, sequence: cSeq, debitAfter: dAfter, creditAfter: cAfter });
    await run(client, Q.insertTransfer, transferParams(t));
    await run(client, Q.putIdempotency, [tenant, t.idempotencyKey, HASH, id, t.sequence, t.debitBalanceAfter, t.creditBalanceAfter]);
    await client.query("COMMIT");
  } catch (e) {
    await client.query("ROLLBACK").catch(() => {});
    throw e;
  }
}

async function worker(id: number): Promise<number> {
  const client = await pool.connect();
  let done = 0;
  try {
    while (!stopping && n < max) {
      const t0 = performance.now();
      await writeOne(client, id);
      latencies.push(performance.now() - t0);
      done++;
    }
  } finally {
    client.release();
  }
  return done;
}

let result: RawPgResult | undefined;
try {
  const admin = await pool.connect();
  try {
    await admin.query(`CREATE SCHEMA ${schema}`);
    await admin.query("BEGIN");
    for (const m of PG_MIGRATIONS) await admin.query(m.sql);
    await admin.query("COMMIT");
  } finally {
    admin.release();
  }
  // Every connection is opened (and its statements prepared on first use) before the clock starts.
  const warm = await Promise.all(Array.from({ length: connections }, () => pool.connect()));
  for (const c of warm) c.release();

  const start = performance.now();
  const timer = setTimeout(() => (stopping = true), durationMs);
  // allSettled, and a failing worker stops the others: no worker may still hold a connection when the pool ends.
  const settled = await Promise.allSettled(
    Array.from({ length: connections }, (_, id) =>
      worker(id).catch((e: unknown) => {
        stopping = true;
        throw e;
      }),
    ),
  );
  clearTimeout(timer);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
  const counts = settled.map((r) => (r.status === "fulfilled" ? r.value : 0));
  const seconds = (performance.now() - start) / 1000;
  const transfers = counts.reduce((a, b) => a + b, 0);
  const { p50, p99 } = p50p99(latencies);
  result = { connections, payers: payerCount, transfers, seconds, perSec: transfers / seconds, p50Ms: p50, p99Ms: p99 };
} finally {
  await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
  await pool.end();
}
process.stdout.write(JSON.stringify(result) + "\n");
