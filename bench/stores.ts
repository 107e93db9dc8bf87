/**
 * `npm run bench:stores`: Tally on SQLite next to Tally on PostgreSQL, in one run.
 *
 * Deployments, all `tally serve` child processes started as an operator would:
 *   - SQLite: one process, WAL, `--durability full` (synchronous=FULL);
 *   - PostgreSQL, one replica: one process with `--database postgres://…`;
 *   - PostgreSQL, two replicas: that process and a second one on the same
 *     database and schema, the load split evenly across them.
 * Measured, interleaved (round 1 of every deployment, then round 2, ...) and
 * repeated BENCH_REPEAT times; the tables report medians:
 *   1. GetBalance over gRPC, loaded by h2load (bench/h2load.ts); with two
 *      replicas, two h2load processes at once, each with half the connections,
 *      req/s summed.
 *   2. PostTransfer with 64 gRPC clients (bench/post-load.ts); with two
 *      replicas, two load processes of 32 clients, one per replica. After
 *      every run, AdminService.Verify over the API must say ok and the
 *      journal must hold every acknowledged transfer.
 *   3. The stores' ceilings, same rows, no RPC: raw `pg` (bench/raw-pg.ts)
 *      with as many connections as Tally's pool (and as both replicas'
 *      pools), and raw better-sqlite3 (bench/raw-sqlite.ts).
 *
 * PostgreSQL runs on the same machine, so it competes with Tally and the load
 * generators for the same cores; the bench reports its CPU time and samples
 * pg_stat_activity during PostTransfer to show where its connections wait.
 * The scratch database is created at the start and dropped at the end.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type pg from "pg";
import { bootstrapKeyOf, prepareFixtureViaApi, tallyClients } from "./api-fixture.js";
import type { ApiFixture } from "./api-fixture.js";
import type { Child } from "./children.js";
import { cpuSeconds, runJsonChild, spawnTs, stopAllChildren } from "./children.js";
import { prepareFixture, writeGetBalanceBodies } from "./fixture.js";
import type { H2loadResult } from "./h2load.js";
import { h2loadAvailable, h2loadVersion, runH2load } from "./h2load.js";
import { PressureMeter, filesystemOf, loadAverages, machineLine } from "./machine.js";
import { WAIT_BUCKETS, WaitSampler, connectPg, cpuOf, pgPids, pgSettingsLine } from "./pg-monitor.js";
import type { WaitProfile } from "./pg-monitor.js";
import type { PostLoadResult } from "./post-load.js";
import { probe, requireSuccess } from "./probe.js";
import type { RawPgResult } from "./raw-pg.js";
import type { RawResult } from "./raw-sqlite.js";
import { pct, table } from "./report.js";
import { envNumber, fmt, median, ratio } from "./stats.js";

// ---- settings -------------------------------------------------------------

function envList(name: string, fallback: string): number[] {
  const raw = process.env[name] ?? fallback;
  if (raw.trim() === "") return [];
  return raw.split(",").map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a list of positive integers, got "${s}"`);
    return n;
  });
}

const PARTS = ["getbalance", "post", "raw"] as const;
const pgPool = envNumber("BENCH_PG_POOL", 10, 1, 1000);

/** Every knob, from the environment (the same names as bench/run.ts where they mean the same). */
const S = {
  duration: envNumber("BENCH_DURATION", 5, 1, 600),
  warmup: envNumber("BENCH_WARMUP", 2, 0, 600),
  repeat: envNumber("BENCH_REPEAT", 3, 1, 20),
  connections: envNumber("BENCH_CONNECTIONS", 4, 2, 1000),
  streams: envNumber("BENCH_STREAMS", 16, 1, 1000),
  postDuration: envNumber("BENCH_POST_DURATION", 5, 1, 600),
  postWarmup: envNumber("BENCH_POST_WARMUP", 1, 0, 600),
  postClients: envNumber("BENCH_POST_CLIENTS", 64, 2, 1000),
  postMax: envNumber("BENCH_POST_MAX", 2_000_000, 1, 100_000_000),
  rawDuration: envNumber("BENCH_RAW_DURATION", 2, 1, 600),
  pgPool,
  rawPgConnections: envList("BENCH_RAW_PG_CONNECTIONS", `${pgPool},${2 * pgPool}`),
  /** Raw pg runs with a payer per connection (no hot row): a diagnostic of what the shared payer costs. */
  rawPgSpread: envList("BENCH_RAW_PG_SPREAD", `${pgPool},${2 * pgPool}`),
  rawSqliteBatches: envList("BENCH_RAW_SQLITE_BATCHES", "64"),
  pgAdminUrl: process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
  tallyLog: process.env.BENCH_TALLY_LOG ?? "error",
  skip: new Set((process.env.BENCH_SKIP ?? "").split(",").filter(Boolean)),
  json: process.env.BENCH_JSON,
  keep: process.env.BENCH_KEEP === "1",
};
if (!["info", "error", "silent"].includes(S.tallyLog)) throw new Error("BENCH_TALLY_LOG must be info, error or silent");
for (const s of S.skip) {
  if (!(PARTS as readonly string[]).includes(s)) throw new Error(`BENCH_SKIP: unknown part "${s}" (one of ${PARTS.join(", ")})`);
}

const GET_BALANCE_PATH = "/tally.ledger.v1.LedgerService/GetBalance";
/** Server start-up (tsx compiles on first load) is slow on a busy machine; this bounds it. */
const START_TIMEOUT_MS = 60_000;

const SQLITE = "SQLite, 1 process";
const PG1 = "PostgreSQL, 1 replica";
const PG2 = "PostgreSQL, 2 replicas";
const RAW_PG = "raw pg, 1 transfer per commit";
const RAW_SQLITE = "raw better-sqlite3";

// ---- helpers --------------------------------------------------------------

function log(line: string): void {
  process.stderr.write(`[bench:stores] ${line}\n`);
}

interface Contention {
  readonly cpuStall: number;
  readonly ioStall: number;
}

function contention(meter: PressureMeter): Contention {
  const p = meter.read();
  return { cpuStall: p.cpu, ioStall: p.io };
}

async function startTally(name: string, args: string[]): Promise<{ child: Child; url: string }> {
  const child = spawnTs(name, "src/main.ts", ["serve", "--port", "0", "--log-level", S.tallyLog, ...args]);
  const m = await child.waitFor(/listening on http:\/\/[^:\s]+:(\d+)/, START_TIMEOUT_MS);
  return { child, url: `http://127.0.0.1:${m[1]}` };
}

/** One way of running Tally: its server processes, and what the load is split across. */
interface Deployment {
  readonly name: string;
  readonly store: "sqlite" | "postgres";
  readonly servers: readonly Child[];
  readonly urls: readonly string[];
  readonly fx: ApiFixture;
}

/** Splits `total` into `parts` near-equal shares. */
function split(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

/** CPU seconds the given processes use from now on. */
function cpuMeter(children: readonly Child[]): () => number {
  const c0 = children.map((c) => cpuSeconds(c.proc.pid));
  return () => children.reduce((a, c, i) => a + cpuSeconds(c.proc.pid) - c0[i]!, 0);
}

/** Every Tally server of the run, so that the ones not under load can be checked to be idle. */
let allServers: readonly Child[] = [];
const idleServers = (d: Deployment) => allServers.filter((c) => !d.servers.includes(c));

/** Everything the bench needs to watch PostgreSQL; undefined while measuring SQLite. */
interface PgWatch {
  readonly client: pg.Client;
  readonly database: string;
}

/** CPU seconds of PostgreSQL's processes for our database, measured over an interval. */
async function pgCpuMeter(w: PgWatch): Promise<() => number> {
  const pids = await pgPids(w.client, w.database);
  const c0 = cpuOf(pids);
  return () => cpuOf(pids) - c0;
}

// ---- GetBalance -------------------------------------------------------------

interface GetBalanceRun extends Contention {
  readonly reqPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Tally processes, CPU-seconds per second (summed over replicas). */
  readonly tallyCpu: number;
  /** PostgreSQL processes for our database, CPU-seconds per second (0 for SQLite). */
  readonly pgCpu: number;
  /** The Tally servers not under load (e.g. the second replica while one is measured): should be near 0. */
  readonly idleCpu: number;
  readonly problem?: string | undefined;
}

/** Checks that h2load saw only successful answers of the expected size (as bench/run.ts does). */
function checkH2load(h2: H2loadResult, responseBytes: number, inFlight: number): string | undefined {
  if (h2.succeeded === 0) return "no request succeeded";
  if (h2.failed + h2.errored + h2.timeout > 0) return `${h2.failed} failed, ${h2.errored} errored, ${h2.timeout} timed out`;
  if (h2.statusOther > 0) return `${h2.statusOther} non-2xx responses`;
  // A gRPC error is a 200 with no message (trailers only): it would show as missing DATA bytes.
  const min = h2.succeeded * responseBytes * 0.99;
  const max = (h2.succeeded + inFlight) * responseBytes * 1.01;
  if (h2.dataBytes < min || h2.dataBytes > max) {
    return `${(h2.dataBytes / h2.succeeded).toFixed(1)} response bytes per request, expected ${responseBytes}: some calls failed`;
  }
  return undefined;
}

async function getBalancePhase(deployments: readonly Deployment[], dir: string, watch: PgWatch): Promise<Record<string, GetBalanceRun[]>> {
  const runs: Record<string, GetBalanceRun[]> = Object.fromEntries(deployments.map((d) => [d.name, []]));
  // Both fixtures have the same reader, asset and tenant; only the key differs.
  const bodies = new Map(deployments.map((d) => [d.name, writeGetBalanceBodies(dir, d.fx.readAccount, d.fx.asset).grpc]));
  const headersOf = (d: Deployment) => ({ "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${d.fx.adminKey}` });
  const responseBytes = new Map<string, number>();
  for (const d of deployments) {
    for (const u of d.urls) {
      const r = await probe(u + GET_BALANCE_PATH, headersOf(d), readFileSync(bodies.get(d.name)!));
      requireSuccess(`${d.name} (${u})`, "grpc", r);
      responseBytes.set(d.name, r.body.length);
    }
  }
  const load = (d: Deployment, durationS: number, withLog: boolean) => {
    const conns = split(S.connections, d.urls.length);
    return Promise.all(
      d.urls.map((u, i) =>
        runH2load({
          url: u + GET_BALANCE_PATH,
          bodyFile: bodies.get(d.name)!,
          headers: headersOf(d),
          clients: conns[i]!,
          streams: S.streams,
          durationS,
          ...(withLog ? { logFile: join(dir, `h2load-${i}.log`) } : {}),
        }),
      ),
    );
  };
  if (S.warmup > 0) {
    log(`GetBalance: warming up ${deployments.length} deployments, ${S.warmup} s each`);
    for (const d of deployments) await load(d, S.warmup, false);
  }
  for (let round = 1; round <= S.repeat; round++) {
    for (const d of deployments) {
      const meter = new PressureMeter();
      const pgCpu = d.store === "postgres" ? await pgCpuMeter(watch) : () => 0;
      const tally = cpuMeter(d.servers);
      const idle = cpuMeter(idleServers(d));
      const t0 = performance.now();
      const results = await load(d, S.duration, true);
      const wall = (performance.now() - t0) / 1000;
      const tallyCpu = tally() / wall;
      const idleCpu = idle() / wall;
      const problems = results.map((h2, i) => checkH2load(h2, responseBytes.get(d.name)!, split(S.connections, d.urls.length)[i]! * S.streams));
      const run: GetBalanceRun = {
        reqPerSec: results.reduce((a, r) => a + r.reqPerSec, 0),
        // Per-process percentiles: the mean of the p50s and the worse p99 (the processes see the same load).
        p50Ms: results.reduce((a, r) => a + r.p50Ms, 0) / results.length,
        p99Ms: Math.max(...results.map((r) => r.p99Ms)),
        tallyCpu,
        pgCpu: pgCpu() / wall,
        idleCpu,
        problem: problems.find((p) => p !== undefined),
        ...contention(meter),
      };
      runs[d.name]!.push(run);
      log(
        `GetBalance ${round}/${S.repeat}: ${d.name.padEnd(24)} ${fmt(run.reqPerSec).padStart(7)} req/s  ` +
          `p50 ${run.p50Ms.toFixed(2)} ms  p99 ${run.p99Ms.toFixed(2)} ms  Tally CPU ${pct(run.tallyCpu)}  postgres CPU ${pct(run.pgCpu)}  ` +
          `idle servers' CPU ${pct(run.idleCpu)}  CPU stall ${pct(run.cpuStall)}` +
          (run.problem ? `  PROBLEM: ${run.problem}` : ""),
      );
    }
  }
  return runs;
}

// ---- PostTransfer -----------------------------------------------------------

interface PostRun extends Contention {
  readonly perSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly tallyCpu: number;
  readonly pgCpu: number;
  /** The load processes, summed. */
  readonly clientCpu: number;
  /** The Tally servers not under load: should be near 0. */
  readonly idleCpu: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly unexpected: number;
  /** Seconds between the first and the last load process opening its window (0 with one). */
  readonly windowSkew: number;
  readonly waits?: WaitProfile | undefined;
  /** AdminService.Verify after this run, and the journal count against what was acknowledged. */
  readonly verify: string;
  readonly verified: boolean;
}

/** Transfers acknowledged so far, per store (both PostgreSQL deployments share one journal). */
const acknowledged = { sqlite: 0, postgres: 0 };

/** The PostTransfer loads: one hot payer (every transfer debits it), or spread over 100 accounts. */
const POST_LOADS = ["one payer", "spread over 100 accounts"] as const;
type PostLoad = (typeof POST_LOADS)[number];

/** The name a deployment's runs are reported under for one load. */
const postName = (d: { name: string }, load: PostLoad) => (load === "one payer" ? d.name : `${d.name}, ${load}`);

async function postRun(d: Deployment, round: number, watch: PgWatch, load: PostLoad): Promise<PostRun> {
  const clients = split(S.postClients, d.urls.length);
  // Each load process gets its own payees, so no two clients share a payee, as with one process.
  let firstPayee = 0;
  const loaders = d.urls.map((url, i) => {
    const payees = d.fx.payees.slice(firstPayee, firstPayee + clients[i]!);
    firstPayee += clients[i]!;
    return spawnTs(`post-load-${i}`, "bench/post-load.ts", [
      "--url", url,
      "--key", d.fx.adminKey,
      ...(load === "one payer" ? ["--payer", d.fx.payer] : ["--payers", d.fx.spreadPayers.join(",")]),
      "--payees", (payees.length ? payees : d.fx.payees).join(","),
      "--asset", d.fx.asset,
      "--concurrency", String(clients[i]),
      "--duration", String(S.postDuration),
      "--warmup", String(S.postWarmup),
      "--max", String(Math.ceil(S.postMax / d.urls.length)),
      "--run-id", `stores-${d.store}-${Date.now()}-${round}-${i}-${load === "one payer" ? "hot" : "spread"}`,
    ]);
  });
  const opened: number[] = [];
  await Promise.all(loaders.map((c) => c.waitFor(/^WINDOW start/, START_TIMEOUT_MS + S.postWarmup * 1000).then(() => opened.push(performance.now()))));
  const meter = new PressureMeter();
  const pgCpu = d.store === "postgres" ? await pgCpuMeter(watch) : () => 0;
  const sampler = d.store === "postgres" ? new WaitSampler(watch.client, watch.database) : undefined;
  const tally = cpuMeter(d.servers);
  const idle = cpuMeter(idleServers(d));
  const client = cpuMeter(loaders);
  const t0 = performance.now();
  await Promise.all(loaders.map((c) => c.waitFor(/^WINDOW end/, (S.postDuration + 30) * 1000)));
  const wall = (performance.now() - t0) / 1000;
  const tallyCpu = tally() / wall;
  const idleCpu = idle() / wall;
  const clientCpu = client() / wall;
  const pgCpuShare = pgCpu() / wall;
  const stall = contention(meter);
  const waits = await sampler?.stop();
  const results = await Promise.all(loaders.map((c) => runJsonChild<PostLoadResult>(c, 60_000)));
  const errors: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  acknowledged[d.store] += results.reduce((a, r) => a + r.okTotal, 0);

  // The books must balance and hold every acknowledged transfer, checked through the API as an operator would.
  const report = await tallyClients(d.urls[0]!, d.fx.adminKey).admin.verify({});
  const transfers = Number(report.entriesChecked) / 2 - d.fx.fundingTransfers;
  const verified = report.ok && transfers >= acknowledged[d.store];
  const okCount = results.reduce((a, r) => a + r.ok, 0);
  return {
    perSec: results.reduce((a, r) => a + r.perSec, 0),
    // Per-process percentiles: the mean of the p50s weighted by calls, and the worse p99.
    p50Ms: okCount ? results.reduce((a, r) => a + r.p50Ms * r.ok, 0) / okCount : Number.NaN,
    p99Ms: Math.max(...results.map((r) => r.p99Ms)),
    tallyCpu,
    pgCpu: pgCpuShare,
    clientCpu,
    idleCpu,
    errors,
    unexpected: results.reduce((a, r) => a + r.unexpected, 0),
    windowSkew: (Math.max(...opened) - Math.min(...opened)) / 1000,
    waits,
    verify:
      `${verified ? "ok" : "FAILED"}: Verify ok=${report.ok}, ${report.discrepancies.length} discrepancies; ` +
      `${fmt(transfers)} transfers in the ${d.store} journal, ${fmt(acknowledged[d.store])} acknowledged`,
    verified,
    ...stall,
  };
}

async function postTransferPhase(deployments: readonly Deployment[], watch: PgWatch): Promise<Record<string, PostRun[]>> {
  const runs: Record<string, PostRun[]> = {};
  for (let round = 1; round <= S.repeat; round++) {
    for (const load of POST_LOADS) for (const d of deployments) {
      const r = await postRun(d, round, watch, load);
      (runs[postName(d, load)] ??= []).push(r);
      const errors = Object.entries(r.errors).map(([k, v]) => `${k}: ${v}`).join(", ");
      log(
        `PostTransfer ${round}/${S.repeat}: ${postName(d, load).padEnd(50)} ${fmt(r.perSec).padStart(6)} transfers/s  p50 ${r.p50Ms.toFixed(1)} ms  ` +
          `p99 ${r.p99Ms.toFixed(1)} ms  Tally CPU ${pct(r.tallyCpu)}  postgres CPU ${pct(r.pgCpu)}  client CPU ${pct(r.clientCpu)}  idle servers' CPU ${pct(r.idleCpu)}  ` +
          `CPU stall ${pct(r.cpuStall)}  I/O stall ${pct(r.ioStall)}` +
          (r.windowSkew > 0 ? `  window skew ${(r.windowSkew * 1000).toFixed(0)} ms` : "") +
          (errors ? `  ERRORS: ${errors}` : "") +
          (r.unexpected ? `  UNEXPECTED ANSWERS: ${r.unexpected}` : ""),
      );
      if (r.waits) {
        log(`  postgres connections (${r.waits.samples} samples): ` + Object.entries(r.waits.top).map(([k, v]) => `${k} ${pct(v)}`).join(", "));
      }
      log(`  verify: ${r.verify}`);
    }
  }
  return runs;
}

// ---- raw stores ---------------------------------------------------------------

interface RawRun extends Contention {
  readonly perSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

async function rawPhase(pgUrl: string, dir: string): Promise<Record<string, RawRun[]>> {
  const pgRuns = [
    ...S.rawPgConnections.map((n) => ({ connections: n, payers: 1, name: `${RAW_PG}, ${n} connections, one payer` })),
    ...S.rawPgSpread.map((n) => ({ connections: n, payers: n, name: `${RAW_PG}, ${n} connections, a payer per connection` })),
  ];
  const results: Record<string, RawRun[]> = {};
  for (let round = 1; round <= S.repeat; round++) {
    for (const c of pgRuns) {
      const meter = new PressureMeter();
      const child = spawnTs("raw-pg", "bench/raw-pg.ts", [
        "--url", pgUrl,
        "--schema", `raw_${c.connections}_${c.payers}_${round}`,
        "--connections", String(c.connections),
        "--payers", String(c.payers),
        "--duration", String(S.rawDuration),
      ]);
      const r = await runJsonChild<RawPgResult>(child, (S.rawDuration + 60) * 1000);
      const run = { perSec: r.perSec, p50Ms: r.p50Ms, p99Ms: r.p99Ms, ...contention(meter) };
      (results[c.name] ??= []).push(run);
      log(
        `${c.name} ${round}/${S.repeat}: ${fmt(r.perSec)} transfers/s  p50 ${r.p50Ms.toFixed(1)} ms  ` +
          `p99 ${r.p99Ms.toFixed(1)} ms  CPU stall ${pct(run.cpuStall)}  I/O stall ${pct(run.ioStall)}`,
      );
    }
    for (const batch of S.rawSqliteBatches) {
      const db = join(dir, `raw-${batch}-${round}.db`);
      const meter = new PressureMeter();
      const child = spawnTs("raw-sqlite", "bench/raw-sqlite.ts", ["--db", db, "--batch", String(batch), "--duration", String(S.rawDuration)]);
      const r = await runJsonChild<RawResult>(child, (S.rawDuration + 60) * 1000);
      const run = { perSec: r.perSec, p50Ms: Number.NaN, p99Ms: Number.NaN, ...contention(meter) };
      (results[`${RAW_SQLITE}, ${batch} transfers per commit`] ??= []).push(run);
      for (const suffix of ["", "-wal", "-shm"]) rmSync(db + suffix, { force: true });
      log(`raw SQLite ${round}/${S.repeat}: ${String(batch).padStart(3)} transfers/commit: ${fmt(r.perSec)} transfers/s  CPU stall ${pct(run.cpuStall)}`);
    }
  }
  return results;
}

// ---- report -------------------------------------------------------------------

interface StoresResults {
  readonly machine: string;
  readonly postgres: string;
  readonly startedAt: string;
  readonly conditions: readonly string[];
  readonly settings: Omit<typeof S, "skip">;
  readonly getBalance?: Record<string, GetBalanceRun[]>;
  readonly postTransfer?: Record<string, PostRun[]>;
  readonly raw?: Record<string, RawRun[]>;
}

const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(x < 10 ? 2 : 1) : "n/a");
const span = (xs: number[]) => (xs.length > 1 ? `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}` : "");

function render(r: StoresResults): { text: string; failed: boolean } {
  let failed = false;
  const out: string[] = [`machine: ${r.machine}`, r.postgres, ...r.conditions, ""];
  const med = <T>(rs: readonly T[] | undefined, f: (x: T) => number) => median((rs ?? []).map(f));

  if (r.postTransfer) {
    const runs = r.postTransfer;
    const base = med(runs[SQLITE], (x) => x.perSec);
    out.push(
      `PostTransfer: ${S.postClients} gRPC clients (one HTTP/2 connection, one call in flight each; split evenly across replicas), ` +
        `unique idempotency keys, ${S.postDuration} s per run, median of ${S.repeat} interleaved runs; ` +
        `SQLite WAL synchronous=FULL; PostgreSQL --pg-pool-size ${S.pgPool} per replica`,
      "",
      table(
        ["deployment", "transfers/s", "range", "p50 ms", "p99 ms", "Tally CPU", "postgres CPU", "client CPU", "transfers/CPU-s", "÷ SQLite", "CPU stall", "I/O stall"],
        Object.entries(runs).map(([name, rs]) => {
          const bad = rs.some((x) => Object.keys(x.errors).length > 0 || x.unexpected > 0 || !x.verified);
          if (bad) failed = true;
          return [
            name + (bad ? " (FAILED CHECKS)" : ""),
            fmt(med(rs, (x) => x.perSec)),
            span(rs.map((x) => x.perSec)),
            ms(med(rs, (x) => x.p50Ms)),
            ms(med(rs, (x) => x.p99Ms)),
            pct(med(rs, (x) => x.tallyCpu)),
            rs.some((x) => x.pgCpu > 0) ? pct(med(rs, (x) => x.pgCpu)) : "–",
            pct(med(rs, (x) => x.clientCpu)),
            // Work per CPU-second of the whole server side (Tally and PostgreSQL), steadier than req/s on a busy machine.
            fmt(med(rs, (x) => x.perSec / (x.tallyCpu + x.pgCpu))),
            ratio(med(rs, (x) => x.perSec), base),
            pct(med(rs, (x) => x.cpuStall)),
            pct(med(rs, (x) => x.ioStall)),
          ];
        }),
      ),
      "",
      ...POST_LOADS.map((load) => {
        const one = med(runs[postName({ name: PG1 }, load)], (x) => x.perSec);
        const two = med(runs[postName({ name: PG2 }, load)], (x) => x.perSec);
        return `PostgreSQL, ${load}: two replicas ÷ one replica = ${ratio(two, one)}`;
      }),
      "",
      "Verify after every PostTransfer run (AdminService.Verify through the API):",
      ...Object.entries(runs).flatMap(([name, rs]) => rs.map((x, i) => `- ${name}, run ${i + 1}: ${x.verify}`)),
      "",
    );
    const pgRows = Object.entries(runs).filter(([, rs]) => rs.some((x) => x.waits));
    if (pgRows.length) {
      out.push(
        "Where PostgreSQL's connections were during PostTransfer (share of pg_stat_activity samples of Tally's pool connections, every 50 ms):",
        "",
        table(
          ["deployment", ...WAIT_BUCKETS],
          pgRows.map(([name, rs]) => [name, ...WAIT_BUCKETS.map((b) => pct(med(rs, (x) => x.waits?.buckets[b] ?? Number.NaN)))]),
        ),
        "",
      );
    }
  }

  if (r.getBalance) {
    const runs = r.getBalance;
    const base = med(runs[SQLITE], (x) => x.reqPerSec);
    out.push(
      `GetBalance over gRPC: h2load -c ${S.connections} -m ${S.streams} in total (with two replicas: two h2load processes at once, ` +
        `-c ${S.connections / 2} each, req/s summed), ${S.duration} s per run, median of ${S.repeat} interleaved runs`,
      "",
      table(
        ["deployment", "req/s", "range", "p50 ms", "p99 ms", "Tally CPU", "postgres CPU", "req/CPU-s", "÷ SQLite", "CPU stall"],
        Object.entries(runs).map(([name, rs]) => {
          const bad = rs.some((x) => x.problem);
          if (bad) failed = true;
          return [
            name + (bad ? " (FAILED CHECKS)" : ""),
            fmt(med(rs, (x) => x.reqPerSec)),
            span(rs.map((x) => x.reqPerSec)),
            ms(med(rs, (x) => x.p50Ms)),
            ms(med(rs, (x) => x.p99Ms)),
            pct(med(rs, (x) => x.tallyCpu)),
            rs.some((x) => x.pgCpu > 0) ? pct(med(rs, (x) => x.pgCpu)) : "–",
            fmt(med(rs, (x) => x.reqPerSec / (x.tallyCpu + x.pgCpu))),
            ratio(med(rs, (x) => x.reqPerSec), base),
            pct(med(rs, (x) => x.cpuStall)),
          ];
        }),
      ),
      "",
    );
  }

  if (r.raw) {
    const post = r.postTransfer;
    // Each raw run is compared with the Tally deployment that has the same store and as many connections.
    const compareWith = (name: string): string | undefined => {
      if (name.startsWith(RAW_SQLITE)) return SQLITE;
      const n = Number(/(\d+) connections/.exec(name)?.[1]);
      // The hot-payer load against raw runs on one payer; the spread load against raw runs without a hot row.
      const load: PostLoad | undefined = name.endsWith("one payer") ? "one payer" : name.endsWith("a payer per connection") ? "spread over 100 accounts" : undefined;
      if (load === undefined) return undefined;
      if (n === S.pgPool) return postName({ name: PG1 }, load);
      if (n === 2 * S.pgPool) return postName({ name: PG2 }, load);
      return undefined;
    };
    out.push(
      `The stores' ceilings: the rows of one transfer (2 entries, 2 balance upserts, transfer, idempotency row) with raw pg / better-sqlite3, ` +
        `no RPC, no reads, no locks but the rows' own, ${S.rawDuration} s per run, median of ${S.repeat} runs`,
      "",
      table(
        ["what", "transfers/s", "range", "p50 ms", "p99 ms", "compared with", "Tally ÷ this", "CPU stall", "I/O stall"],
        Object.entries(r.raw).map(([name, rs]) => {
          const other = compareWith(name);
          const tally = other && post?.[other] ? med(post[other], (x) => x.perSec) : Number.NaN;
          return [
            name,
            fmt(med(rs, (x) => x.perSec)),
            span(rs.map((x) => x.perSec)),
            ms(med(rs, (x) => x.p50Ms)),
            ms(med(rs, (x) => x.p99Ms)),
            other ?? "",
            ratio(tally, med(rs, (x) => x.perSec)),
            pct(med(rs, (x) => x.cpuStall)),
            pct(med(rs, (x) => x.ioStall)),
          ];
        }),
      ),
      "",
    );
  }
  return { text: out.join("\n"), failed };
}

// ---- main -------------------------------------------------------------------

async function main(): Promise<number> {
  if (!h2loadAvailable()) {
    process.stderr.write("bench:stores: h2load not found. Install it with:\n\n  apt-get update && apt-get install -y nghttp2-client\n\n");
    return 1;
  }
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const whole = new PressureMeter();
  const loadBefore = loadAverages();
  const machine = `${machineLine()}; ${h2loadVersion()}; temp files on ${filesystemOf(tmpdir())}`;
  log(`machine: ${machine}`);

  const admin = await connectPg(S.pgAdminUrl).catch((e: unknown) => {
    throw new Error(`PostgreSQL is not reachable at ${S.pgAdminUrl} (set BENCH_PG_URL): ${e instanceof Error ? e.message : String(e)}`);
  });
  const settings = await pgSettingsLine(admin);
  const postgres = `${settings.line}; data on ${settings.dataDirectory ? filesystemOf(settings.dataDirectory) : "?"}; on this machine (it shares the CPUs with Tally and the load generators)`;
  log(postgres);
  const database = `tally_bench_${Date.now()}_${process.pid}`;
  await admin.query(`CREATE DATABASE ${database}`);
  const dbUrl = new URL(S.pgAdminUrl);
  dbUrl.pathname = `/${database}`;
  const tallyUrl = new URL(dbUrl);
  tallyUrl.searchParams.set("schema", "tally");
  const dir = mkdtempSync(join(tmpdir(), "tally-bench-stores-"));
  let watchClient: pg.Client | undefined;
  let results: StoresResults | undefined;
  try {
    watchClient = await connectPg(dbUrl.toString());
    const watch: PgWatch = { client: watchClient, database };

    // SQLite: the same fixture bench/run.ts uses. PostgreSQL: the same data, made through the API.
    const sqliteFx = await prepareFixture(dir, S.postClients);
    const pgArgs = ["--database", tallyUrl.toString(), "--pg-pool-size", String(S.pgPool)];
    const [sqlite, pgA] = await Promise.all([
      startTally("tally-sqlite", ["--db", sqliteFx.dbPath, "--durability", "full"]),
      startTally("tally-pg-a", pgArgs),
    ]);
    const pgFx = await prepareFixtureViaApi(pgA.url, bootstrapKeyOf(pgA.child.output()), S.postClients);
    // The second replica starts on the migrated, populated schema, as a scaled-out deployment would.
    const pgB = await startTally("tally-pg-b", pgArgs);
    log(`servers: SQLite ${sqlite.url}, PostgreSQL replicas ${pgA.url} and ${pgB.url} on ${database}, schema tally`);
    allServers = [sqlite.child, pgA.child, pgB.child];
    const deployments: Deployment[] = [
      { name: SQLITE, store: "sqlite", servers: [sqlite.child], urls: [sqlite.url], fx: sqliteFx },
      // The second replica keeps running, idle, while one replica is measured; it only receives the balance feed's notifications.
      { name: PG1, store: "postgres", servers: [pgA.child], urls: [pgA.url], fx: pgFx },
      { name: PG2, store: "postgres", servers: [pgA.child, pgB.child], urls: [pgA.url, pgB.url], fx: pgFx },
    ];

    const getBalance = S.skip.has("getbalance") ? undefined : await getBalancePhase(deployments, dir, watch);
    const postTransfer = S.skip.has("post") ? undefined : await postTransferPhase(deployments, watch);
    await Promise.all([sqlite.child.stop(), pgA.child.stop(), pgB.child.stop()]);
    const raw = S.skip.has("raw") ? undefined : await rawPhase(dbUrl.toString(), dir);

    const seconds = (performance.now() - started) / 1000;
    const p = whole.read();
    const { skip: _skip, ...settingsOut } = S;
    results = {
      machine,
      postgres,
      startedAt,
      conditions: [
        `run of ${startedAt}: took ${seconds.toFixed(0)} s; load average before ${loadBefore}, after ${loadAverages()}; ` +
          `some task waited for a CPU ${pct(p.cpu)} and for I/O ${pct(p.io)} of the time (Linux PSI)`,
      ],
      settings: settingsOut,
      ...(getBalance ? { getBalance } : {}),
      ...(postTransfer ? { postTransfer } : {}),
      ...(raw ? { raw } : {}),
    };
  } finally {
    await stopAllChildren();
    await watchClient?.end().catch(() => {});
    // FORCE: a server that died without closing its pool must not keep the scratch database alive.
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch((e: unknown) => log(`could not drop ${database}: ${String(e)}`));
    await admin.end().catch(() => {});
    if (!S.keep) rmSync(dir, { recursive: true, force: true });
  }
  if (!results) return 1;
  if (S.json) writeFileSync(S.json, JSON.stringify(results, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2) + "\n");
  const report = render(results);
  process.stdout.write(`Tally on SQLite and PostgreSQL (npm run bench:stores)\n${report.text}`);
  return report.failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (e: unknown) => {
    process.stderr.write(`bench:stores: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    await stopAllChildren();
    process.exit(1);
  },
);
