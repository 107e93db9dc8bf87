/**
 * PostTransfer load generator, run by bench/run.ts as its own process so that
 * the client's CPU is not taken from the server's event loop.
 *
 * Every call carries a unique idempotency key (so h2load's fixed body cannot
 * be used): `concurrency` closed-loop clients, each with its own gRPC
 * transport (HTTP/2 connection) and exactly one call in flight, move 1 unit
 * from the payer to their own payee (`--batch N`: N transfers per call, as
 * one PostTransfers of N items, each with its own key). Calls completed during the first
 * `warmup` seconds are not counted; the measured window is `duration`
 * seconds; the run is also bounded by `max` calls and every call by a deadline.
 *
 * Two clients (`--client`): `lean` (the default) writes each call as one
 * pre-built gRPC frame on a raw node:http2 stream (the request message
 * encoded by protobuf-es with only its idempotency key changed, the answer
 * read from the frame and the grpc-status trailer), so that the load
 * generator costs far less than the server it measures; `connect` is
 * connect-node's gRPC client, as an application would call Tally.
 *
 * Prints `WINDOW start` and `WINDOW end` when the measured window opens and
 * closes (the bench samples the server's CPU time there), then one JSON line
 * with the result.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { parseArgs } from "node:util";
import * as http2 from "node:http2";
import {
  LedgerService,
  PostTransferRequestSchema,
  PostTransferResponseSchema,
  PostTransfersRequestSchema,
  PostTransfersResponseSchema,
  TransferStatus,
} from "../gen/tally/ledger/v1/ledger_pb.js";
import type { PostTransferResponse } from "../gen/tally/ledger/v1/ledger_pb.js";
import { p50p99 } from "./stats.js";

/** The JSON line this process prints. */
export interface PostLoadResult {
  /** Transfers of successful, non-replayed calls completed inside the window. */
  readonly ok: number;
  readonly seconds: number;
  readonly perSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Transfers of every successful call of the run, warm-up included. */
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
    /** Several payers, client i debiting payers[i % n] (instead of --payer): the load without one hot row. */
    payers: { type: "string" },
    payees: { type: "string" },
    asset: { type: "string", default: "USD" },
    concurrency: { type: "string", default: "64" },
    duration: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    max: { type: "string", default: "2000000" },
    "run-id": { type: "string", default: String(Date.now()) },
    client: { type: "string", default: "lean" },
    batch: { type: "string", default: "1" },
  },
});
if (!values.url || !values.key || !(values.payer || values.payers) || !values.payees) throw new Error("--url, --key, --payer (or --payers) and --payees are required");
const payers = (values.payers ?? values.payer!).split(",");
const payees = values.payees.split(",");
const concurrency = Number(values.concurrency);
const durationMs = Number(values.duration) * 1000;
const warmupMs = Number(values.warmup) * 1000;
const max = Number(values.max);
const runId = values["run-id"];
const key = values.key;
const asset = values.asset;
/** Transfers per call: 1 sends PostTransfer, more send PostTransfers with that many items. */
const batch = Number(values.batch);
if (!Number.isInteger(batch) || batch < 1 || batch > 1000) throw new Error("--batch must be 1..1000");

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

/** One call's outcome: whether every transfer it carried is a fresh POSTED one, or the gRPC code it failed with. */
type Outcome = { readonly fresh: boolean } | { readonly code: string };

const isFresh = (r: PostTransferResponse) => !r.replayed && r.transfer?.status === TransferStatus.POSTED;

/** A closed-loop client: one call in flight, until the run stops. */
async function worker(id: number): Promise<void> {
  const call = values.client === "connect" ? connectCaller(id) : leanCaller(id);
  let n = 0;
  while (!stopping && issued < max) {
    issued++;
    const t0 = performance.now();
    const r = await call(`${runId}-${id}-${n++}`);
    if ("fresh" in r) {
      okTotal += batch;
      if (!r.fresh) unexpected++;
      else if (inWindow) {
        windowOk += batch;
        if (nLat < latencies.length) latencies[nLat++] = performance.now() - t0;
      }
    } else {
      errors[r.code] = (errors[r.code] ?? 0) + 1;
      // A failing server must not turn this loop into a busy spin.
      await new Promise((res) => setTimeout(res, 10));
    }
  }
}

/** connect-node's gRPC client, one transport (HTTP/2 connection) per worker. */
function connectCaller(id: number): (key: string) => Promise<Outcome> {
  const client = createClient(LedgerService, createGrpcTransport({ baseUrl: values.url!, interceptors: [bearer] }));
  const payee = payees[id % payees.length]!;
  const payer = payers[id % payers.length]!;
  const item = (idempotencyKey: string) => ({ idempotencyKey, debitAccountId: payer, creditAccountId: payee, asset, amount: 1n, kind: "payment" });
  return async (key) => {
    try {
      if (batch === 1) return { fresh: isFresh(await client.postTransfer(item(key), { timeoutMs: 30_000 })) };
      const res = await client.postTransfers({ transfers: Array.from({ length: batch }, (_, i) => item(`${key}-${i}`)) }, { timeoutMs: 30_000 });
      return { fresh: res.results.length === batch && res.results.every(isFresh) };
    } catch (e) {
      return { code: Code[ConnectError.from(e).code] ?? "Unknown" };
    }
  };
}

/** Raw gRPC over one node:http2 connection per worker: one frame out, one frame and a trailer in. */
function leanCaller(id: number): (key: string) => Promise<Outcome> {
  const session = http2.connect(values.url!);
  session.on("error", () => undefined);
  const fields = { debitAccountId: payers[id % payers.length]!, creditAccountId: payees[id % payees.length]!, asset, amount: 1n, kind: "payment" };
  const item = create(PostTransferRequestSchema, fields);
  // From plain fields each time: create() hands a message it is given back as is.
  const items = create(PostTransfersRequestSchema, { transfers: Array.from({ length: batch }, () => create(PostTransferRequestSchema, fields)) });
  const encode = (key: string): Uint8Array => {
    if (batch === 1) {
      item.idempotencyKey = key;
      return toBinary(PostTransferRequestSchema, item);
    }
    items.transfers.forEach((t, i) => (t.idempotencyKey = `${key}-${i}`));
    return toBinary(PostTransfersRequestSchema, items);
  };
  const decode = (body: Uint8Array): boolean => {
    if (batch === 1) return isFresh(fromBinary(PostTransferResponseSchema, body));
    const res = fromBinary(PostTransfersResponseSchema, body);
    return res.results.length === batch && res.results.every(isFresh);
  };
  const method = batch === 1 ? LedgerService.method.postTransfer : LedgerService.method.postTransfers;
  const headers = {
    ":method": "POST",
    ":path": `/${LedgerService.typeName}/${method.name}`,
    "content-type": "application/grpc",
    te: "trailers",
    authorization: `Bearer ${key}`,
    "grpc-timeout": "30S",
  };
  return (idempotencyKey) =>
    new Promise<Outcome>((resolve) => {
      const data = encode(idempotencyKey);
      const frame = Buffer.alloc(5 + data.length);
      frame.writeUInt32BE(data.length, 1);
      frame.set(data, 5);
      const stream = session.request(headers);
      const chunks: Buffer[] = [];
      let status: string | undefined;
      stream.on("response", (h) => {
        if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
      });
      stream.on("trailers", (t) => {
        status = String(t["grpc-status"]);
      });
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("error", () => resolve({ code: "Unavailable" }));
      stream.on("end", () => {
        const body = Buffer.concat(chunks);
        if (status !== "0" || body.length < 5) return resolve({ code: Code[Number(status)] ?? `grpc-status ${status}` });
        try {
          resolve({ fresh: decode(body.subarray(5, 5 + body.readUInt32BE(1))) });
        } catch {
          resolve({ code: "Internal" });
        }
      });
      stream.end(frame);
    });
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
