import type { Client } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../gen/tally/admin/v1/admin_pb.js";
import { BalanceChangeKind, LedgerService, TransferStatus } from "../gen/tally/ledger/v1/ledger_pb.js";
import type { Balance, BalanceChange, BalanceSnapshot, Transaction, WatchBalanceResponse } from "../gen/tally/ledger/v1/ledger_pb.js";
import { failureOf, firstMessage } from "./support/rpc-expect.js";
import { seededRandom } from "./support/seeded-random.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { Protocol, TestServer } from "./support/server.js";
import { IDLE, WatchStream } from "./support/watch-stream.js";
import type { Logger } from "../src/transport/log.js";

type Ledger = Client<typeof LedgerService>;

/** The streaming transports: Connect over HTTP/2 (binary), gRPC, and gRPC-web. */
const WATCH_PROTOCOLS: readonly Protocol[] = ["connect-binary", "grpc", "grpc-web"];
const rnd = seededRandom();

let server: TestServer;
let bKey: string;
/** What the server logged at error level, and every stream's closing "rpc" line. */
const serverErrors: { msg: string; fields: Record<string, unknown> | undefined }[] = [];
const streamLog: Record<string, unknown>[] = [];
const captureLogger: Logger = {
  info(msg, fields) {
    if (msg === "rpc" && String(fields?.["procedure"]).endsWith("/WatchBalance")) streamLog.push(fields ?? {});
  },
  error(msg, fields) {
    serverErrors.push({ msg, fields });
  },
};

beforeAll(async () => {
  console.log(`watch-balance seed=${rnd.seed}`);
  server = await startTestServer({ logger: captureLogger });
  bKey = (await clientFor(AdminService, server.url, "connect-binary", server.adminKey).createTenant({ id: "watch-b" })).adminKeySecret;
});

afterAll(async () => {
  await server?.close();
});

function snapshotOf(m: WatchBalanceResponse): BalanceSnapshot {
  if (m.event.case !== "snapshot") throw new Error(`expected a snapshot, got ${m.event.case}`);
  return m.event.value;
}

function changeOf(m: WatchBalanceResponse): BalanceChange {
  if (m.event.case !== "change") throw new Error(`expected a change, got ${m.event.case}`);
  return m.event.value;
}

/** Every entry of an account, oldest first. */
async function journal(c: Ledger, accountId: string): Promise<Transaction[]> {
  const out: Transaction[] = [];
  let pageToken = "";
  do {
    const res = await c.listTransactions({ accountId, pageSize: 1000, pageToken });
    out.push(...res.transactions);
    pageToken = res.nextPageToken;
  } while (pageToken !== "");
  return out.reverse();
}

/** The fields of a balance a watcher's view must get right. */
function figures(b: Balance | undefined) {
  return b && { asset: b.asset, posted: b.posted, pendingIn: b.pendingIn, pendingOut: b.pendingOut, available: b.available, sequence: b.sequence };
}

const ZERO = { posted: 0n, pendingIn: 0n, pendingOut: 0n };

/**
 * Checks one change against the balance before it: delta and kind follow the
 * entry's signed amount, posted moves only for POSTED entries, and the pending
 * totals move by the reservation (`reserved` maps a pending transfer to its
 * reserved amount, which a partial settlement releases in full).
 */
function expectConsistent(
  ch: BalanceChange,
  prev: { posted: bigint; pendingIn: bigint; pendingOut: bigint },
  reserved: ReadonlyMap<string, bigint>,
  accountId: string,
): void {
  const t = ch.transaction!;
  const b = ch.balance!;
  const where = `change ${ch.sequence} (${TransferStatus[t.status]} ${t.amount})`;
  expect(t.accountId, where).toBe(accountId);
  expect(b.accountId, where).toBe(accountId);
  expect(ch.sequence, where).toBe(t.sequence);
  expect(b.sequence, where).toBe(t.sequence);
  expect(ch.delta, where).toBe(t.amount);
  expect(ch.kind, where).toBe(t.amount < 0n ? BalanceChangeKind.DEBIT : BalanceChangeKind.CREDIT);
  expect(b.posted, where).toBe(t.balanceAfter);
  const debit = t.amount < 0n;
  const size = debit ? -t.amount : t.amount;
  let posted = prev.posted;
  let pin = prev.pendingIn;
  let pout = prev.pendingOut;
  if (t.status === TransferStatus.POSTED) {
    posted += t.amount;
    const r = reserved.get(t.transferId);
    // A settlement releases the whole reservation, whatever amount it posts.
    if (r !== undefined) {
      if (debit) pout -= r;
      else pin -= r;
    }
  } else if (t.status === TransferStatus.PENDING) {
    if (debit) pout += size;
    else pin += size;
  } else if (t.status === TransferStatus.VOIDED) {
    if (debit) pout -= size;
    else pin -= size;
  }
  expect({ posted: b.posted, pendingIn: b.pendingIn, pendingOut: b.pendingOut, available: b.available }, where).toEqual({
    posted,
    pendingIn: pin,
    pendingOut: pout,
    available: posted - pout,
  });
}

describe.each(WATCH_PROTOCOLS)("WatchBalance over %s", (p) => {
  let c: Ledger;
  beforeAll(() => {
    c = clientFor(LedgerService, server.url, p, server.adminKey);
  });

  it("sends a snapshot first, then one change per journal entry, in order, with delta, kind and balance", async () => {
    const w = `w1-${p}`;
    const sink = `sink1-${p}`;
    await c.createAccount({ id: w });
    await c.createAccount({ id: sink });
    const fund = await c.postTransfer({ idempotencyKey: `${w}-fund`, debitAccountId: "@world", creditAccountId: w, asset: "USD", amount: 1000n });
    const s = new WatchStream(c, { accountId: w });
    try {
      const snap = snapshotOf(await s.next());
      expect(snap.sequence).toBeGreaterThanOrEqual(fund.transfer!.sequence);
      expect(snap.balances.map(figures)).toEqual([{ asset: "USD", ...ZERO, posted: 1000n, available: 1000n, sequence: fund.transfer!.sequence }]);

      const post = (key: string, debit: string, credit: string, amount: bigint, extra: { asset?: string; pending?: boolean } = {}) =>
        c.postTransfer({ idempotencyKey: `${w}-${key}`, debitAccountId: debit, creditAccountId: credit, asset: extra.asset ?? "USD", amount, pending: extra.pending ?? false });
      await post("credit", "@world", w, 50n);
      await post("debit", w, sink, 30n);
      const holdOut = await post("hold-out", w, sink, 20n, { pending: true });
      const holdIn = await post("hold-in", "@world", w, 15n, { pending: true });
      await c.postPendingTransfer({ transferId: holdOut.transfer!.id, amount: 10n });
      await c.voidPendingTransfer({ transferId: holdIn.transfer!.id });
      await post("eur", "@world", w, 7n, { asset: "EUR" });

      // [asset, delta, kind, status, posted, pending_in, pending_out, available]
      const D = BalanceChangeKind.DEBIT;
      const C = BalanceChangeKind.CREDIT;
      const S = TransferStatus;
      const expected = [
        ["USD", 50n, C, S.POSTED, 1050n, 0n, 0n, 1050n],
        ["USD", -30n, D, S.POSTED, 1020n, 0n, 0n, 1020n],
        ["USD", -20n, D, S.PENDING, 1020n, 0n, 20n, 1000n],
        ["USD", 15n, C, S.PENDING, 1020n, 15n, 20n, 1000n],
        ["USD", -10n, D, S.POSTED, 1010n, 15n, 0n, 1010n],
        ["USD", 15n, C, S.VOIDED, 1010n, 0n, 0n, 1010n],
        ["EUR", 7n, C, S.POSTED, 7n, 0n, 0n, 7n],
      ];
      const changes: BalanceChange[] = [];
      for (let i = 0; i < expected.length; i++) changes.push(changeOf(await s.next()));
      expect(changes.map((ch) => [ch.balance!.asset, ch.delta, ch.kind, ch.transaction!.status, ch.balance!.posted, ch.balance!.pendingIn, ch.balance!.pendingOut, ch.balance!.available])).toEqual(expected);
      // Exactly the journal, entry for entry, and nothing more.
      const entries = (await journal(c, w)).filter((e) => e.sequence > snap.sequence);
      expect(changes.map((ch) => ch.sequence)).toEqual(entries.map((e) => e.sequence));
      changes.forEach((ch, i) => expect(ch.transaction).toEqual(entries[i]));
      expect(await s.within(300)).toBe(IDLE);
    } finally {
      s.close();
    }
  });

  it("a client that keeps disconnecting and resuming while ~500 transfers are written sees every change exactly once", async () => {
    const w = `w2-${p}`;
    const sink = `sink2-${p}`;
    await c.createAccount({ id: w, overdraftLimit: 10n ** 12n });
    await c.createAccount({ id: sink, overdraftLimit: 10n ** 12n });
    await c.postTransfer({ idempotencyKey: `${w}-seed`, debitAccountId: "@world", creditAccountId: w, asset: "USD", amount: 100_000n });
    // Another account's traffic runs alongside: none of it may reach this watcher.
    await c.createAccount({ id: `noise-${p}` });

    const reserved = new Map<string, bigint>();
    const writer = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
    let ops = 0;
    const lane = async (n: number) => {
      const held: { id: string; amount: bigint }[] = [];
      for (let i = 0; i < 63; i++) {
        const key = `${w}-${n}-${i}`;
        const roll = rnd.next();
        const asset = rnd.next() < 0.8 ? "USD" : "EUR";
        const amount = BigInt(rnd.int(1, 500));
        if (held.length > 0 && roll < 0.2) {
          const h = held.splice(rnd.int(0, held.length - 1), 1)[0]!;
          const r = rnd.next();
          if (r < 0.4) await writer.voidPendingTransfer({ transferId: h.id });
          else await writer.postPendingTransfer({ transferId: h.id, amount: r < 0.7 ? 0n : BigInt(rnd.int(1, Number(h.amount))) });
        } else if (roll < 0.4) {
          const into = rnd.next() < 0.5;
          const res = await writer.postTransfer({ idempotencyKey: key, debitAccountId: into ? "@world" : w, creditAccountId: into ? w : sink, asset, amount, pending: true });
          reserved.set(res.transfer!.id, amount);
          held.push({ id: res.transfer!.id, amount });
        } else if (roll < 0.7) {
          await writer.postTransfer({ idempotencyKey: key, debitAccountId: "@world", creditAccountId: w, asset, amount });
        } else if (roll < 0.95) {
          await writer.postTransfer({ idempotencyKey: key, debitAccountId: w, creditAccountId: sink, asset, amount });
        } else {
          await writer.postTransfer({ idempotencyKey: key, debitAccountId: "@world", creditAccountId: `noise-${p}`, asset, amount });
        }
        ops++;
      }
    };
    let writerDone = false;
    // Eight lanes: requests that queue up during one commit's fsync share the next commit.
    const writing = Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(lane)).finally(() => (writerDone = true));

    const received: BalanceChange[] = [];
    const view = new Map<string, Balance>();
    let last: bigint | undefined;
    let connections = 0;
    let finalSeq: bigint | undefined;
    let firstSnapshot: bigint | undefined;
    const deadline = Date.now() + 40_000;
    while (finalSeq === undefined || last !== finalSeq) {
      if (Date.now() > deadline) throw new Error(`watcher did not catch up: last ${last}, final ${finalSeq}`);
      const s = new WatchStream(c, last === undefined ? { accountId: w } : { accountId: w, afterSequence: last });
      connections++;
      try {
        const snap = snapshotOf(await s.next());
        if (last !== undefined) {
          // Resuming at the last seen change: the snapshot is exactly the view built so far.
          expect(snap.sequence).toBe(last);
          expect(snap.balances.map(figures).sort((x, y) => x!.asset.localeCompare(y!.asset))).toEqual(
            [...view.values()].map(figures).sort((x, y) => x!.asset.localeCompare(y!.asset)),
          );
        }
        firstSnapshot ??= snap.sequence;
        view.clear();
        for (const b of snap.balances) view.set(b.asset, b);
        last = snap.sequence;
        const quota = rnd.int(1, 60);
        for (let k = 0; k < quota; k++) {
          if (finalSeq === undefined && writerDone) finalSeq = (await journal(c, w)).at(-1)!.sequence;
          if (finalSeq !== undefined && last === finalSeq) break;
          const m = await s.within(200);
          if (m === IDLE) {
            if (Date.now() > deadline) throw new Error(`no change after ${last} for too long (final ${finalSeq})`);
            k--;
            continue;
          }
          const ch = changeOf(m);
          expect(ch.sequence > last!, `change ${ch.sequence} after ${last}`).toBe(true);
          const prev = view.get(ch.balance!.asset) ?? ZERO;
          expectConsistent(ch, prev, reserved, w);
          view.set(ch.balance!.asset, ch.balance!);
          received.push(ch);
          last = ch.sequence;
        }
      } finally {
        s.close();
      }
    }
    await writing;

    const entries = await journal(c, w);
    const seqs = received.map((ch) => ch.sequence);
    expect(new Set(seqs).size).toBe(seqs.length);
    // Every entry after the first snapshot, once, in order, and nothing else.
    const expected = entries.filter((e) => e.sequence > firstSnapshot!);
    expect(seqs).toEqual(expected.map((e) => e.sequence));
    received.forEach((ch, i) => expect(ch.transaction).toEqual(expected[i]));
    for (const [asset, b] of view) {
      const truth = (await c.getBalance({ accountId: w, asset })).balance;
      expect(figures(b)).toEqual(figures(truth));
    }
    expect([...view.keys()].sort()).toEqual((await c.getMany({ accountId: w })).balances.map((x) => x.asset).sort());
    console.log(`${p}: ${ops} writer ops, ${received.length} changes over ${connections} connections, 0 gaps, 0 duplicates`);
    expect(ops).toBe(8 * 63);
    expect(connections).toBeGreaterThanOrEqual(5);
    expect(received.length).toBeGreaterThan(300);

    // Resuming from older points: the snapshot is the balance as of that sequence.
    const history = received;
    const asOf = (s: bigint) => {
      const m = new Map<string, Balance>();
      for (const ch of history) if (ch.sequence <= s) m.set(ch.balance!.asset, ch.balance!);
      return m;
    };
    const start = history[0]!.sequence;
    const points = [history[0]!, history[1]!, ...Array.from({ length: 12 }, () => rnd.pick(history.slice(2)))];
    for (const ch of points) {
      // The sequence of one of this account's entries, and one just before it (usually another account's).
      for (const at of [ch.sequence, ch.sequence - 1n]) {
        if (at < start) continue;
        const s = new WatchStream(c, { accountId: w, afterSequence: at });
        try {
          const snap = snapshotOf(await s.next());
          expect(snap.sequence).toBe(at);
          const want = asOf(at);
          const got = new Map(snap.balances.map((b) => [b.asset, b]));
          // Balances the seed transfer created before the first snapshot are also there; check the ones the history knows.
          for (const [asset, b] of want) expect(figures(got.get(asset)), `as of ${at}`).toEqual(figures(b));
          if (at === ch.sequence) expect(got.get(ch.balance!.asset)?.posted).toBe(ch.transaction!.balanceAfter);
          const next = history.find((x) => x.sequence > at);
          if (next) expect(changeOf(await s.next()).sequence).toBe(next.sequence);
        } finally {
          s.close();
        }
      }
    }
  });

  it("resuming from 0 replays the account's whole journal after an empty snapshot", async () => {
    const w = `w3-${p}`;
    await c.createAccount({ id: w });
    for (let i = 0; i < 5; i++) await c.postTransfer({ idempotencyKey: `${w}-${i}`, debitAccountId: "@world", creditAccountId: w, asset: "USD", amount: BigInt(i + 1) });
    const s = new WatchStream(c, { accountId: w, afterSequence: 0n });
    try {
      const snap = snapshotOf(await s.next());
      expect([snap.sequence, snap.balances]).toEqual([0n, []]);
      const entries = await journal(c, w);
      for (const e of entries) expect(changeOf(await s.next()).transaction).toEqual(e);
    } finally {
      s.close();
    }
    // Asked by asset, an account with no history there reads as one zero balance.
    const byAsset = snapshotOf(await firstMessage(c.watchBalance({ accountId: w, asset: "EUR" })));
    expect(byAsset.balances.map(figures)).toEqual([{ asset: "EUR", ...ZERO, available: 0n, sequence: 0n }]);
  });

  it("after_sequence beyond the journal head, or negative, is out_of_range", async () => {
    const w = `w4-${p}`;
    await c.createAccount({ id: w });
    const { transfer } = await c.postTransfer({ idempotencyKey: `${w}-0`, debitAccountId: "@world", creditAccountId: w, asset: "USD", amount: 1n });
    // Nothing else writes meanwhile, so this transfer's credit entry is the head.
    const head = transfer!.sequence;
    const atHead = snapshotOf(await firstMessage(c.watchBalance({ accountId: w, afterSequence: head })));
    expect(atHead.sequence).toBe(head);
    for (const after of [head + 1n, head + 1_000_000n, 2n ** 62n, -1n]) {
      const f = await failureOf(() => firstMessage(c.watchBalance({ accountId: w, afterSequence: after })));
      expect([after, f.codeName, f.reason]).toEqual([after, Code[Code.OutOfRange], "sequence_out_of_range"]);
    }
  });

  it("another tenant's account is not_found, and other accounts' changes never appear", async () => {
    const w = `w5-${p}`;
    const b = clientFor(LedgerService, server.url, p, bKey);
    await b.createAccount({ id: `b-only-${p}` });
    await b.createAccount({ id: w });
    const f = await failureOf(() => firstMessage(c.watchBalance({ accountId: `b-only-${p}` })));
    const g = await failureOf(() => firstMessage(c.watchBalance({ accountId: `nope-${p}` })));
    expect([f.codeName, f.reason, f.message.replace(`b-only-${p}`, "<id>")]).toEqual([Code[Code.NotFound], g.reason, g.message.replace(`nope-${p}`, "<id>")]);

    await c.createAccount({ id: w });
    await c.createAccount({ id: `other-${p}` });
    const s = new WatchStream(c, { accountId: w });
    try {
      snapshotOf(await s.next());
      // B's account of the same id, and another of A's accounts, both move first.
      await b.postTransfer({ idempotencyKey: `b-${w}`, debitAccountId: "@world", creditAccountId: w, asset: "USD", amount: 999n });
      await c.postTransfer({ idempotencyKey: `o-${w}`, debitAccountId: "@world", creditAccountId: `other-${p}`, asset: "USD", amount: 998n });
      const mine = await c.postTransfer({ idempotencyKey: `m-${w}`, debitAccountId: "@world", creditAccountId: w, asset: "USD", amount: 5n });
      const ch = changeOf(await s.next());
      expect([ch.transaction!.transferId, ch.delta, ch.balance!.posted]).toEqual([mine.transfer!.id, 5n, 5n]);
      expect(await s.within(300)).toBe(IDLE);
    } finally {
      s.close();
    }
  });

  it("pushes each change within 1 s of the write's acknowledgement", async () => {
    const w = `w6-${p}`;
    await c.createAccount({ id: w });
    const s = new WatchStream(c, { accountId: w });
    const arrivals = new Map<bigint, number>();
    let reading = true;
    try {
      snapshotOf(await s.next());
      // Timestamp each change as it lands, independently of the writes.
      const reader = (async () => {
        while (reading) {
          const m = await s.within(100).catch((): typeof IDLE => IDLE);
          if (m !== IDLE) arrivals.set(changeOf(m).sequence, performance.now());
        }
      })();
      const latencies: number[] = [];
      for (let i = 0; i < 10; i++) {
        // Idle gaps of varying length: a poller would show up as latency that tracks its interval.
        await new Promise((r) => setTimeout(r, rnd.int(20, 250)));
        const { transfer } = await c.postTransfer({ idempotencyKey: `${w}-${i}`, debitAccountId: "@world", creditAccountId: w, asset: "USD", amount: 1n });
        const acked = performance.now();
        const seq = transfer!.sequence;
        while (!arrivals.has(seq) && performance.now() - acked < 2000) await new Promise((r) => setTimeout(r, 1));
        expect(arrivals.has(seq), `change ${seq} never arrived`).toBe(true);
        latencies.push(Math.max(0, arrivals.get(seq)! - acked));
      }
      reading = false;
      await reader;
      const sorted = [...latencies].sort((x, y) => x - y);
      console.log(`${p}: change latency after ack: median ${sorted[5]!.toFixed(1)} ms, max ${sorted[9]!.toFixed(1)} ms`);
      for (const l of latencies) expect(l).toBeLessThan(1000);
      // Pushed, not polled: a poller with an interval of half a second or more would put the median well above this.
      expect(sorted[5]!).toBeLessThan(250);
    } finally {
      reading = false;
      s.close();
    }
  });
});

describe.each(WATCH_PROTOCOLS)("stream cap (streamsPerTenant: 3), over %s", (p) => {
  let capped: TestServer;
  let a: Ledger;
  let b: Ledger;
  let c: Ledger;
  beforeAll(async () => {
    capped = await startTestServer({ streamsPerTenant: 3 });
    const admin = clientFor(AdminService, capped.url, "connect-binary", capped.adminKey);
    a = clientFor(LedgerService, capped.url, p, capped.adminKey);
    b = clientFor(LedgerService, capped.url, p, (await admin.createTenant({ id: "cap-b" })).adminKeySecret);
    c = clientFor(LedgerService, capped.url, p, (await admin.createTenant({ id: "cap-c" })).adminKeySecret);
    for (const x of [a, b, c]) await x.createAccount({ id: "x" });
  });
  afterAll(async () => {
    await capped?.close();
  });

  /** Opens a stream and waits for its snapshot, so the server certainly holds its slot. */
  const open = async (client: Ledger) => {
    const s = new WatchStream(client, { accountId: "x" });
    snapshotOf(await s.next());
    return s;
  };
  /** Retries opening until a slot is free: a closed stream's slot is released when the server notices the disconnect. */
  const openWhenFree = async (client: Ledger, ms = 3000) => {
    const until = Date.now() + ms;
    for (;;) {
      try {
        return await open(client);
      } catch (e) {
        if (Date.now() > until) throw e;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };

  it("the 4th concurrent stream of a tenant is resource_exhausted, other tenants are unaffected, and closing one frees a slot", async () => {
    const lags: number[] = [];
    for (let cycle = 0; cycle < 3; cycle++) {
      const streams = [await openWhenFree(a), await openWhenFree(a), await openWhenFree(a)];
      const f = await failureOf(() => open(a));
      expect([f.codeName, f.reason]).toEqual([Code[Code.ResourceExhausted], "too_many_streams"]);
      // The cap is per tenant: B is not affected by A's streams.
      const other = await open(b);
      other.close();
      streams.shift()!.close();
      const t0 = performance.now();
      const again = await openWhenFree(a);
      lags.push(performance.now() - t0);
      // Back at the cap.
      expect((await failureOf(() => open(a))).codeName).toBe(Code[Code.ResourceExhausted]);
      for (const s of [...streams, again]) s.close();
    }
    console.log(`${p}: slot free again ${lags.map((l) => l.toFixed(0)).join(", ")} ms after a stream closed`);
  });

  it("streams that fail (not_found, out_of_range) give their slot back at once", async () => {
    // Tenant C has never had a stream; hold two so every probe below competes for the last slot.
    const held = [await open(c), await open(c)];
    try {
      for (let i = 0; i < 5; i++) {
        expect((await failureOf(() => firstMessage(c.watchBalance({ accountId: "missing" })))).codeName).toBe(Code[Code.NotFound]);
        expect((await failureOf(() => firstMessage(c.watchBalance({ accountId: "x", afterSequence: 2n ** 62n })))).codeName).toBe(Code[Code.OutOfRange]);
      }
      const third = await open(c);
      held.push(third);
      expect((await failureOf(() => open(c))).codeName).toBe(Code[Code.ResourceExhausted]);
    } finally {
      held.forEach((s) => s.close());
    }
  });
});

describe("server health after all of the above", () => {
  it("client disconnects are not logged as internal errors", async () => {
    // Disconnect while the server is busy writing a backlog: over HTTP/2 that is a
    // stream reset in the middle of a write, which is the client's doing, not a server fault.
    const w = "health-backlog";
    const c = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
    await c.createAccount({ id: w });
    await c.postTransfers({ transfers: Array.from({ length: 600 }, (_, i) => ({ idempotencyKey: `${w}-${i}`, debitAccountId: "@world", creditAccountId: w, asset: "USD", amount: 1n })) });
    for (const p of WATCH_PROTOCOLS) {
      for (let i = 0; i < 5; i++) {
        const s = new WatchStream(clientFor(LedgerService, server.url, p, server.adminKey), { accountId: w, afterSequence: 0n });
        await s.next();
        await s.next();
        s.close();
      }
    }
    await new Promise((r) => setTimeout(r, 300));
    const codes: Record<string, number> = {};
    for (const l of streamLog) codes[`${String(l["protocol"])}:${String(l["code"])}`] = (codes[`${String(l["protocol"])}:${String(l["code"])}`] ?? 0) + 1;
    console.log(`WatchBalance stream endings by protocol and code: ${JSON.stringify(codes)}; server errors logged: ${serverErrors.length}`);
    expect(streamLog.length).toBeGreaterThanOrEqual(15);
    expect(serverErrors.map((e) => `${e.msg}: ${String(e.fields?.["error"]).split("\n")[0]}`)).toEqual([]);
    expect(streamLog.filter((l) => l["code"] === "internal")).toEqual([]);
  });
});
