/**
 * `npm run bench:streams`: what open balance streams cost the server.
 *
 * 1. Idle streams: opens BENCH_IDLE_STREAMS (10,000) WatchBalance streams
 *    over gRPC, 250 per HTTP/2 connection, waits until every one got its
 *    snapshot, lets the server settle, and reports the server's RSS growth
 *    per stream (VmRSS of /proc/<pid>/status); then the same against two
 *    baselines, bench/idle-stream-server.ts holding the same streams on bare
 *    node:http2 (its request/response API, as Tally's front door, and its
 *    raw stream API). With BENCH_HEAP_SNAPSHOT=<dir>, the Tally server writes
 *    a heap snapshot before and after (bench/heap-summary.ts compares them).
 * 2. Fan-out: BENCH_FANOUT_WATCHERS (100) streams on one account, then
 *    BENCH_FANOUT_COMMITS (200) transfers to it, one at a time; for every
 *    watcher and commit, the time from the commit's acknowledgement (as the
 *    committing client saw it) to that watcher's receiving the change.
 *    Reported: p50, p99 and max over all deliveries, and that every watcher
 *    got every change, in order.
 *
 * The server (`tally serve`, as an operator starts it) runs on core 0 and
 * this process on core 1 (taskset), on a fresh SQLite file built through the
 * domain API.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as http2 from "node:http2";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LedgerService, WatchBalanceRequestSchema, WatchBalanceResponseSchema } from "../gen/tally/ledger/v1/ledger_pb.js";
import { scriptArgs, spawnChild } from "./children.js";
import { prepareFixture } from "./fixture.js";
import { loadAverages, machineLine } from "./machine.js";
import { fmt, quantileSorted } from "./stats.js";
import { table } from "./report.js";

const IDLE = Number(process.env["BENCH_IDLE_STREAMS"] ?? 10_000);
const PER_CONNECTION = 250;
const WATCHERS = Number(process.env["BENCH_FANOUT_WATCHERS"] ?? 100);
const COMMITS = Number(process.env["BENCH_FANOUT_COMMITS"] ?? 200);
const START_TIMEOUT_MS = 60_000;
/** A directory for two heap snapshots of the server, around the idle streams (see bench/heap-summary.ts). */
const HEAP_DIR = process.env["BENCH_HEAP_SNAPSHOT"];
const PATH = "/tally.ledger.v1.LedgerService/WatchBalance";

const log = (msg: string) => process.stderr.write(`[bench:streams] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error("no VmRSS");
  return Number(m[1]);
}

/** One gRPC WatchBalance request body: a 5-byte envelope prefix and the message. */
function watchBody(accountId: string): Buffer {
  const msg = toBinary(WatchBalanceRequestSchema, create(WatchBalanceRequestSchema, { accountId, asset: "USD" }));
  const out = Buffer.alloc(5 + msg.length);
  out.writeUInt32BE(msg.length, 1);
  Buffer.from(msg).copy(out, 5);
  return out;
}

/** A raw gRPC server stream: calls `onMessage` for each response message, in order. */
function openWatch(session: http2.ClientHttp2Session, key: string, body: Buffer, onMessage: (m: Uint8Array) => void): http2.ClientHttp2Stream {
  const s = session.request({ ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${key}` });
  let pending: Buffer = Buffer.alloc(0);
  s.on("data", (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
      const n = pending.readUInt32BE(1);
      onMessage(pending.subarray(5, 5 + n));
      pending = pending.subarray(5 + n);
    }
  });
  s.on("error", () => undefined);
  s.end(body);
  return s;
}

/** With BENCH_HEAP_SNAPSHOT, has the server write its `n`th heap snapshot and waits until it is complete. */
async function heapSnapshot(pid: number, n: number): Promise<void> {
  if (HEAP_DIR === undefined) return;
  process.kill(pid, "SIGUSR2");
  const done = () => readdirSync(HEAP_DIR).filter((f) => f.endsWith(".heapsnapshot")).length >= n;
  await until(done, 120_000, `heap snapshot ${n}`);
  // The file appears when the snapshot starts; it is complete when its size stops changing.
  let size = -1;
  for (;;) {
    await sleep(1000);
    const files = readdirSync(HEAP_DIR).filter((f) => f.endsWith(".heapsnapshot")).sort();
    const now = statSync(join(HEAP_DIR, files[n - 1]!)).size;
    if (now === size) break;
    size = now;
  }
  log(`heap snapshot ${n} written to ${HEAP_DIR}`);
}

async function until(f: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A new HTTP/2 connection to `url`, kept in `sessions` (to be destroyed). */
function connectTo(url: string, sessions: http2.ClientHttp2Session[]): http2.ClientHttp2Session {
  const s = http2.connect(url);
  s.on("error", () => undefined);
  sessions.push(s);
  return s;
}

interface IdleRow {
  readonly name: string;
  readonly before: number;
  readonly after: number;
  readonly connections: number;
}

/**
 * Opens IDLE streams on `url` (PER_CONNECTION per HTTP/2 connection), waits
 * until each got its first message and the server settled, and reads the
 * server's RSS before and after; the streams are closed again.
 */
async function idleStreams(url: string, pid: number, key: string, body: Buffer, snapshots: boolean): Promise<Omit<IdleRow, "name">> {
  const sessions: http2.ClientHttp2Session[] = [];
  const connect = () => connectTo(url, sessions);
  try {
    await sleep(1000);
    if (snapshots) await heapSnapshot(pid, 1);
    const before = rssKiB(pid);
    let first = 0;
    let session = connect();
    const t0 = performance.now();
    for (let i = 0; i < IDLE; i++) {
      if (i > 0 && i % PER_CONNECTION === 0) session = connect();
      openWatch(session, key, body, () => first++);
      if (i % 500 === 499) await sleep(10);
    }
    await until(() => first >= IDLE, 120_000, `${IDLE} first messages`);
    const openMs = performance.now() - t0;
    await sleep(3000);
    const after = rssKiB(pid);
    if (snapshots) await heapSnapshot(pid, 2);
    log(`idle on ${url}: ${IDLE} streams on ${sessions.length} connections open in ${fmt(openMs)} ms; RSS ${fmt(before)} → ${fmt(after)} KiB, ${((after - before) / IDLE).toFixed(1)} KiB per stream`);
    return { before, after, connections: sessions.length };
  } finally {
    for (const s of sessions) s.destroy();
    await sleep(2000);
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "tally-bench-streams-"));
  const fx = await prepareFixture(dir, 1);
  const server = spawnChild("tally", "taskset", [
    "-c", "0",
    process.execPath, ...(HEAP_DIR === undefined ? [] : [`--heapsnapshot-signal=SIGUSR2`, `--diagnostic-dir=${HEAP_DIR}`]),
    ...scriptArgs("src/main.ts"),
    "serve", "--db", fx.dbPath, "--port", "0", "--log-level", "error",
    "--streams-per-tenant", String(IDLE + WATCHERS + 10),
  ]);
  const port = Number((await server.waitFor(/listening on http:\/\/[^:\s]+:(\d+)/, START_TIMEOUT_MS))[1]);
  const pid = server.proc.pid!;
  const url = `http://127.0.0.1:${port}`;
  const sessions: http2.ClientHttp2Session[] = [];
  const connect = () => connectTo(url, sessions);
  try {
    // ---- idle streams ----
    const client = createClient(LedgerService, createGrpcTransport({ baseUrl: url, interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${fx.adminKey}`), next(req))] }));
    for (let i = 0; i < 200; i++) await client.getBalance({ accountId: fx.readAccount, asset: "USD" });
    const idle: IdleRow[] = [{ name: "Tally, WatchBalance over gRPC", ...(await idleStreams(url, pid, fx.adminKey, watchBody(fx.readAccount), true)) }];
    // The baselines: Node's HTTP/2 stack alone, holding the same number of streams.
    for (const api of ["compat", "stream"] as const) {
      const bare = spawnChild(`bare-${api}`, "taskset", ["-c", "0", process.execPath, ...scriptArgs("bench/idle-stream-server.ts"), "--api", api]);
      try {
        const bport = Number((await bare.waitFor(/READY port=(\d+)/, START_TIMEOUT_MS))[1]);
        const label = api === "compat" ? "bare node:http2, request/response API (Tally's)" : "bare node:http2, raw stream API";
        idle.push({ name: label, ...(await idleStreams(`http://127.0.0.1:${bport}`, bare.proc.pid!, fx.adminKey, watchBody(fx.readAccount), false)) });
      } finally {
        await bare.stop();
      }
    }

    // ---- fan-out ----
    await client.createAccount({ id: "fan", overdraftLimit: 0n, overdraftUnlimited: false });
    const fanBody = watchBody("fan");
    const received: number[][] = Array.from({ length: WATCHERS }, () => []);
    const sequences: bigint[][] = Array.from({ length: WATCHERS }, () => []);
    let fanSnapshots = 0;
    const session = connect();
    for (let w = 0; w < WATCHERS; w++) {
      openWatch(session, fx.adminKey, fanBody, (m) => {
        const ev = fromBinary(WatchBalanceResponseSchema, m);
        if (ev.event.case === "snapshot") fanSnapshots++;
        else if (ev.event.case === "change") {
          received[w]!.push(performance.now());
          sequences[w]!.push(ev.event.value.sequence);
        }
      });
    }
    await until(() => fanSnapshots >= WATCHERS, 60_000, "fan-out snapshots");
    const acks: number[] = [];
    for (let c = 0; c < COMMITS; c++) {
      await client.postTransfer({ idempotencyKey: `fan-${c}`, debitAccountId: "@world", creditAccountId: "fan", asset: "USD", amount: 1n, kind: "payment" });
      acks.push(performance.now());
      // Paced: the next commit once every watcher has this one, so each delivery time is its own.
      await until(() => received.every((r) => r.length > c), 30_000, `commit ${c} on every watcher`);
    }
    const lat: number[] = [];
    for (const r of received) for (let c = 0; c < COMMITS; c++) lat.push(r[c]! - acks[c]!);
    lat.sort((a, b) => a - b);
    const inOrder = sequences.every((s) => s.length === COMMITS && s.every((x, i) => i === 0 || x > s[i - 1]!));
    for (const s of sessions.splice(0)) s.destroy();

    const out = [
      "Tally stream benchmark (npm run bench:streams)",
      `machine: ${machineLine()} (nproc as seen from the load generator, pinned to core 1; the server on core 0); load average after: ${loadAverages()}`,
      "",
      table(
        [`${fmt(IDLE)} idle streams`, "connections", "RSS before KiB", "RSS after KiB", "KiB per stream", "÷ bare (compat)"],
        idle.map((r) => {
          const per = (r.after - r.before) / IDLE;
          const bare = (idle[1]!.after - idle[1]!.before) / IDLE;
          return [r.name, String(r.connections), fmt(r.before), fmt(r.after), per.toFixed(1), `${(per / bare).toFixed(2)}x`];
        }),
      ),
      "",
      table(
        ["fan-out", "watchers", "commits", "deliveries", "every change, in order", "ack → delivery p50 ms", "p99 ms", "max ms"],
        [["one account", String(WATCHERS), String(COMMITS), fmt(lat.length), inOrder ? "yes" : "NO",
          quantileSorted(lat, 0.5).toFixed(2), quantileSorted(lat, 0.99).toFixed(2), lat[lat.length - 1]!.toFixed(2)]],
      ),
      "",
      "Negative times: a watcher got the change before the committing client had read its acknowledgement.",
    ];
    process.stdout.write(out.join("\n") + "\n");
    if (!inOrder) process.exitCode = 1;
  } finally {
    for (const s of sessions) s.destroy();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:streams: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
