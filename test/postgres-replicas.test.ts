/**
 * Issue 5, "Done when" #2: two stateless replicas on one PostgreSQL schema.
 *
 * Two `tally serve --database` processes (A and B) share one schema. 32
 * clients, 16 per replica, split across Connect JSON, Connect binary and gRPC,
 * each on its own transport, run at the same time:
 * - T1: debits racing on one account X whose overdraft is forbidden, sized so
 *   that about half must be refused;
 * - T2: random transfers in both directions among 100 accounts, 30% of them
 *   reversing a recent pair so that lock orders invert.
 * Row locks must serialize the replicas: no client may ever see a deadlock,
 * serialization failure, INTERNAL or UNKNOWN; the books must balance exactly;
 * and a WatchBalance subscriber on B must see every change made through A and
 * B exactly once, in order (LISTEN/NOTIFY wakes it across processes).
 *
 * The run prints its seed; replay with TALLY_SEED=<seed>.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import type { BalanceChange, Transaction, Transfer } from "../gen/tally/ledger/v1/ledger_pb.js";
import { clientFor } from "./support/server.js";
import type { Protocol } from "./support/server.js";
import { freshPgUrl } from "./support/postgres.js";
import { parallel, randInt, rng, seedFor, uniq } from "./support/ledger-kit.js";
import type { LedgerClient } from "./support/ledger-kit.js";
import { BalanceRecorder, diagnose, journal, outcomeOf, spawnPgReplica, sum } from "./support/replica-kit.js";
import type { PgReplica } from "./support/replica-kit.js";

/** The three surfaces the load is split across (T1/T2 harness convention). */
const LOAD_PROTOCOLS: readonly Protocol[] = ["connect-json", "connect-binary", "grpc"];
const INSUFFICIENT = "FailedPrecondition/insufficient_funds";

let A: PgReplica | undefined;
let B: PgReplica | undefined;
let key: string;

beforeAll(async () => {
  const url = freshPgUrl("replicas");
  // A first: it creates the schema and the default tenant, and prints its key.
  A = await spawnPgReplica(url);
  if (A.adminKey === undefined) throw new Error(`replica A printed no admin key on a fresh schema:\n${A.output()}`);
  key = A.adminKey;
  B = await spawnPgReplica(url);
}, 60_000);

afterAll(async () => {
  // The servers log only errors; show them, since they explain a failure here.
  for (const [name, r] of [["A", A], ["B", B]] as const) {
    const d = diagnose(`replica ${name}`, r);
    if (d !== undefined) console.log(d);
  }
  await Promise.all([A?.close(), B?.close()]);
});

/** One client of the load: its replica, protocol and own transport. */
interface LoadClient {
  readonly via: "A" | "B";
  readonly protocol: Protocol;
  readonly ledger: LedgerClient;
}

type PlannedOp = { readonly kind: "t1"; readonly amount: bigint } | { readonly kind: "t2"; readonly from: number; readonly to: number; readonly amount: bigint };

/** An accepted T1 debit of X. */
interface Debit {
  readonly via: "A" | "B";
  readonly amount: bigint;
  readonly transfer: Transfer;
}

/**
 * Asserts that a subscriber saw exactly the account's journal: every entry
 * once, in journal order (so strictly increasing sequences), each change
 * consistent with the one before it.
 */
function expectSawJournal(changes: readonly BalanceChange[], entries: readonly Transaction[], accountId: string): void {
  expect(changes.map((c) => c.sequence)).toEqual(entries.map((e) => e.sequence));
  expect(changes.map((c) => c.transaction?.transferId)).toEqual(entries.map((e) => e.transferId));
  for (let i = 1; i < changes.length; i++) expect(changes[i]!.sequence, `change ${i}`).toBeGreaterThan(changes[i - 1]!.sequence);
  let posted = 0n;
  for (const c of changes) {
    posted += c.delta;
    expect(c.balance?.accountId).toBe(accountId);
    expect(c.balance?.posted, `change ${c.sequence}`).toBe(posted);
    expect(c.balance?.posted).toBe(c.transaction?.balanceAfter);
  }
}

describe("two replicas on one PostgreSQL schema", () => {
  it("32 clients over A and B (T1 debits on one account + T2 transfers among 100): only OK or insufficient_funds, exact books, Verify ok, B's watcher sees every change once in order", async () => {
    const seed = seedFor("postgres-replicas");
    const next = rng(seed);
    const K = 32;
    // Sized for about 30 s on 2 cores: X's debits serialize on its row lock.
    const T1_PER_CLIENT = 30;
    const T2_PER_CLIENT = 30;
    // Demand is about 32 x 30 x 50.5 = 48,500: about half of the debits must be refused.
    const F = 24_000n;
    const ACCOUNTS = 100;
    // Low enough that random walks reach zero and get refused too.
    const FUND = 1_000n;

    const LA = clientFor(LedgerService, A!.url, "connect-binary", key);
    const LB = clientFor(LedgerService, B!.url, "connect-binary", key);
    const x = uniq("x");
    const sink = uniq("sink");
    const ids = Array.from({ length: ACCOUNTS }, (_, i) => uniq(`t2-${String(i).padStart(2, "0")}`));
    // Half the accounts are created through each replica: both write the same schema.
    await parallel(8, async (w) => {
      const all = [x, sink, ...ids];
      for (let i = w; i < all.length; i += 8) await (i % 2 === 0 ? LA : LB).createAccount({ id: all[i]! });
    });

    // Subscribers on B, started before anything moved, see the funding as their first change.
    const watchX = await BalanceRecorder.start({ url: B!.url, protocol: "grpc", key, accountId: x });
    const watchY = await BalanceRecorder.start({ url: B!.url, protocol: "connect-binary", key, accountId: ids[0]! });
    expect(watchX.lastBalance?.posted).toBe(0n);

    // Funding goes through A only, with nothing happening on B: only the
    // PostgreSQL notification can wake B's watcher, well before the feed's
    // 10 s safety wake.
    const fundLatency: number[] = [];
    for (const [acct, amount, w] of [[x, F, watchX], [ids[0]!, FUND, watchY]] as const) {
      const t0 = performance.now();
      await LA.postTransfer({ idempotencyKey: uniq("fund"), debitAccountId: "@world", creditAccountId: acct, asset: "USD", amount });
      await w.until((c) => c.length >= 1, 15_000);
      fundLatency.push(performance.now() - t0);
    }
    console.log(`[replicas] A -> B watcher latency of the funding: ${fundLatency.map((ms) => ms.toFixed(0)).join(", ")} ms`);
    expect(Math.max(...fundLatency)).toBeLessThan(2000);
    await parallel(8, async (w) => {
      for (let i = 1 + w; i < ACCOUNTS; i += 8) {
        await (i % 2 === 0 ? LA : LB).postTransfer({ idempotencyKey: uniq("fund"), debitAccountId: "@world", creditAccountId: ids[i]!, asset: "USD", amount: FUND });
      }
    });

    // Pre-draw every op from the seed so the run is reproducible whatever the interleaving.
    const plans: PlannedOp[][] = Array.from({ length: K }, () => {
      const recent: [number, number][] = [];
      const ops: PlannedOp[] = [];
      for (let j = 0; j < T1_PER_CLIENT; j++) ops.push({ kind: "t1", amount: BigInt(randInt(next, 1, 100)) });
      for (let j = 0; j < T2_PER_CLIENT; j++) {
        let from: number;
        let to: number;
        if (recent.length > 0 && next() < 0.3) {
          // Reverse a recent pair: A->B racing B->A provokes lock inversion.
          [to, from] = recent[randInt(next, 0, recent.length - 1)]!;
        } else {
          from = randInt(next, 0, ACCOUNTS - 1);
          to = (from + randInt(next, 1, ACCOUNTS - 1)) % ACCOUNTS;
        }
        recent.push([from, to]);
        if (recent.length > 10) recent.shift();
        ops.push({ kind: "t2", from, to, amount: BigInt(randInt(next, 1, 300)) });
      }
      // Interleave T1 and T2 within each client (Fisher-Yates with the seeded PRNG).
      for (let i = ops.length - 1; i > 0; i--) {
        const j = randInt(next, 0, i);
        [ops[i], ops[j]] = [ops[j]!, ops[i]!];
      }
      return ops;
    });
    // Even clients on A, odd on B; each replica gets all three protocols.
    const clients: LoadClient[] = Array.from({ length: K }, (_, i) => {
      const via = i % 2 === 0 ? "A" : "B";
      const protocol = LOAD_PROTOCOLS[Math.floor(i / 2) % LOAD_PROTOCOLS.length]!;
      return { via, protocol, ledger: clientFor(LedgerService, (via === "A" ? A! : B!).url, protocol, key) };
    });

    const debits: Debit[] = [];
    let t1Refused = 0;
    let t2Accepted = 0;
    let t2Refused = 0;
    const delta = new Array<bigint>(ACCOUNTS).fill(0n);
    const unexpected: string[] = [];
    const started = performance.now();
    await parallel(K, async (w) => {
      const c = clients[w]!;
      for (const [j, op] of plans[w]!.entries()) {
        const idempotencyKey = `rep-${seed}-${w}-${j}-${x}`;
        try {
          if (op.kind === "t1") {
            const res = await c.ledger.postTransfer({ idempotencyKey, debitAccountId: x, creditAccountId: sink, asset: "USD", amount: op.amount });
            debits.push({ via: c.via, amount: op.amount, transfer: res.transfer! });
          } else {
            await c.ledger.postTransfer({ idempotencyKey, debitAccountId: ids[op.from]!, creditAccountId: ids[op.to]!, asset: "USD", amount: op.amount });
            delta[op.from] = delta[op.from]! - op.amount;
            delta[op.to] = delta[op.to]! + op.amount;
            t2Accepted++;
          }
        } catch (e) {
          const outcome = outcomeOf(e);
          if (outcome !== INSUFFICIENT) unexpected.push(`${op.kind} via ${c.via}/${c.protocol}: ${outcome}: ${e instanceof Error ? e.message : String(e)}`);
          else if (op.kind === "t1") t1Refused++;
          else t2Refused++;
        }
      }
    });
    const ms = performance.now() - started;
    const accepted = sum(debits.map((d) => d.amount));
    const viaA = debits.filter((d) => d.via === "A").length;
    console.log(
      `[replicas] seed=${seed} ${K * (T1_PER_CLIENT + T2_PER_CLIENT)} calls in ${ms.toFixed(0)} ms (${((K * (T1_PER_CLIENT + T2_PER_CLIENT)) / (ms / 1000)).toFixed(0)} req/s); ` +
        `T1 accepted ${debits.length} (${accepted}; ${viaA} via A) refused ${t1Refused}; T2 accepted ${t2Accepted} refused ${t2Refused}; unexpected ${unexpected.length}`,
    );

    // Definite outcomes only: a deadlock or serialization failure must be retried
    // inside the server, never reach a client (nor INTERNAL/UNKNOWN/ABORTED).
    expect(unexpected.slice(0, 20)).toEqual([]);
    expect(debits.length + t1Refused).toBe(K * T1_PER_CLIENT);
    expect(t2Accepted + t2Refused).toBe(K * T2_PER_CLIENT);
    // Both outcomes happened on X, and both replicas got debits through: the race was real.
    expect(t1Refused).toBeGreaterThan(0);
    expect(viaA).toBeGreaterThan(0);
    expect(debits.length - viaA).toBeGreaterThan(0);
    expect(accepted).toBeLessThanOrEqual(F);

    // T1: X is exactly the funds minus the accepted debits (read through the other replica too).
    const finalX = (await LB.getBalance({ accountId: x, asset: "USD" })).balance!;
    expect(finalX.posted).toBe(F - accepted);
    expect(finalX.posted).toBeGreaterThanOrEqual(0n);
    expect((await LA.getBalance({ accountId: x, asset: "USD" })).balance?.posted).toBe(finalX.posted);
    expect((await LA.getBalance({ accountId: sink, asset: "USD" })).balance?.posted).toBe(accepted);
    // One global order across both replicas: replaying the debits by sequence gives the balances they reported.
    const ordered = [...debits].sort((p, q) => (p.transfer.sequence < q.transfer.sequence ? -1 : p.transfer.sequence > q.transfer.sequence ? 1 : 0));
    let running = F;
    for (const d of ordered) {
      running -= d.amount;
      expect(d.transfer.debitBalanceAfter, `debit at sequence ${d.transfer.sequence}`).toBe(running);
    }

    // T2: conserved, never negative, each balance exactly what its accepted transfers add up to.
    const balances = await Promise.all(ids.map(async (id, i) => (await (i % 2 === 0 ? LA : LB).getBalance({ accountId: id, asset: "USD" })).balance!));
    expect(balances.filter((b) => b.posted < 0n || b.available < 0n).map((b) => `${b.accountId}=${b.posted}`)).toEqual([]);
    expect(sum(balances.map((b) => b.posted))).toBe(FUND * BigInt(ACCOUNTS));
    expect(balances.map((b) => b.posted)).toEqual(delta.map((d) => FUND + d));

    // Verify through each replica: every balance equals its journal, every asset sums to zero.
    for (const r of [A!, B!]) {
      const v = await clientFor(AdminService, r.url, "grpc", key).verify({});
      expect(v.discrepancies.map((d) => `${d.accountId}/${d.asset} ${d.field}: ${d.stored} != ${d.recomputed}`)).toEqual([]);
      expect(v.ok).toBe(true);
      expect(v.accountsChecked).toBeGreaterThanOrEqual(BigInt(ACCOUNTS + 2));
    }

    // B's subscriber on X: the funding plus every accepted debit, whichever replica took it.
    const entriesX = await journal(LA, x);
    expect(entriesX).toHaveLength(debits.length + 1);
    await watchX.until((c) => c.length >= entriesX.length, 20_000);
    const entriesY = await journal(LA, ids[0]!);
    await watchY.until((c) => c.length >= entriesY.length, 20_000);
    await Promise.all([watchX.stop(), watchY.stop()]);
    expectSawJournal(watchX.changes, entriesX, x);
    const seenIds = new Set(watchX.changes.map((c) => c.transaction?.transferId));
    expect(debits.filter((d) => d.via === "A" && !seenIds.has(d.transfer.id)).map((d) => d.transfer.id)).toEqual([]);
    expect(watchX.lastBalance?.posted).toBe(finalX.posted);
    expect(watchX.lastBalance?.sequence).toBe(finalX.sequence);
    // The subscriber on one of the 100 accounts, written by both replicas in both directions.
    expectSawJournal(watchY.changes, entriesY, ids[0]!);
    expect(watchY.lastBalance?.posted).toBe(balances[0]!.posted);
    console.log(`[replicas] watcher on X saw ${watchX.changes.length} changes, watcher on ${ids[0]} saw ${watchY.changes.length}`);
    // Room for a loaded machine (other test files run beside this one); alone it takes about 30 s.
  }, 120_000);
});
