/**
 * `npm run bench:skip`: what 3PLGuys' `skip` costs (issue 12).
 *
 * Builds one account with BENCH_SKIP_ENTRIES (default 1,000,000) POSTED USD
 * entries through the domain API (Ledger.postTransfers in full batches, a few
 * in flight so that group commit joins them), with a pending hold after every
 * 100th (journal entries that are not transactions), checks it with verify,
 * then starts a real `tally serve` child on that SQLite file, pinned to core
 * 0, and times `GET /v0/balance/transactions?skip=S&take=50` for S = 0, the
 * middle and the end (entries − 50), one call at a time over one keep-alive
 * HTTP/1.1 connection, rounds interleaved so a slow moment hits every S alike.
 * Prints the medians and the ratio end ÷ 0 (the target is ≤ 1.2x).
 *
 * With BENCH_SKIP_BEFORE=<dir>, a checkout of the code before the change (its
 * node_modules in place) serves the same file as well, its end and middle
 * calls capped at BENCH_SKIP_BEFORE_CALLS in all (one round): the old scan walks the journal.
 * Run the bench alone on the machine (npm run bench:skip pins this client to
 * core 1).
 */
import { mkdtempSync, rmSync } from "node:fs";
import * as http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Access } from "../src/domain/access.js";
import { Ledger } from "../src/domain/ledger.js";
import type { TransferInput } from "../src/domain/ledger.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { ROOT, spawnChild, stopAllChildren } from "./children.js";
import type { Child } from "./children.js";
import { loadAverages, machineLine } from "./machine.js";
import { envNumber, fmt, median, ratio } from "./stats.js";

/** A whole-number knob (see envNumber). */
const envInt = (name: string, fallback: number, min: number, max: number) => Math.floor(envNumber(name, fallback, min, max));

const S = {
  entries: envInt("BENCH_SKIP_ENTRIES", 1_000_000, 100, 10_000_000),
  /** Calls per skip value per round, and rounds. */
  calls: envInt("BENCH_SKIP_CALLS", 100, 1, 100_000),
  rounds: envInt("BENCH_SKIP_ROUNDS", 5, 1, 100),
  before: process.env.BENCH_SKIP_BEFORE,
  /** Calls of the old server at the middle and the end, in all (one walk of the end costs seconds). */
  beforeCalls: envInt("BENCH_SKIP_BEFORE_CALLS", 2, 1, 1000),
  keep: process.env.BENCH_KEEP === "1",
};
const TAKE = 50;
const TENANT = "bench";
const ACCOUNT = "busy";
/** Transfers per PostTransfers call (the API's largest batch), and calls in flight. */
const BATCH = 1000;
const IN_FLIGHT = 4;

function log(line: string): void {
  process.stderr.write(`[bench:skip] ${line}\n`);
}

/**
 * The account's i-th posted transfer (0-based) moves i+1 cents, so the page at
 * any skip is known: its first amount is entries − skip, then one less each.
 */
function credit(i: number): TransferInput {
  return {
    idempotencyKey: `c-${i}`,
    debitAccountId: "@world",
    creditAccountId: ACCOUNT,
    asset: "USD",
    amount: BigInt(i + 1) * 10_000n,
    kind: "payment",
    note: `credit ${i}`,
    metadata: {},
    pending: false,
  };
}

function hold(i: number): TransferInput {
  return { ...credit(i), idempotencyKey: `h-${i}`, debitAccountId: ACCOUNT, creditAccountId: "@world", amount: 1n, note: `hold ${i}`, pending: true };
}

/** Builds the database through the domain API; returns an account-read key of the busy account. */
async function build(dbPath: string): Promise<string> {
  const store = SqliteStore.open({ path: dbPath });
  try {
    const ledger = new Ledger({ store });
    const access = new Access(store, () => ledger.now());
    await access.createTenant({ id: TENANT, name: "skip bench" });
    await ledger.createAccount(TENANT, { id: ACCOUNT, overdraftLimit: 0n, overdraftUnlimited: false, metadata: {} });
    const t0 = performance.now();
    let next = 0;
    let holds = 0;
    let logged = 0;
    const worker = async () => {
      while (next < S.entries) {
        const items: TransferInput[] = [];
        while (items.length < BATCH && next < S.entries) {
          items.push(credit(next));
          // A hold after every 100th credit (it still fits the batch limit).
          if (next % 100 === 99 && items.length < BATCH) {
            items.push(hold(next));
            holds++;
          }
          next++;
        }
        await ledger.postTransfers(TENANT, items);
        if (next - logged >= 100_000) {
          logged = next;
          log(`built ${fmt(next)} posted entries (${fmt((next / (performance.now() - t0)) * 1000)}/s)`);
        }
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    const buildS = (performance.now() - t0) / 1000;
    log(`built ${fmt(S.entries)} posted entries and ${fmt(holds)} holds in ${buildS.toFixed(1)} s`);
    const v0 = performance.now();
    const report = await ledger.verify(TENANT);
    if (!report.ok) throw new Error(`verify found ${report.discrepancies.length} discrepancies`);
    log(`verify ok (${fmt(Number(report.entriesChecked))} entries) in ${((performance.now() - v0) / 1000).toFixed(1)} s`);
    return (await access.createKey(TENANT, { scope: "account_read", accountId: ACCOUNT, label: "skip bench" })).secret;
  } finally {
    await store.close();
  }
}

/** `tally serve` on core 0, from this checkout or from `root`. */
async function serve(name: string, root: string, dbPath: string): Promise<{ child: Child; port: number }> {
  const child = spawnChild(name, "taskset", [
    "-c", "0",
    process.execPath, "--import", "tsx", join(root, "src/main.ts"),
    "serve", "--db", dbPath, "--port", "0", "--log-level", "error",
  ]);
  const m = await child.waitFor(/listening on http:\/\/[^:\s]+:(\d+)/, 60_000);
  return { child, port: Number(m[1]) };
}

/** One GET over the keep-alive agent: its latency in ms and its body. */
function get(agent: http.Agent, port: number, path: string, key: string): Promise<{ ms: number; status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request({ host: "127.0.0.1", port, path, agent, headers: { authorization: `Bearer ${key}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ ms: performance.now() - t0, status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

const pathOf = (skip: number) => `/v0/balance/transactions?skip=${skip}&take=${TAKE}`;

/** Checks one page: 200, 50 transactions, amounts entries − skip downwards. */
function requirePage(server: string, skip: number, r: { status: number; body: string }): void {
  const amounts = r.status === 200 ? (JSON.parse(r.body) as { amount: number }[]).map((t) => t.amount) : [];
  const want = Array.from({ length: Math.min(TAKE, S.entries - skip) }, (_, i) => S.entries - skip - i);
  if (JSON.stringify(amounts) !== JSON.stringify(want)) {
    throw new Error(`${server} skip=${skip}: status ${r.status}, amounts ${JSON.stringify(amounts.slice(0, 3))}…, expected ${JSON.stringify(want.slice(0, 3))}…`);
  }
}

/** Latencies per skip: `callsAt(skip)` calls per skip in each of `rounds` rounds, rounds interleaved. */
async function measure(
  server: string,
  port: number,
  key: string,
  skips: readonly number[],
  rounds: number,
  callsAt: (skip: number) => number,
): Promise<Map<number, number[]>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (const skip of skips) requirePage(server, skip, await get(agent, port, pathOf(skip), key));
    // Warm up the server's JIT and the page cache on the cheap call.
    for (let i = 0; i < 200; i++) await get(agent, port, pathOf(0), key);
    const samples = new Map<number, number[]>(skips.map((s) => [s, []]));
    for (let round = 0; round < rounds; round++) {
      for (const skip of skips) {
        for (let i = 0; i < callsAt(skip); i++) {
          const r = await get(agent, port, pathOf(skip), key);
          if (r.status !== 200) throw new Error(`${server} skip=${skip}: status ${r.status}: ${r.body}`);
          samples.get(skip)!.push(r.ms);
        }
      }
    }
    return samples;
  } finally {
    agent.destroy();
  }
}

function report(server: string, skips: readonly number[], samples: Map<number, number[]>): void {
  const base = median(samples.get(skips[0]!)!);
  for (const skip of skips) {
    const xs = samples.get(skip)!;
    console.log(`| ${server} | ${fmt(skip)} | ${fmt(xs.length)} | ${median(xs).toFixed(3)} | ${ratio(median(xs), base)} |`);
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "tally-bench-skip-"));
  const dbPath = join(dir, "tally.db");
  try {
    log(machineLine());
    const key = await build(dbPath);
    const skips = [0, Math.floor(S.entries / 2), S.entries - TAKE];
    const rows: [string, Map<number, number[]>][] = [];
    {
      const { child, port } = await serve("tally", ROOT, dbPath);
      try {
        rows.push(["after (seek)", await measure("after", port, key, skips, S.rounds, () => S.calls)]);
      } finally {
        await child.stop();
      }
    }
    if (S.before !== undefined) {
      const { child, port } = await serve("tally-before", S.before, dbPath);
      try {
        rows.push(["before (scan)", await measure("before", port, key, skips, 1, (skip) => (skip === 0 ? S.calls : S.beforeCalls))]);
      } finally {
        await child.stop();
      }
    }
    console.log(`\n${new Date().toISOString()}  ${machineLine()}  load ${loadAverages()}`);
    console.log(`one account, ${fmt(S.entries)} posted USD entries; GET /v0/balance/transactions?skip=S&take=${TAKE}, one call at a time, server on core 0\n`);
    console.log("| server | skip | calls | median ms | ÷ skip=0 |");
    console.log("|---|---:|---:|---:|---:|");
    for (const [name, samples] of rows) report(name, skips, samples);
    const after = rows[0]![1];
    const r = median(after.get(skips[2]!)!) / median(after.get(0)!);
    console.log(`\nratio skip=${fmt(skips[2]!)} ÷ skip=0: ${r.toFixed(2)}x (target ≤ 1.2x)${r <= 1.2 ? "" : "  ABOVE TARGET"}`);
  } finally {
    await stopAllChildren();
    if (S.keep) log(`kept ${dbPath}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

await main();
