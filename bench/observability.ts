/**
 * `npm run bench:obs`: what observability costs GetBalance over gRPC, in one run.
 *
 * Tally servers (bench/observability-server.ts), one per setting, each on its own copy
 * of one fixture database, all pinned to core 0 (taskset); h2load pinned to
 * core 1. Settings: all off; request ids only; metrics only; request ids and
 * metrics (the `tally serve` defaults); those with tracing (spans
 * through the OpenTelemetry SDK's batch processor to an exporter that drops
 * them); and tracing with 1 call in 10 sampled. Each round loads every server once, in an order rotated each round
 * so that no setting always follows another; the report gives per setting
 * the median req/s and server CPU per call, and the median over rounds of
 * the ratio to all-off measured in the same round.
 *
 * Knobs: BENCH_OBS_DURATION (s, 10), BENCH_OBS_WARMUP (s, 3), BENCH_OBS_REPEAT
 * (5), BENCH_CONNECTIONS (4), BENCH_STREAMS (16), BENCH_OBS_SERVER_CPU ("0"),
 * BENCH_OBS_LOAD_CPU ("1"), BENCH_OBS_MODES (a subset of ids,metrics,on,tracing,sampled; all
 * by default), BENCH_CPU_PROF=dir (a CPU profile per server,
 * written when it stops), BENCH_JSON=file.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Child } from "./children.js";
import { cpuSeconds, scriptArgs, spawnChild, stopAllChildren } from "./children.js";
import { prepareFixture, writeGetBalanceBodies } from "./fixture.js";
import { h2loadAvailable, h2loadVersion, runH2load } from "./h2load.js";
import { PressureMeter, loadAverages, machineLine } from "./machine.js";
import { probe, requireSuccess } from "./probe.js";
import { envNumber, fmt, median } from "./stats.js";

const ALL_MODES = [
  { mode: "off", label: "all off" },
  { mode: "ids", label: "request ids" },
  { mode: "metrics", label: "metrics" },
  { mode: "on", label: "metrics + request ids" },
  { mode: "tracing", label: "metrics + request ids + tracing" },
  { mode: "sampled", label: "the same, 1 call in 10 sampled" },
] as const;
type Mode = (typeof ALL_MODES)[number]["mode"];
/** BENCH_OBS_MODES: a comma-separated subset (all off is always measured: it is the baseline). */
const MODES = ALL_MODES.filter(({ mode }) => mode === "off" || (process.env.BENCH_OBS_MODES ?? "ids,metrics,on,tracing,sampled").split(",").includes(mode));

const S = {
  duration: envNumber("BENCH_OBS_DURATION", 10, 1, 600),
  warmup: envNumber("BENCH_OBS_WARMUP", 3, 0, 600),
  repeat: envNumber("BENCH_OBS_REPEAT", 5, 1, 50),
  connections: envNumber("BENCH_CONNECTIONS", 4, 1, 1000),
  streams: envNumber("BENCH_STREAMS", 16, 1, 1000),
  serverCpu: process.env.BENCH_OBS_SERVER_CPU ?? "0",
  loadCpu: process.env.BENCH_OBS_LOAD_CPU ?? "1",
  cpuProf: process.env.BENCH_CPU_PROF,
  json: process.env.BENCH_JSON,
};

const PATH = "/tally.ledger.v1.LedgerService/GetBalance";

function log(line: string): void {
  process.stderr.write(`[bench:obs] ${line}\n`);
}

interface Server {
  readonly mode: Mode;
  readonly child: Child;
  readonly url: string;
}

async function startServer(mode: Mode, db: string): Promise<Server> {
  const prof = S.cpuProf === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${join(S.cpuProf, mode)}`];
  if (S.cpuProf !== undefined) mkdirSync(join(S.cpuProf, mode), { recursive: true });
  const child = spawnChild(`tally-${mode}`, "taskset", ["-c", S.serverCpu, process.execPath, ...prof, ...scriptArgs("bench/observability-server.ts"), "--db", db, "--mode", mode]);
  const m = await child.waitFor(/READY port=(\d+)/, 60_000);
  return { mode, child, url: `http://127.0.0.1:${m[1]}${PATH}` };
}

interface Run {
  readonly reqPerSec: number;
  /** Server CPU time per call, in µs. */
  readonly cpuUsPerCall: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly succeeded: number;
}

async function main(): Promise<number> {
  if (!h2loadAvailable()) {
    process.stderr.write("bench: h2load not found. Install it with:\n\n  apt-get update && apt-get install -y nghttp2-client\n\n");
    return 1;
  }
  const dir = mkdtempSync(join(tmpdir(), "tally-bench-obs-"));
  const machine = `${machineLine()}; ${h2loadVersion()}`;
  const startedAt = new Date().toISOString();
  const loadBefore = loadAverages();
  const whole = new PressureMeter();
  log(`machine: ${machine}; load average ${loadBefore}`);
  try {
    const fx = await prepareFixture(dir, 1);
    const bodies = writeGetBalanceBodies(dir, fx.readAccount, fx.asset);
    const body = readFileSync(bodies.grpc);
    const headers = { "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${fx.adminKey}` };
    // One database file per server: a SQLite file is served by one process at a time.
    const servers: Server[] = [];
    for (const { mode } of MODES) {
      const db = join(dir, `tally-${mode}.db`);
      copyFileSync(fx.dbPath, db);
      if (existsSync(`${fx.dbPath}-wal`)) copyFileSync(`${fx.dbPath}-wal`, `${db}-wal`);
      servers.push(await startServer(mode, db));
    }
    const calls: Record<Mode, number> = { off: 0, ids: 0, metrics: 0, on: 0, tracing: 0, sampled: 0 };
    for (const s of servers) {
      const r = await probe(s.url, headers, body);
      requireSuccess(s.mode, "grpc", r);
      calls[s.mode]++;
      const id = r.headers["x-request-id"];
      const wantsId = s.mode !== "off" && s.mode !== "metrics";
      if ((id !== undefined) !== wantsId) throw new Error(`${s.mode}: x-request-id ${id === undefined ? "missing" : `"${id}" unexpected`}`);
    }
    const load = (s: Server, durationS: number, logFile?: string) =>
      runH2load({ url: s.url, bodyFile: bodies.grpc, headers, clients: S.connections, streams: S.streams, durationS, cpus: S.loadCpu, ...(logFile ? { logFile } : {}) });
    if (S.warmup > 0) {
      log(`warming up each server for ${S.warmup} s`);
      for (const s of servers) calls[s.mode] += (await load(s, S.warmup)).succeeded;
    }
    const runs: Record<Mode, Run[]> = { off: [], ids: [], metrics: [], on: [], tracing: [], sampled: [] };
    const ratios: Record<Mode, number[]> = { off: [], ids: [], metrics: [], on: [], tracing: [], sampled: [] };
    for (let round = 0; round < S.repeat; round++) {
      const order = servers.map((_, i) => servers[(i + round) % servers.length]!);
      const thisRound = new Map<Mode, Run>();
      for (const s of order) {
        const cpu0 = cpuSeconds(s.child.proc.pid);
        const t0 = performance.now();
        const h = await load(s, S.duration, join(dir, "h2load.log"));
        const wall = (performance.now() - t0) / 1000;
        const cpu = cpuSeconds(s.child.proc.pid) - cpu0;
        if (h.failed + h.errored + h.timeout + h.statusOther > 0) throw new Error(`${s.mode}: ${h.failed} failed, ${h.errored} errored, ${h.timeout} timed out, ${h.statusOther} non-2xx`);
        calls[s.mode] += h.succeeded;
        const run: Run = { reqPerSec: h.reqPerSec, cpuUsPerCall: (cpu / (h.reqPerSec * wall)) * 1e6, p50Ms: h.p50Ms, p99Ms: h.p99Ms, succeeded: h.succeeded };
        runs[s.mode].push(run);
        thisRound.set(s.mode, run);
        log(`round ${round + 1}/${S.repeat} ${s.mode.padEnd(8)} ${fmt(run.reqPerSec).padStart(7)} req/s  ${run.cpuUsPerCall.toFixed(1)} µs CPU/call  p50 ${run.p50Ms.toFixed(2)} ms  p99 ${run.p99Ms.toFixed(2)} ms`);
      }
      const off = thisRound.get("off")!.reqPerSec;
      for (const [mode, r] of thisRound) ratios[mode].push(r.reqPerSec / off);
    }
    // Stopping the tracing server flushes its batch processor: it reports the spans exported.
    const tracingServer = servers.find((s) => s.mode === "tracing");
    await Promise.all(servers.map((s) => s.child.stop()));
    const spans = Number(/SPANS (\d+)/.exec(tracingServer?.child.output() ?? "")?.[1] ?? NaN);
    const p = whole.read();
    const lines = [
      `Tally observability benchmark (npm run bench:obs), ${startedAt}`,
      `machine: ${machine}`,
      `GetBalance over gRPC (h2c), h2load -c ${S.connections} -m ${S.streams}, ${S.duration} s per run, ${S.repeat} rounds (order rotated), ` +
        `servers on CPU ${S.serverCpu}, h2load on CPU ${S.loadCpu}; load average before ${loadBefore}, after ${loadAverages()}; ` +
        `some task waited for a CPU ${(100 * p.cpu).toFixed(1)}% of the time (PSI)`,
      "",
      "| setting | req/s (median) | vs all off (median of per-round ratios) | min..max ratio | server CPU µs/call | p50 ms | p99 ms |",
      "|---|---:|---:|---:|---:|---:|---:|",
      ...MODES.map(({ mode, label }) => {
        const r = runs[mode];
        const q = ratios[mode];
        return `| ${label} | ${fmt(median(r.map((x) => x.reqPerSec)))} | ${median(q).toFixed(3)}x | ${Math.min(...q).toFixed(3)}..${Math.max(...q).toFixed(3)} | ${median(r.map((x) => x.cpuUsPerCall)).toFixed(1)} | ${median(r.map((x) => x.p50Ms)).toFixed(2)} | ${median(r.map((x) => x.p99Ms)).toFixed(2)} |`;
      }),
      "",
      // h2load does not count the calls still in flight when a run's time is up: at most -c x -m per run.
      ...(tracingServer === undefined
        ? []
        : [
            `tracing: ${spans} call spans exported; ${calls.tracing} calls counted by h2load, plus at most ${(S.repeat + 1) * S.connections * S.streams} in flight at the ends of runs` +
              (spans >= calls.tracing && spans <= calls.tracing + (S.repeat + 1) * S.connections * S.streams ? " (one span per call, none dropped)" : " (SPANS DROPPED OR EXTRA)"),
          ]),
    ];
    process.stdout.write(lines.join("\n") + "\n");
    if (S.json) writeFileSync(S.json, JSON.stringify({ machine, startedAt, settings: S, runs, ratios, spans, calls }, null, 2) + "\n");
    return 0;
  } finally {
    await stopAllChildren();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  async (e: unknown) => {
    process.stderr.write(`bench:obs: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    await stopAllChildren();
    process.exit(1);
  },
);
