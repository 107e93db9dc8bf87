import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { quantileSorted } from "./stats.js";
import { spawnChild } from "./children.js";

/** What one h2load run measured. */
export interface H2loadResult {
  /** Requests per second over the measured duration, as h2load reports it. */
  readonly reqPerSec: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly errored: number;
  readonly timeout: number;
  /** Responses with a 2xx status. For gRPC this says nothing about grpc-status: see `dataBytes`. */
  readonly status2xx: number;
  readonly statusOther: number;
  /** Bytes of DATA frame payload received. */
  readonly dataBytes: number;
  /** Per-request latency percentiles from h2load's --log-file, in ms (NaN when none was logged). */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** The raw text, kept for error messages. */
  readonly text: string;
}

/** Options of one h2load run. */
export interface H2loadOptions {
  readonly url: string;
  /** -d: the request body (a POST); omitted: a GET. */
  readonly bodyFile?: string | undefined;
  /** --h1: HTTP/1.1 instead of h2c (then -m is requests pipelined per connection). */
  readonly h1?: boolean | undefined;
  readonly headers: Readonly<Record<string, string>>;
  /** -c: connections. */
  readonly clients: number;
  /** -m: concurrent streams per connection. */
  readonly streams: number;
  /** -D: seconds of load. */
  readonly durationS: number;
  /** Where to write the per-request log for percentiles; omitted: no percentiles. */
  readonly logFile?: string;
  /** CPUs to pin h2load to (a taskset list, e.g. "1"); omitted: not pinned. */
  readonly cpus?: string;
}

/** True when an `h2load` executable is on PATH. */
export function h2loadAvailable(): boolean {
  const r = spawnSync("h2load", ["--version"], { encoding: "utf8" });
  return r.status === 0 && /h2load/.test(r.stdout);
}

/** The version line of h2load, for the report. */
export function h2loadVersion(): string {
  return spawnSync("h2load", ["--version"], { encoding: "utf8" }).stdout.trim();
}

/**
 * Runs h2load once, as a separate process, bounded by time: -D seconds of load
 * (h2load stops itself), and a kill after twice that plus 30 s in case it
 * hangs on a server that stopped answering.
 */
export async function runH2load(o: H2loadOptions): Promise<H2loadResult> {
  // h2load appends to an existing log file; a stale one would mix two runs.
  if (o.logFile) rmSync(o.logFile, { force: true });
  const args = [
    "-c", String(o.clients),
    "-m", String(o.streams),
    "-t", "1",
    "-D", String(o.durationS),
    ...(o.bodyFile === undefined ? [] : ["-d", o.bodyFile]),
    ...(o.h1 ? ["--h1"] : []),
    ...Object.entries(o.headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]),
    ...(o.logFile ? ["--log-file", o.logFile] : []),
    o.url,
  ];
  const child = o.cpus === undefined ? spawnChild("h2load", "h2load", args) : spawnChild("h2load", "taskset", ["-c", o.cpus, "h2load", ...args]);
  const timer = setTimeout(() => child.proc.kill("SIGKILL"), (o.durationS * 2 + 30) * 1000);
  const code = await child.exited;
  clearTimeout(timer);
  const text = child.output();
  if (code !== 0) throw new Error(`h2load exited with ${code}:\n${text}`);
  const num = (re: RegExp, what: string): number => {
    const m = re.exec(text);
    if (!m) throw new Error(`cannot find ${what} in h2load output:\n${text}`);
    return Number(m[1]);
  };
  const status = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(text);
  if (!status) throw new Error(`cannot find status codes in h2load output:\n${text}`);
  let p50Ms = Number.NaN;
  let p99Ms = Number.NaN;
  if (o.logFile) {
    const lat = readLatenciesUs(o.logFile);
    p50Ms = quantileSorted(lat, 0.5) / 1000;
    p99Ms = quantileSorted(lat, 0.99) / 1000;
    rmSync(o.logFile, { force: true });
  }
  return {
    reqPerSec: num(/finished in [\d.]+\w+, ([\d.]+) req\/s/, "req/s"),
    succeeded: num(/(\d+) succeeded/, "succeeded"),
    failed: num(/(\d+) failed/, "failed"),
    errored: num(/(\d+) errored/, "errored"),
    timeout: num(/(\d+) timeout/, "timeout"),
    status2xx: Number(status[1]),
    statusOther: Number(status[2]) + Number(status[3]) + Number(status[4]),
    dataBytes: num(/\((\d+)\) data/, "data bytes"),
    p50Ms,
    p99Ms,
    text,
  };
}

/**
 * Latencies (µs, sorted) of the 2xx requests in an h2load log file: one line
 * per request, tab-separated: start time (µs since the epoch), status, µs
 * until the end of the response.
 */
function readLatenciesUs(file: string): Float64Array {
  const lines = readFileSync(file, "utf8").split("\n");
  const out = new Float64Array(lines.length);
  let n = 0;
  for (const line of lines) {
    const cols = line.split("\t");
    if (cols.length < 3 || !cols[1]!.startsWith("2")) continue;
    out[n++] = Number(cols[2]);
  }
  return out.subarray(0, n).sort();
}
