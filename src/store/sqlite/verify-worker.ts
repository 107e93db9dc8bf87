import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

/** The raw rows of one tenant's verify reads, or why there are none. */
export interface VerifyRows {
  readonly rows?: { readonly sums: unknown[]; readonly balances: unknown[]; readonly running: unknown[] };
  /** SUM overflowed int64 (a finding, reported by the domain). */
  readonly overflow?: true;
  readonly error?: string;
}

/** The statements a verify runs, as SQL text (each takes the tenant id). */
export interface VerifySql {
  readonly sums: string;
  readonly balances: string;
  readonly running: string;
}

// Plain JavaScript, run as the worker's script: a module file would need the
// TypeScript loader the server runs under (tsx, vitest), which workers do not
// inherit. The SQL comes from the store's own statements.
const SCRIPT = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
let answer;
const db = new Database(workerData.path, { readonly: true, fileMustExist: true });
try {
  db.defaultSafeIntegers(true);
  db.pragma("busy_timeout = " + workerData.busyMs);
  const q = (sql) => db.prepare(sql).all(workerData.tenantId);
  const read = db.transaction(() => ({ sums: q(workerData.sql.sums), balances: q(workerData.sql.balances), running: q(workerData.sql.running) }));
  try {
    answer = { rows: read.deferred() };
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    answer = /integer overflow/.test(message) ? { overflow: true } : { error: message };
  }
} finally {
  // Closed before answering: the store may close next, and its writer must be the
  // last connection for SQLite to checkpoint and remove the -wal file.
  db.close();
}
parentPort.postMessage(answer);
`;

const DRIVER = createRequire(import.meta.url).resolve("better-sqlite3");

/**
 * Runs a tenant's verify reads in a worker thread, on a read-only connection
 * of its own, in one read transaction (one snapshot). A verify scans the
 * whole journal: on the server's thread it would stall every other call for
 * as long as that takes.
 */
export function verifyInWorker(path: string, tenantId: string, sql: VerifySql, busyMs: number): Promise<VerifyRows> {
  return new Promise<VerifyRows>((resolve) => {
    const worker = new Worker(SCRIPT, { eval: true, workerData: { driver: DRIVER, path, tenantId, sql, busyMs } });
    worker.once("message", (m: VerifyRows) => resolve(m));
    worker.once("error", (e) => resolve({ error: e.message }));
    worker.once("exit", (code) => resolve({ error: `the verify worker exited (${code}) without an answer` }));
  });
}
