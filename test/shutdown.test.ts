// Graceful shutdown of `tally serve` (a child process) on SIGTERM while unary
// calls are in flight and WatchBalance streams are open: the process must exit 0
// promptly, streams must end rather than hang, what was acknowledged must be on
// disk, and the file must reopen cleanly.
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import type { PostTransferResponse } from "../gen/tally/ledger/v1/ledger_pb.js";
import { ServerFleet, codeName, integrityCheck, isUnknownOutcome, runTallyCli, sleep, within } from "./support/durability.js";
import { clientFor, tempDir, transportFor } from "./support/server.js";
import type { ChildServer, Protocol } from "./support/server.js";

const fleet = new ServerFleet();
const tmp = tempDir("tally-shutdown-");
afterAll(async () => {
  await fleet.killAll();
  tmp.remove();
});

type Ledger = Client<typeof LedgerService>;

/** How a watch stream ended, as its client saw it. */
interface StreamOutcome {
  readonly how: "end" | "error";
  readonly code?: string;
  readonly at: number;
  readonly sequences: bigint[];
}

/**
 * Consumes a WatchBalance stream in the background. `snapshot` resolves at the
 * first message; `done` when the stream ends or fails (never rejects).
 */
function watch(client: Ledger, accountId: string): { snapshot: Promise<void>; done: Promise<StreamOutcome>; abort: () => void } {
  const ac = new AbortController();
  const sequences: bigint[] = [];
  let gotSnapshot!: () => void;
  const snapshot = new Promise<void>((r) => (gotSnapshot = r));
  const done = (async (): Promise<StreamOutcome> => {
    try {
      for await (const m of client.watchBalance({ accountId, asset: "USD" }, { signal: ac.signal, timeoutMs: 60_000 })) {
        if (m.event.case === "snapshot") gotSnapshot();
        else if (m.event.case === "change") sequences.push(m.event.value.sequence);
      }
      return { how: "end", at: performance.now(), sequences };
    } catch (e) {
      return { how: "error", code: codeName(e), at: performance.now(), sequences };
    }
  })();
  return { snapshot, done, abort: () => ac.abort() };
}

async function startServer(dbPath: string): Promise<{ server: ChildServer; key: string }> {
  const { server } = await fleet.spawn(dbPath);
  return { server, key: server.adminKey! };
}

describe("SIGTERM", () => {
  it("with calls in flight and a stream open: exits 0 promptly, keeps every acknowledged write, reopens cleanly", async () => {
    const dbPath = join(tmp.dir, "inflight.db");
    const { server, key } = await startServer(dbPath);
    const admin = clientFor(LedgerService, server.url, "grpc", key);
    await admin.createAccount({ id: "sd-a" });

    const stream = watch(clientFor(LedgerService, server.url, "grpc", key), "sd-a");
    await within(stream.snapshot, 10_000, "snapshot");

    // Eight clients post back to back, so that calls are in flight whenever the signal lands.
    let stop = false;
    let inFlight = 0;
    let sigtermAt = Number.POSITIVE_INFINITY;
    const acked: { key: string; amount: bigint; id: string; at: number }[] = [];
    const unknown: { key: string; amount: bigint; code: string }[] = [];
    const refused: string[] = [];
    const worker = async (n: number) => {
      const client = clientFor(LedgerService, server.url, "grpc", key);
      for (let i = 0; i < 10_000 && !stop; i++) {
        const op = { key: `sd-${n}-${randomUUID()}`, amount: BigInt(1 + ((n * 31 + i) % 97)) };
        inFlight++;
        let res: PostTransferResponse | undefined;
        try {
          res = await client.postTransfer(
            { idempotencyKey: op.key, debitAccountId: "@world", creditAccountId: "sd-a", asset: "USD", amount: op.amount },
            { timeoutMs: 10_000 },
          );
        } catch (e) {
          if (isUnknownOutcome(e)) unknown.push({ ...op, code: codeName(e) });
          else refused.push(`${op.key}: ${String(e)}`);
          // After the signal, calls fail until the process is gone: no point in hammering.
          if (performance.now() > sigtermAt) stop = true;
        } finally {
          inFlight--;
        }
        if (res) acked.push({ ...op, id: res.transfer!.id, at: performance.now() });
      }
    };
    const workers = Array.from({ length: 8 }, (_, n) => worker(n));

    await sleep(400);
    const inFlightAtSignal = inFlight;
    const ackedBeforeSignal = acked.length;
    sigtermAt = performance.now();
    const exitCode = await within(server.stop("SIGTERM"), 15_000, "exit after SIGTERM");
    const exitMs = performance.now() - sigtermAt;
    stop = true;
    const outcome = await within(stream.done, 5_000, "WatchBalance stream after the server exited");
    await within(Promise.all(workers), 15_000, "clients");

    const ackedDuringShutdown = acked.filter((a) => a.at > sigtermAt).length;
    console.log(
      `shutdown: exit ${exitCode} after ${exitMs.toFixed(0)} ms; in flight at SIGTERM ${inFlightAtSignal}; ` +
        `acked ${acked.length} (${ackedDuringShutdown} after SIGTERM); unknown ${unknown.length} (${[...new Set(unknown.map((u) => u.code))].join(", ")}); ` +
        `stream: ${outcome.how}${outcome.code ? ` ${outcome.code}` : ""} ${(outcome.at - sigtermAt).toFixed(0)} ms after SIGTERM, ${outcome.sequences.length} changes`,
    );

    expect(ackedBeforeSignal).toBeGreaterThan(0); // load was running
    expect(inFlightAtSignal).toBeGreaterThan(0); // and calls were in flight when the signal came
    // Calls the server had already taken were finished, not dropped: close() drains them.
    expect(ackedDuringShutdown).toBeGreaterThan(0);
    expect(exitCode).toBe(0);
    expect(exitMs).toBeLessThan(5_000);
    // The stream ended (cleanly or with an error) no later than the process: it did not hang.
    expect(["end", "error"]).toContain(outcome.how);
    expect(outcome.at - sigtermAt).toBeLessThan(5_000);
    expect(refused).toEqual([]);
    // Changes the stream delivered came in journal order.
    for (let i = 1; i < outcome.sequences.length; i++) expect(outcome.sequences[i]!).toBeGreaterThan(outcome.sequences[i - 1]!);
    // A clean close checkpoints the WAL into the main file and removes it; a
    // leftover -wal means the store was not closed before the process exited.
    expect(existsSync(`${dbPath}-wal`)).toBe(false);
    expect(integrityCheck(dbPath)).toBe("ok");

    // ---- restart on the same file: every acknowledged write is there.
    const again = await startServer(dbPath);
    expect(again.server.adminKey).toBeUndefined(); // the same database, not a new one
    const after = clientFor(LedgerService, again.server.url, "grpc", key);
    const missing: string[] = [];
    for (const a of acked) {
      const t = (await after.getTransfer({ id: a.id }).catch(() => undefined))?.transfer;
      if (!t || t.idempotencyKey !== a.key || t.amount !== a.amount) missing.push(a.id);
    }
    expect(missing).toEqual([]);
    // Unknown outcomes are settled by retrying with the same key and body; then
    // the balance must be exactly the sum of every settled transfer.
    const settled = [...acked];
    for (const u of unknown) {
      const r = await after.postTransfer({ idempotencyKey: u.key, debitAccountId: "@world", creditAccountId: "sd-a", asset: "USD", amount: u.amount });
      settled.push({ key: u.key, amount: u.amount, id: r.transfer!.id, at: 0 });
    }
    const { balance } = await after.getBalance({ accountId: "sd-a", asset: "USD" });
    expect(balance?.posted).toBe(settled.reduce((s, a) => s + a.amount, 0n));
    // Every change the stream delivered before shutdown is a committed journal entry.
    const journal = new Set<bigint>();
    let pageToken = "";
    for (let page = 0; page < 100; page++) {
      const r = await after.listTransactions({ accountId: "sd-a", asset: "USD", pageSize: 1000, pageToken });
      for (const t of r.transactions) journal.add(t.sequence);
      pageToken = r.nextPageToken;
      if (pageToken === "") break;
    }
    expect(journal.size).toBe(settled.length);
    expect(outcome.sequences.filter((s) => !journal.has(s))).toEqual([]);

    expect(await again.server.stop("SIGTERM")).toBe(0);
    const verify = await runTallyCli(["verify", "--db", dbPath]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(integrityCheck(dbPath)).toBe("ok");
  });

  it("ends open streams over every protocol and exits without waiting for the drain deadline", async () => {
    const dbPath = join(tmp.dir, "streams.db");
    const { server, key } = await startServer(dbPath);
    const admin = clientFor(LedgerService, server.url, "grpc", key);
    await admin.createAccount({ id: "sd-s" });

    // HTTP/2 (grpc, connect binary) and HTTP/1.1 (connect JSON, grpc-web): an
    // HTTP/1.1 response that is still streaming is not an idle connection, so it
    // is only closed if the stream itself ends.
    const protocols: Protocol[] = ["grpc", "connect-binary", "connect-json", "grpc-web"];
    const streams = protocols.map((p) => watch(createClient(LedgerService, transportFor(server.url, p, key)), "sd-s"));
    try {
      await within(Promise.all(streams.map((s) => s.snapshot)), 10_000, "snapshots");
      // One change reaches every stream before the signal: they are live, not just opened.
      await admin.postTransfer({ idempotencyKey: "sd-s-1", debitAccountId: "@world", creditAccountId: "sd-s", asset: "USD", amount: 5n });
      await sleep(200);

      const t0 = performance.now();
      const exitCode = await within(server.stop("SIGTERM"), 15_000, "exit after SIGTERM");
      const exitMs = performance.now() - t0;
      const outcomes = await within(Promise.all(streams.map((s) => s.done)), 5_000, "streams after exit");
      console.log(
        `shutdown with ${protocols.length} open streams: exit ${exitCode} after ${exitMs.toFixed(0)} ms; ` +
          protocols.map((p, i) => `${p}: ${outcomes[i]!.how}${outcomes[i]!.code ? ` ${outcomes[i]!.code}` : ""}`).join("; "),
      );

      expect(exitCode).toBe(0);
      // Well under the 10 s grace period after which connections are destroyed:
      // the streams ended because shutdown ended them, not because of the deadline.
      expect(exitMs).toBeLessThan(3_000);
      outcomes.forEach((o, i) => {
        expect(o.sequences, protocols[i]).toHaveLength(1);
        expect(["end", "error"]).toContain(o.how);
      });
      expect(existsSync(`${dbPath}-wal`)).toBe(false);
    } finally {
      for (const s of streams) s.abort();
    }
  });
});
