/**
 * PostTransfer load generator, run by bench/run.ts as its own process so that
 * the client's CPU is not taken from the server's event loop.
 *
 * Every call carries a unique idempotency key (so h2load's fixed body cannot
 * be used): `concurrency` closed-loop clients, each with its own gRPC
 * transport (HTTP/2 connection) and exactly one call in flight, move 1 unit
 * from the payer to their own payee. Calls completed during the first
 * `warmup` seconds are not counted; the measured window is `duration`
 * seconds; the run is also bounded by `max` calls and every call by a deadline.
 *
 * Prints `WINDOW start` and `WINDOW end` when the measured window opens and
 * closes (the bench samples the server's CPU time there), then one JSON line
 * with the result.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { parseArgs } from "node:util";
import { LedgerService, TransferStatus } from "../gen/tally/ledger/v1/ledger_pb.js";
import { p50p99 } from "./stats.js";

/** The JSON line this process prints. */
export interface PostLoadResult {
  /** Successful, non-replayed calls completed inside the window. */
  readonly ok: number;
  readonly seconds: number;
  readonly perSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Every successful call of the run, warm-up included. */
  readonly okTotal: number;
  /** Failures by Connect code name, over the whole run. */
  readonly errors: Readonly<Record<string, number>>;
  /** Calls whose answer was not a fresh POSTED transfer (must be 0). */
  readonly unexpected: number;
}

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    key: { type: "string" },
    payer: { type: "string" },
    payees: { type: "string" },
    asset: { type: "string", default: "USD" },
    concurrency: { type: "string", default: "64" },
    duration: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    max: { type: "string", default: "2000000" },
    "run-id": { type: "string", default: String(Date.now()) },
  },
});
if (!values.url || !values.key || !values.payer || !values.payees) throw new Error("--url, --key, --payer and --payees are required");
const payees = values.payees.split(",");
const concurrency = Number(values.concurrency);
const durationMs = Number(values.duration) * 1000;
const warmupMs = Number(values.warmup) * 1000;
const max = Number(values.max);
const runId = values["run-id"];
const key = values.key;
const payer = values.payer;
const asset = values.asset;

const bearer: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${key}`);
  return next(req);
};

let issued = 0;
let okTotal = 0;
let unexpected = 0;
let inWindow = false;
let windowOk = 0;
let stopping = false;
const errors: Record<string, number> = {};
// Preallocated so that recording a latency never allocates inside the loop.
const latencies = new Float64Array(Math.min(max, 4_000_000));
let nLat = 0;

async function worker(id: number): Promise<void> {
  const client = createClient(LedgerService, createGrpcTransport({ baseUrl: values.url!, interceptors: [bearer] }));
  const payee = payees[id % payees.length]!;
  let n = 0;
  while (!stopping && issued < max) {
    issued++;
    const t0 = performance.now();
    try {
      const res = await client.postTransfer(
        { idempotencyKey: `${runId}-${id}-${n++}`, debitAccountId: payer, creditAccountId: payee, asset, amount: 1n, kind: "payment" },
        { timeoutMs: 30_000 },
      );
      okTotal++;
      if (res.replayed || res.transfer?.status !== TransferStatus.POSTED) unexpected++;
      else if (inWindow) {
        windowOk++;
        if (nLat < latencies.length) latencies[nLat++] = performance.now() - t0;
      }
    } catch (e) {
      const code = Code[ConnectError.from(e).code] ?? "Unknown";
      errors[code] = (errors[code] ?? 0) + 1;
      // A failing server must not turn this loop into a busy spin.
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

const workers = Array.from({ length: concurrency }, (_, i) => worker(i));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
await sleep(warmupMs);
inWindow = true;
const start = performance.now();
process.stdout.write("WINDOW start\n");
// Ends early when `max` calls were issued: the rate is still over the time actually measured.
while (performance.now() - start < durationMs && issued < max) await sleep(Math.min(50, durationMs));
inWindow = false;
const seconds = (performance.now() - start) / 1000;
process.stdout.write("WINDOW end\n");
stopping = true;
// Calls in flight finish (or hit their deadline); bounded so a hung server cannot hang the bench.
await Promise.race([Promise.all(workers), sleep(35_000)]);
const { p50, p99 } = p50p99(latencies.subarray(0, nLat));
const result: PostLoadResult = {
  ok: windowOk,
  seconds,
  perSec: windowOk / seconds,
  p50Ms: p50,
  p99Ms: p99,
  okTotal,
  errors,
  unexpected,
};
process.stdout.write(JSON.stringify(result) + "\n");
process.exit(0);
