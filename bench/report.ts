import { fmt, median, ratio } from "./stats.js";

/**
 * Everything one `npm run bench` measured, in a JSON-friendly shape: the
 * bench writes it with BENCH_JSON=file, and bench/aggregate.ts merges several
 * such files into one report (medians over every run of every invocation).
 */
export interface BenchResults {
  readonly machine: string;
  readonly startedAt: string;
  /** Load averages and pressure over the whole invocation, one line per invocation. */
  readonly conditions: readonly string[];
  readonly settings: BenchSettings;
  readonly getBalance?: { readonly targets: readonly string[]; readonly runs: Readonly<Record<string, readonly GetBalanceRun[]>> };
  readonly postTransfer?: {
    readonly runs: readonly PostTransferRun[];
    readonly verify: readonly string[];
    readonly verified: boolean;
    /** Growth of the database file per journaled transfer over the PostTransfer phase. */
    readonly bytesPerTransfer?: number;
  };
  readonly raw?: Readonly<Record<string, readonly RawRun[]>>;
}

/** The settings a report needs to describe what was measured. */
export interface BenchSettings {
  readonly duration: number;
  readonly repeat: number;
  readonly connections: number;
  readonly streams: number;
  readonly postDuration: number;
  readonly postClients: number;
  /** The PostTransfer load generator: "lean" (raw HTTP/2 frames) or "connect" (connect-node's client). */
  readonly postClient?: string;
  /** The PostTransfers case: clients, and transfers per call. */
  readonly postBatchClients?: number;
  readonly postBatch?: number;
  readonly rawDuration: number;
  readonly tallyLog: string;
  /** Tally's --durability: "full" (fsync every commit) or "normal". */
  readonly tallyDurability: string;
}

/** How contended the machine was during one measurement (Linux PSI "some", 0..1). */
export interface Contention {
  readonly cpuStall: number;
  readonly ioStall: number;
}

/** One h2load run of one GetBalance target. */
export interface GetBalanceRun extends Contention {
  readonly reqPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Server CPU seconds per wall-clock second (1 = one core busy). */
  readonly serverCpu: number;
  /** Set when the run's responses did not all look like successes. */
  readonly problem?: string | undefined;
}

/** One PostTransfer load run. */
export interface PostTransferRun extends Contention {
  /** Which load: {@link POST_SINGLE} (when absent) or {@link postBatchCase}. */
  readonly case?: string;
  readonly perSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly serverCpu: number;
  readonly clientCpu: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly unexpected: number;
}

/** One raw better-sqlite3 run. */
export interface RawRun extends Contention {
  readonly batch: number;
  /** "tally" (Tally's own tables, when absent) or "minimal". */
  readonly schema?: string;
  readonly perSec: number;
  readonly commitsPerSec: number;
  readonly bytesPerTransfer?: number;
}

/** The PostTransfer load case: one transfer per call. */
export const POST_SINGLE = "Tally PostTransfer (gRPC)";
/** The PostTransfers load case: `batch` transfers per call. */
export const postBatchCase = (batch: number) => `Tally PostTransfers ×${batch} (gRPC)`;
/** The key of a raw baseline in BenchResults.raw. */
export const rawKey = (schema: string, batch: number) => (schema === "tally" ? String(batch) : `${schema}-${batch}`);

/** Target names the ratios are taken against. */
export const GRPC_JS = "(a) grpc-js, same logic";
export const CEILING = "(b) bare node:http2 ceiling";
export const GRPC_JS_CONSTANT = "(c) grpc-js, constant answer";
/** The row the REST dialects' rows are compared with. */
export const REST_BASE = "Tally, Connect JSON (HTTP/1.1)";

const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(x < 10 ? 2 : 1) : "n/a");
const span = (xs: number[]) => (xs.length > 1 ? `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}` : "");

/** A percentage such as "86%" from a fraction. */
export function pct(x: number): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : "n/a";
}

/** A Markdown table, aligned so it also reads well in a terminal. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ") + " |";
  const rule = "|" + widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : "-".repeat(w + 1) + ":")).join("|") + "|";
  return [line(header), rule, ...rows.map(line)].join("\n");
}

/**
 * Renders the report: machine, conditions, and one table per part, every
 * figure a median over the runs. `failed` is set when any check failed
 * (a non-success answer, a transfer error, or a journal that does not verify).
 */
export function renderReport(r: BenchResults, runsLabel: string): { text: string; failed: boolean } {
  const s = r.settings;
  let failed = false;
  const out: string[] = [`machine: ${r.machine}`, ...r.conditions, ""];

  if (r.getBalance) {
    const runs = r.getBalance.runs;
    const med = (name: string, f: (x: GetBalanceRun) => number) => median((runs[name] ?? []).map(f));
    const grpcjs = med(GRPC_JS, (x) => x.reqPerSec);
    const ceiling = med(CEILING, (x) => x.reqPerSec);
    const grpcjsPerCpu = med(GRPC_JS, (x) => x.reqPerSec / x.serverCpu);
    const constantPerCpu = med(GRPC_JS_CONSTANT, (x) => x.reqPerSec / x.serverCpu);
    const ceilingPerCpu = med(CEILING, (x) => x.reqPerSec / x.serverCpu);
    const rows = r.getBalance.targets.map((name) => {
      const rs = runs[name] ?? [];
      const bad = rs.some((x) => x.problem);
      if (bad) failed = true;
      const rps = med(name, (x) => x.reqPerSec);
      const perCpu = med(name, (x) => x.reqPerSec / x.serverCpu);
      return [
        name + (bad ? " (!)" : ""),
        fmt(rps),
        span(rs.map((x) => x.reqPerSec)),
        ms(med(name, (x) => x.p50Ms)),
        ms(med(name, (x) => x.p99Ms)),
        pct(med(name, (x) => x.serverCpu)),
        fmt(perCpu),
        ratio(rps, grpcjs),
        ratio(rps, ceiling),
        ratio(perCpu, grpcjsPerCpu),
        ratio(perCpu, constantPerCpu),
        ratio(perCpu, ceilingPerCpu),
        pct(med(name, (x) => x.cpuStall)),
      ];
    });
    out.push(
      `GetBalance: h2load -c ${s.connections} -m ${s.streams} (${s.connections * s.streams} calls in flight), HTTP/2 h2c, ` +
        `${s.duration} s per run, ${runsLabel}; Tally at --log-level ${s.tallyLog}`,
      "",
      table(["target", "req/s", "range", "p50 ms", "p99 ms", "server CPU", "req/CPU-s", "÷ grpc-js", "÷ ceiling", "÷ (a) per CPU-s", "÷ (c) per CPU-s", "÷ (b) per CPU-s", "CPU stall"], rows),
      "",
    );
    const restRows = r.getBalance.targets.filter((n) => n.endsWith("(HTTP/1.1)"));
    if (restRows.includes(REST_BASE)) {
      const base = med(REST_BASE, (x) => x.reqPerSec);
      const basePerCpu = med(REST_BASE, (x) => x.reqPerSec / x.serverCpu);
      out.push(
        `REST over HTTP/1.1 (h2load --h1 -c ${s.connections * s.streams} -m 1: the same calls in flight, one per connection; one account-scoped Tally key for every row), against ${REST_BASE}:`,
        "",
        table(
          ["target", "req/s", "req/CPU-s", `÷ Connect JSON h1`, `÷ Connect JSON h1 per CPU-s`],
          restRows.map((n) => {
            const rps = med(n, (x) => x.reqPerSec);
            const perCpu = med(n, (x) => x.reqPerSec / x.serverCpu);
            return [n, fmt(rps), fmt(perCpu), ratio(rps, base), ratio(perCpu, basePerCpu)];
          }),
        ),
        "",
      );
    }
  }

  /** Median transfers/s of each PostTransfer case. */
  const tallyPost = new Map<string, number>();
  if (r.postTransfer) {
    const allRuns = r.postTransfer.runs;
    if (!r.postTransfer.verified || allRuns.some((x) => Object.keys(x.errors).length > 0 || x.unexpected > 0)) failed = true;
    const cases = [...new Set(allRuns.map((x) => x.case ?? POST_SINGLE))];
    const rows = cases.map((name) => {
      const runs = allRuns.filter((x) => (x.case ?? POST_SINGLE) === name);
      const m = (f: (x: PostTransferRun) => number) => median(runs.map(f));
      tallyPost.set(name, m((x) => x.perSec));
      return [
        name,
        fmt(m((x) => x.perSec)),
        span(runs.map((x) => x.perSec)),
        ms(m((x) => x.p50Ms)),
        ms(m((x) => x.p99Ms)),
        pct(m((x) => x.serverCpu)),
        fmt(m((x) => x.perSec / x.serverCpu)),
        pct(m((x) => x.clientCpu)),
        pct(m((x) => x.cpuStall)),
        pct(m((x) => x.ioStall)),
      ];
    });
    const batchNote = s.postBatchClients ? `; PostTransfers: ${s.postBatchClients} clients, ${s.postBatch} transfers per call` : "";
    out.push(
      `PostTransfer: ${s.postClients} concurrent gRPC clients (one HTTP/2 connection and one call in flight each; load generator: ${s.postClient === "connect" ? "connect-node's gRPC client" : "raw HTTP/2 frames"}), ` +
        `unique idempotency keys${batchNote}, ${s.postDuration} s per run, ${runsLabel}; SQLite WAL, Tally --durability ${s.tallyDurability} ` +
        `(synchronous=${s.tallyDurability === "normal" ? "NORMAL" : "FULL"})`,
      "",
      table(["what", "transfers/s", "range", "p50 ms", "p99 ms", "server CPU", "transfers/CPU-s", "client CPU", "CPU stall", "I/O stall"], rows),
      "",
      ...r.postTransfer.verify.map((v) => `journal check after the runs: ${v}`),
      ...(r.postTransfer.bytesPerTransfer === undefined ? [] : [`database growth: ${fmt(r.postTransfer.bytesPerTransfer)} bytes per transfer`]),
      "",
    );
  }

  if (r.raw) {
    const keys = Object.keys(r.raw).sort((a, b) => {
      const [sa, ba] = [r.raw![a]![0]?.schema ?? "tally", r.raw![a]![0]?.batch ?? 0];
      const [sb, bb] = [r.raw![b]![0]?.schema ?? "tally", r.raw![b]![0]?.batch ?? 0];
      return sa === sb ? ba - bb : sa === "tally" ? -1 : 1;
    });
    const single = tallyPost.get(POST_SINGLE);
    const batched = s.postBatch === undefined ? undefined : tallyPost.get(postBatchCase(s.postBatch));
    const rows = keys.map((k) => {
      const rs = r.raw![k] ?? [];
      const b = rs[0]?.batch ?? 0;
      const schema = rs[0]?.schema ?? "tally";
      const m = (f: (x: RawRun) => number) => median(rs.map(f));
      const perSec = m((x) => x.perSec);
      const bytes = rs.every((x) => x.bytesPerTransfer !== undefined) ? fmt(m((x) => x.bytesPerTransfer!)) : "n/a";
      return [
        `raw better-sqlite3, ${schema === "tally" ? "Tally's schema" : "minimal schema"}, ${b} transfer${b === 1 ? "" : "s"} per commit`,
        fmt(perSec),
        span(rs.map((x) => x.perSec)),
        fmt(m((x) => x.commitsPerSec)),
        bytes,
        single === undefined ? "n/a" : ratio(single, perSec),
        batched === undefined ? "n/a" : ratio(batched, perSec),
        pct(m((x) => x.cpuStall)),
        pct(m((x) => x.ioStall)),
      ];
    });
    out.push(
      `The store's ceiling: the rows of one transfer (2 entries, 2 balance upserts, 1 transfer, 1 idempotency row) ` +
        `with raw better-sqlite3 and Tally's pragmas, no RPC, ${s.rawDuration} s per run, ${runsLabel}; in Tally's schema (MIGRATIONS) ` +
        `and in a minimal one (one entries index, narrow rows: bench/raw-sqlite.ts)`,
      "",
      table(["what", "transfers/s", "range", "commits/s", "bytes/transfer", "PostTransfer ÷ this", "PostTransfers ÷ this", "CPU stall", "I/O stall"], rows),
      "",
    );
  }
  if (failed) out.push("SOME CHECKS FAILED: see (!) and the [bench] lines on stderr.", "");
  return { text: out.join("\n"), failed };
}
