/**
 * `npm run bench`: Tally's first benchmark, in one run.
 *
 * 1. GetBalance over gRPC, Connect binary and Connect JSON (all HTTP/2 h2c)
 *    against a real `tally serve` child process on a temporary SQLite file,
 *    loaded by h2load (a separate process), next to baselines measured with
 *    the same h2load settings: (a) the same logic on @grpc/grpc-js, the same
 *    handlers on stock connect-node (a diagnostic), and (b) a bare node:http2
 *    server answering a constant response (the ceiling).
 * 2. PostTransfer with 64 concurrent gRPC clients (bench/post-load.ts, a
 *    separate process) next to raw better-sqlite3 inserts of the same rows.
 *
 * Every measurement is repeated BENCH_REPEAT times, interleaved across
 * targets so that a slow minute on a shared machine hits all of them alike,
 * and the tables report medians. The knobs are listed in BENCHMARKS.md.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ledger } from "../src/domain/ledger.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import type { Child } from "./children.js";
import { cpuSeconds, runJsonChild, spawnTs, stopAllChildren } from "./children.js";
import { prepareFixture, writeGetBalanceBodies } from "./fixture.js";
import type { Fixture } from "./fixture.js";
import type { H2loadResult } from "./h2load.js";
import { h2loadAvailable, h2loadVersion, runH2load } from "./h2load.js";
import { PressureMeter, filesystemOf, loadAverages, machineLine } from "./machine.js";
import type { PostLoadResult } from "./post-load.js";
import { probe, probeH1, requireSuccess } from "./probe.js";
import type { RawResult } from "./raw-sqlite.js";
import type { BenchResults, Contention, GetBalanceRun, PostTransferRun, RawRun } from "./report.js";
import { CEILING, GRPC_JS, GRPC_JS_CONSTANT, POST_SINGLE, REST_BASE, pct, postBatchCase, rawKey, renderReport } from "./report.js";
import { envNumber, fmt } from "./stats.js";

// ---- settings -------------------------------------------------------------

const PARTS = ["getbalance", "stock", "rest", "post", "raw"] as const;

/** Every knob, from the environment; the defaults keep a whole run under about three minutes. */
const S = {
  duration: envNumber("BENCH_DURATION", 5, 1, 600),
  warmup: envNumber("BENCH_WARMUP", 2, 0, 600),
  repeat: envNumber("BENCH_REPEAT", 3, 1, 20),
  connections: envNumber("BENCH_CONNECTIONS", 4, 1, 1000),
  streams: envNumber("BENCH_STREAMS", 16, 1, 1000),
  postDuration: envNumber("BENCH_POST_DURATION", 5, 1, 600),
  postWarmup: envNumber("BENCH_POST_WARMUP", 1, 0, 600),
  postClients: envNumber("BENCH_POST_CLIENTS", 64, 1, 1000),
  postMax: envNumber("BENCH_POST_MAX", 2_000_000, 1, 100_000_000),
  /** PostTransfer load generator: lean (raw HTTP/2 frames, the default) or connect (connect-node's client). */
  postClient: process.env.BENCH_POST_CLIENT === "connect" ? "connect" : "lean",
  /** The PostTransfers case: this many clients, each sending calls of `postBatch` transfers (0 clients: skipped). */
  postBatchClients: envNumber("BENCH_POST_BATCH_CLIENTS", 8, 0, 1000),
  postBatch: envNumber("BENCH_POST_BATCH", 100, 2, 1000),
  /** Schemas the raw baseline writes: Tally's own tables, and a minimal one with the same rows. */
  rawSchemas: (process.env.BENCH_RAW_SCHEMAS ?? "tally,minimal").split(",").map((x) => {
    if (x !== "tally" && x !== "minimal") throw new Error(`BENCH_RAW_SCHEMAS: "${x}" is neither tally nor minimal`);
    return x;
  }),
  rawDuration: envNumber("BENCH_RAW_DURATION", 2, 1, 600),
  rawBatches: (process.env.BENCH_RAW_BATCHES ?? "1,64,512").split(",").map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_RAW_BATCHES must be a list of positive integers, got "${s}"`);
    return n;
  }),
  tallyLog: process.env.BENCH_TALLY_LOG ?? "error",
  tallyDurability: process.env.BENCH_TALLY_DURABILITY ?? "full",
  cpuProf: process.env.BENCH_CPU_PROF,
  skip: new Set((process.env.BENCH_SKIP ?? "").split(",").filter(Boolean)),
  json: process.env.BENCH_JSON,
  keep: process.env.BENCH_KEEP === "1",
};
if (!["info", "error", "silent"].includes(S.tallyLog)) throw new Error("BENCH_TALLY_LOG must be info, error or silent");
if (!["full", "normal"].includes(S.tallyDurability)) throw new Error("BENCH_TALLY_DURABILITY must be full or normal");
for (const s of S.skip) {
  if (!(PARTS as readonly string[]).includes(s)) throw new Error(`BENCH_SKIP: unknown part "${s}" (one of ${PARTS.join(", ")})`);
}

const GET_BALANCE_PATH = "/tally.ledger.v1.LedgerService/GetBalance";
/** Server start-up (tsx compiles on first load) is slow on a busy machine; this bounds it. */
const START_TIMEOUT_MS = 60_000;

// ---- helpers --------------------------------------------------------------

function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

function contention(meter: PressureMeter): Contention {
  const p = meter.read();
  return { cpuStall: p.cpu, ioStall: p.io };
}

async function startServer(name: string, script: string, args: string[], nodeArgs: string[] = []): Promise<{ child: Child; port: number }> {
  const child = spawnTs(name, script, args, { nodeArgs });
  const m = await child.waitFor(/READY port=(\d+)|listening on http:\/\/[^:\s]+:(\d+)/, START_TIMEOUT_MS);
  return { child, port: Number(m[1] ?? m[2]) };
}

/** Node flags that write a CPU profile of the Tally server into BENCH_CPU_PROF/<sub> when it exits. */
function profArgs(sub: string): string[] {
  if (!S.cpuProf) return [];
  const dir = join(S.cpuProf, sub);
  mkdirSync(dir, { recursive: true });
  return ["--cpu-prof", `--cpu-prof-dir=${dir}`];
}

/** `tally serve` exactly as an operator starts it, on the fixture's database. */
function startTallyServer(fx: Fixture, profileSub: string) {
  return startServer("tally", "src/main.ts", ["serve", "--db", fx.dbPath, "--port", "0", "--log-level", S.tallyLog, "--durability", S.tallyDurability], profArgs(profileSub));
}

// ---- GetBalance -------------------------------------------------------------

/** One h2load target. */
interface Target {
  readonly name: string;
  readonly url: string;
  /** The request body; undefined for a GET. */
  readonly bodyFile: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly protocol: "grpc" | "connect";
  /**
   * Loaded over HTTP/1.1 (h2load --h1) instead of h2c: as many connections as
   * the h2c targets have calls in flight, one request at a time on each (no
   * pipelining, as browsers and HTTP/1.1 client libraries do).
   */
  readonly h1?: boolean;
  /** The process whose CPU time is measured. */
  readonly server: Child;
  /** Response DATA bytes of one successful call, from the probe. */
  responseBytes: number;
}


/** Checks that h2load saw only successful answers of the expected size. */
function checkRun(t: Target, h2: H2loadResult): string | undefined {
  if (h2.succeeded === 0) return "no request succeeded";
  if (h2.failed + h2.errored + h2.timeout > 0) return `${h2.failed} failed, ${h2.errored} errored, ${h2.timeout} timed out`;
  if (h2.statusOther > 0) return `${h2.statusOther} non-2xx responses`;
  // A gRPC error is a 200 with no message (trailers only): it would show as missing DATA bytes.
  // h2load also counts the bytes of calls still in flight when the time is up, hence the upper bound.
  const min = h2.succeeded * t.responseBytes * 0.99;
  const max = (h2.succeeded + S.connections * S.streams) * t.responseBytes * 1.01;
  if (h2.dataBytes < min || h2.dataBytes > max) {
    const perRequest = h2.dataBytes / h2.succeeded;
    return `${perRequest.toFixed(1)} response bytes per request, expected ${t.responseBytes}: some calls failed`;
  }
  return undefined;
}

/** h2load's -c and -m for a target: the same calls in flight on every target. */
function load(t: Target): { clients: number; streams: number } {
  return t.h1 ? { clients: S.connections * S.streams, streams: 1 } : { clients: S.connections, streams: S.streams };
}

async function measureTarget(t: Target, dir: string): Promise<GetBalanceRun> {
  const meter = new PressureMeter();
  const cpu0 = cpuSeconds(t.server.proc.pid);
  const t0 = performance.now();
  const h2 = await runH2load({
    url: t.url,
    bodyFile: t.bodyFile,
    h1: t.h1,
    headers: t.headers,
    ...load(t),
    durationS: S.duration,
    logFile: join(dir, "h2load.log"),
  });
  const wall = (performance.now() - t0) / 1000;
  const serverCpu = (cpuSeconds(t.server.proc.pid) - cpu0) / wall;
  return {
    reqPerSec: h2.reqPerSec,
    p50Ms: h2.p50Ms,
    p99Ms: h2.p99Ms,
    serverCpu,
    problem: checkRun(t, h2),
    ...contention(meter),
  };
}

const TALLY_GRPC = "Tally, gRPC";

/**
 * The REST rows: the same balance read over HTTP/1.1, as native Connect JSON
 * and as two dialects' GET routes, all with the same account-scoped Tally
 * key, so what differs is only the protocol path (transcoding and the
 * dialect's JSON profile against Connect's codec).
 */
function restTargets(fx: Fixture, connectJsonBody: string, base: string, server: Child): Target[] {
  const auth = { authorization: `Bearer ${fx.readerKey}` };
  const common = { protocol: "connect" as const, server, responseBytes: 0, h1: true };
  return [
    {
      ...common,
      name: REST_BASE,
      url: `${base}${GET_BALANCE_PATH}`,
      bodyFile: connectJsonBody,
      headers: { "content-type": "application/json", "connect-protocol-version": "1", ...auth },
    },
    {
      ...common,
      name: "Tally, Connect JSON GET (HTTP/1.1)",
      url: `${base}${GET_BALANCE_PATH}?${new URLSearchParams({ connect: "v1", encoding: "json", message: readFileSync(connectJsonBody, "utf8") })}`,
      bodyFile: undefined,
      headers: auth,
    },
    { ...common, name: "Triport GET /v1/balance (HTTP/1.1)", url: `${base}/v1/balance`, bodyFile: undefined, headers: auth },
    { ...common, name: "3PLGuys GET /v0/balance (HTTP/1.1)", url: `${base}/v0/balance`, bodyFile: undefined, headers: auth },
  ];
}

/** The REST answers carry the seeded balance (123.456789 USD) in their own unit: micro-USD (Triport), whole cents (3PLGuys), minor units (Connect). */
function requireBalance(name: string, body: string): void {
  const expected = name.startsWith("Triport") ? '"amount_micro":123456789,' : name.startsWith("3PLGuys") ? '"balance":12345,' : '"posted":"123456789"';
  if (!body.includes(expected)) throw new Error(`${name}: probe answered ${body.slice(0, 300)}, expected it to contain ${expected}`);
}

async function getBalancePhase(fx: Fixture, dir: string): Promise<NonNullable<BenchResults["getBalance"]>> {
  const bodies = writeGetBalanceBodies(dir, fx.readAccount, fx.asset);
  const auth = `Bearer ${fx.adminKey}`;
  const grpcHeaders = { "content-type": "application/grpc", te: "trailers", authorization: auth };
  const connectBinaryHeaders = { "content-type": "application/proto", "connect-protocol-version": "1", authorization: auth };
  const connectJsonHeaders = { "content-type": "application/json", "connect-protocol-version": "1", authorization: auth };

  const tally = await startTallyServer(fx, "getbalance");
  const tallyUrl = `http://127.0.0.1:${tally.port}${GET_BALANCE_PATH}`;
  // The ceiling answers with the exact bytes Tally answers with, so both move the same data.
  const tallyAnswer = await probe(tallyUrl, grpcHeaders, readFileSync(bodies.grpc));
  requireSuccess(TALLY_GRPC, "grpc", tallyAnswer);
  const responseFile = join(dir, "get-balance-response.grpc");
  writeFileSync(responseFile, tallyAnswer.body);

  const [grpcjs, grpcjsConstant, stock, ceiling] = await Promise.all([
    startServer("grpc-js", "bench/grpcjs-server.ts", ["--db", fx.dbPath]),
    startServer("grpc-js-constant", "bench/grpcjs-server.ts", ["--db", fx.dbPath, "--constant", `${fx.readAccount}:${fx.asset}`]),
    S.skip.has("stock") ? Promise.resolve(undefined) : startServer("connect-node", "bench/connect-stock-server.ts", ["--db", fx.dbPath]),
    startServer("ceiling", "bench/ceiling-server.ts", ["--response", responseFile]),
  ]);
  const at = (port: number) => `http://127.0.0.1:${port}${GET_BALANCE_PATH}`;
  const grpcTarget = (name: string, url: string, server: Child): Target => ({
    name,
    url,
    bodyFile: bodies.grpc,
    headers: grpcHeaders,
    protocol: "grpc",
    server,
    responseBytes: 0,
  });
  const targets: Target[] = [
    grpcTarget(TALLY_GRPC, tallyUrl, tally.child),
    { ...grpcTarget("Tally, Connect binary", tallyUrl, tally.child), bodyFile: bodies.connectBinary, headers: connectBinaryHeaders, protocol: "connect" },
    { ...grpcTarget("Tally, Connect JSON", tallyUrl, tally.child), bodyFile: bodies.connectJson, headers: connectJsonHeaders, protocol: "connect" },
    grpcTarget(GRPC_JS, at(grpcjs.port), grpcjs.child),
    grpcTarget(GRPC_JS_CONSTANT, at(grpcjsConstant.port), grpcjsConstant.child),
    ...(stock ? [grpcTarget("stock connect-node, gRPC", at(stock.port), stock.child)] : []),
    grpcTarget(CEILING, at(ceiling.port), ceiling.child),
    ...(S.skip.has("rest") ? [] : restTargets(fx, bodies.connectJson, `http://127.0.0.1:${tally.port}`, tally.child)),
  ];
  for (const t of targets) {
    const body = t.bodyFile === undefined ? undefined : readFileSync(t.bodyFile);
    const r = t.h1 ? await probeH1(t.url, t.headers, body) : await probe(t.url, t.headers, body!);
    requireSuccess(t.name, t.protocol, r);
    if (t.h1) requireBalance(t.name, r.body.toString("utf8"));
    t.responseBytes = r.body.length;
  }

  const runs: Record<string, GetBalanceRun[]> = Object.fromEntries(targets.map((t) => [t.name, []]));
  if (S.warmup > 0) {
    // Once per target: the JIT and the SQLite page cache only need warming once per process.
    log(`GetBalance: warming up ${targets.length} targets, ${S.warmup} s each`);
    for (const t of targets) {
      await runH2load({ url: t.url, bodyFile: t.bodyFile, h1: t.h1, headers: t.headers, ...load(t), durationS: S.warmup });
    }
  }
  for (let round = 1; round <= S.repeat; round++) {
    for (const t of targets) {
      const run = await measureTarget(t, dir);
      runs[t.name]!.push(run);
      log(
        `GetBalance ${round}/${S.repeat}: ${t.name.padEnd(28)} ${fmt(run.reqPerSec).padStart(7)} req/s  ` +
          `p50 ${run.p50Ms.toFixed(2)} ms  p99 ${run.p99Ms.toFixed(2)} ms  server CPU ${pct(run.serverCpu)}  ` +
          `CPU stall ${pct(run.cpuStall)}` +
          (run.problem ? `  PROBLEM: ${run.problem}` : ""),
      );
    }
  }
  await Promise.all([tally.child, grpcjs.child, grpcjsConstant.child, stock?.child, ceiling.child].map((c) => c?.stop()));
  return { targets: targets.map((t) => t.name), runs };
}

// ---- PostTransfer -----------------------------------------------------------

async function postTransferPhase(fx: Fixture): Promise<NonNullable<BenchResults["postTransfer"]>> {
  const fixtureBytes = fileSizes(fx.dbPath);
  const tally = await startTallyServer(fx, "post");
  const url = `http://127.0.0.1:${tally.port}`;
  const runs: PostTransferRun[] = [];
  let acknowledged = 0;
  const cases: { name: string; clients: number; batch: number }[] = [
    { name: POST_SINGLE, clients: S.postClients, batch: 1 },
    ...(S.postBatchClients > 0 ? [{ name: postBatchCase(S.postBatch), clients: S.postBatchClients, batch: S.postBatch }] : []),
  ];
  for (let round = 1; round <= S.repeat; round++) {
    for (const c of cases) {
      const child = spawnTs("post-load", "bench/post-load.ts", [
        "--url", url,
        "--key", fx.adminKey,
        "--payer", fx.payer,
        "--payees", fx.payees.join(","),
        "--asset", fx.asset,
        "--concurrency", String(c.clients),
        "--batch", String(c.batch),
        "--duration", String(S.postDuration),
        "--warmup", String(S.postWarmup),
        "--max", String(S.postMax),
        "--run-id", `bench-${Date.now()}-${round}-${c.batch}`,
        "--client", S.postClient,
      ]);
      await child.waitFor(/^WINDOW start/, START_TIMEOUT_MS + S.postWarmup * 1000);
      const meter = new PressureMeter();
      const s0 = cpuSeconds(tally.child.proc.pid);
      const c0 = cpuSeconds(child.proc.pid);
      const t0 = performance.now();
      await child.waitFor(/^WINDOW end/, (S.postDuration + 30) * 1000);
      const wall = (performance.now() - t0) / 1000;
      const serverCpu = (cpuSeconds(tally.child.proc.pid) - s0) / wall;
      const clientCpu = (cpuSeconds(child.proc.pid) - c0) / wall;
      const stall = contention(meter);
      const r = await runJsonChild<PostLoadResult>(child, 60_000);
      acknowledged += r.okTotal;
      runs.push({ case: c.name, perSec: r.perSec, p50Ms: r.p50Ms, p99Ms: r.p99Ms, errors: r.errors, unexpected: r.unexpected, serverCpu, clientCpu, ...stall });
      const errors = Object.entries(r.errors).map(([k, v]) => `${k}: ${v}`).join(", ");
      log(
        `${c.name} ${round}/${S.repeat}: ${fmt(r.perSec)} transfers/s  p50 ${fmt(r.p50Ms, 1)} ms  p99 ${fmt(r.p99Ms, 1)} ms  ` +
          `server CPU ${pct(serverCpu)}  client CPU ${pct(clientCpu)}  CPU stall ${pct(stall.cpuStall)}  I/O stall ${pct(stall.ioStall)}` +
          (errors ? `  ERRORS: ${errors}` : "") +
          (r.unexpected ? `  UNEXPECTED ANSWERS: ${r.unexpected}` : ""),
      );
    }
  }
  await tally.child.stop();
  // Measured before anything reopens the file: the server's last close checkpointed the WAL into it.
  const fileBytes = fileSizes(fx.dbPath);
  // Every acknowledged transfer must be in the journal, and the books must balance.
  const store = SqliteStore.open({ path: fx.dbPath });
  try {
    const report = await new Ledger({ store }).verify(fx.tenantId);
    const transfers = Number(report.entriesChecked) / 2 - fx.fundingTransfers;
    const verified = report.ok && transfers >= acknowledged;
    return {
      runs,
      verified,
      bytesPerTransfer: (fileBytes - fixtureBytes) / transfers,
      verify: [
        `${verified ? "ok" : "FAILED"}: tally verify found ${report.discrepancies.length} discrepancies; ` +
        `${fmt(transfers)} transfers in the journal, ${fmt(acknowledged)} acknowledged`,
      ],
    };
  } finally {
    await store.close();
  }
}

async function rawPhase(dir: string): Promise<Record<string, RawRun[]>> {
  const results: Record<string, RawRun[]> = {};
  for (let round = 1; round <= S.repeat; round++) {
    for (const schema of S.rawSchemas) {
      for (const batch of S.rawBatches) {
        const db = join(dir, `raw-${schema}-${batch}-${round}.db`);
        const meter = new PressureMeter();
        const child = spawnTs("raw-sqlite", "bench/raw-sqlite.ts", ["--db", db, "--batch", String(batch), "--duration", String(S.rawDuration), "--schema", schema]);
        const r = await runJsonChild<RawResult>(child, (S.rawDuration + 60) * 1000);
        const stall = contention(meter);
        (results[rawKey(schema, batch)] ??= []).push({ batch, schema, perSec: r.perSec, commitsPerSec: r.commitsPerSec, bytesPerTransfer: r.bytesPerTransfer, ...stall });
        for (const suffix of ["", "-wal", "-shm"]) rmSync(db + suffix, { force: true });
        log(
          `raw SQLite (${schema} schema) ${round}/${S.repeat}: ${String(batch).padStart(3)} transfers/commit: ${fmt(r.perSec)} transfers/s, ` +
            `${fmt(r.commitsPerSec)} commits/s, ${r.bytesPerTransfer.toFixed(0)} bytes/transfer  CPU stall ${pct(stall.cpuStall)}  I/O stall ${pct(stall.ioStall)}`,
        );
      }
    }
  }
  return results;
}

/** The size of a database file with its WAL, in bytes. */
function fileSizes(path: string): number {
  let n = 0;
  for (const suffix of ["", "-wal"]) n += existsSync(path + suffix) ? statSync(path + suffix).size : 0;
  return n;
}

// ---- main -------------------------------------------------------------------

async function main(): Promise<number> {
  if (!h2loadAvailable()) {
    process.stderr.write("bench: h2load not found. Install it with:\n\n  apt-get update && apt-get install -y nghttp2-client\n\n");
    return 1;
  }
  const dir = mkdtempSync(join(tmpdir(), "tally-bench-"));
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const whole = new PressureMeter();
  const loadBefore = loadAverages();
  const machine = `${machineLine()}; ${h2loadVersion()}; temp files on ${filesystemOf(tmpdir())}`;
  log(`machine: ${machine}`);
  log(`load average before the run: ${loadBefore}`);
  let getBalance: BenchResults["getBalance"];
  let postTransfer: BenchResults["postTransfer"];
  let raw: BenchResults["raw"];
  try {
    const fx = await prepareFixture(dir, S.postClients);
    if (!S.skip.has("getbalance")) getBalance = await getBalancePhase(fx, dir);
    if (!S.skip.has("post")) postTransfer = await postTransferPhase(fx);
    if (!S.skip.has("raw")) raw = await rawPhase(dir);
  } finally {
    await stopAllChildren();
    if (!S.keep) rmSync(dir, { recursive: true, force: true });
  }
  const seconds = (performance.now() - started) / 1000;
  const p = whole.read();
  const results: BenchResults = {
    machine,
    startedAt,
    conditions: [
      `run of ${startedAt}: took ${seconds.toFixed(0)} s; load average before ${loadBefore}, after ${loadAverages()}; ` +
        `some task waited for a CPU ${pct(p.cpu)} and for I/O ${pct(p.io)} of the time (Linux PSI)`,
    ],
    settings: {
      duration: S.duration,
      repeat: S.repeat,
      connections: S.connections,
      streams: S.streams,
      postDuration: S.postDuration,
      postClients: S.postClients,
      postClient: S.postClient,
      postBatchClients: S.postBatchClients,
      postBatch: S.postBatch,
      rawDuration: S.rawDuration,
      tallyLog: S.tallyLog,
      tallyDurability: S.tallyDurability,
    },
    ...(getBalance ? { getBalance } : {}),
    ...(postTransfer ? { postTransfer } : {}),
    ...(raw ? { raw } : {}),
  };
  if (S.json) writeFileSync(S.json, JSON.stringify(results, null, 2) + "\n");
  const report = renderReport(results, `median of ${S.repeat} interleaved runs`);
  process.stdout.write(`Tally benchmark (npm run bench)\n${report.text}`);
  return report.failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    await stopAllChildren();
    process.exit(1);
  },
);
