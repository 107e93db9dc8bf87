/**
 * T1 and T2-lite: many concurrent clients, each on its own connection, split
 * across Connect JSON, Connect binary and gRPC, against one real server.
 *
 * T1: debits racing on one account whose overdraft is forbidden. Whatever the
 * interleaving, the accepted debits never exceed the funds, the balance is
 * exactly the funds minus the accepted debits, and the server's order of the
 * accepted debits replays to exactly the balances it reported.
 * T2-lite: random transfers in both directions among 50 accounts: money is
 * conserved, no balance goes negative, Verify agrees with the journal.
 *
 * Every randomized run prints its seed; replay with TALLY_SEED=<seed>.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { AdminService } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService, TransferStatus } from "../gen/tally/ledger/v1/ledger_pb.js";
import type { Balance, Transfer } from "../gen/tally/ledger/v1/ledger_pb.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { Protocol, TestServer } from "./support/server.js";
import { allTransactions, parallel, randInt, refusalOf, rng, seedFor, uniq } from "./support/ledger-kit.js";
import type { AdminClient, LedgerClient } from "./support/ledger-kit.js";

/** The three surfaces the load is split across (T1/T2 harness convention). */
const LOAD_PROTOCOLS: readonly Protocol[] = ["connect-json", "connect-binary", "grpc"];

let server: TestServer;
let L: LedgerClient;
let admin: AdminClient;
let seed: number;

beforeAll(async () => {
  server = await startTestServer();
  L = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
  admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
  seed = seedFor("concurrency");
});
afterAll(async () => {
  await server?.close();
});

/** One client per worker, each with its own transport (and so its own connection). */
function loadClients(n: number): LedgerClient[] {
  return Array.from({ length: n }, (_, i) => clientFor(LedgerService, server.url, LOAD_PROTOCOLS[i % LOAD_PROTOCOLS.length]!, server.adminKey));
}

/** One operation of the history: a definite success or a definite refusal. */
interface Op {
  readonly worker: number;
  readonly amount: bigint;
  readonly transfer?: Transfer;
  readonly refusal?: string;
}

async function attempt(worker: number, amount: bigint, call: Promise<{ transfer?: Transfer }>): Promise<Op> {
  try {
    const res = await call;
    return { worker, amount, transfer: res.transfer! };
  } catch (e) {
    const r = refusalOf(e);
    return { worker, amount, refusal: `${Code[r.code]}/${r.reason ?? "-"}` };
  }
}

async function open(prefix: string, fund = 0n, opts: { overdraftUnlimited?: boolean } = {}): Promise<string> {
  const id = uniq(prefix);
  await L.createAccount({ id, ...opts });
  if (fund > 0n) await L.postTransfer({ idempotencyKey: uniq("fund"), debitAccountId: "@world", creditAccountId: id, asset: "USD", amount: fund });
  return id;
}

/**
 * A WatchBalance subscriber running in the background: every balance it was
 * shown (snapshot, then one per journal entry), in order.
 */
interface Watcher {
  readonly seen: Balance[];
  /** Resolves once `pred` holds for what was seen, or rejects after `ms`. */
  until(pred: (seen: readonly Balance[]) => boolean, ms?: number): Promise<void>;
  stop(): Promise<void>;
}

async function watch(accountId: string): Promise<Watcher> {
  const client = clientFor(LedgerService, server.url, "grpc", server.adminKey);
  const abort = new AbortController();
  const seen: Balance[] = [];
  let failure: unknown;
  let first!: () => void;
  const ready = new Promise<void>((r) => (first = r));
  const done = (async () => {
    try {
      for await (const ev of client.watchBalance({ accountId, asset: "USD" }, { signal: abort.signal })) {
        if (ev.event.case === "snapshot") seen.push(...ev.event.value.balances);
        else if (ev.event.case === "change") seen.push(ev.event.value.balance!);
        first();
      }
    } catch (e) {
      if (!abort.signal.aborted) failure = e;
    }
  })();
  await ready;
  return {
    seen,
    async until(pred, ms = 20_000) {
      const deadline = Date.now() + ms;
      while (!pred(seen)) {
        if (failure !== undefined) throw failure;
        if (Date.now() > deadline) throw new Error(`watcher: condition not met within ${ms} ms (saw ${seen.length} balances)`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async stop() {
      abort.abort();
      await done;
      if (failure !== undefined) throw failure;
    },
  };
}

function sum(xs: readonly bigint[]): bigint {
  return xs.reduce((s, x) => s + x, 0n);
}

describe("T1: concurrent debits on one account, overdraft forbidden", () => {
  it("32 clients x 100 random debits: accepted <= F, balance = F - accepted, never negative", async () => {
    const next = rng(seed ^ 0x7101);
    const K = 32;
    const M = 100;
    const F = 80_000n; // expected demand ~161,600: about half must be refused
    const x = await open("t1-x", F);
    const sink = await open("t1-sink");
    const watcher = await watch(x);
    const plan = Array.from({ length: K }, () => Array.from({ length: M }, () => BigInt(randInt(next, 1, 100))));
    const clients = loadClients(K);
    const started = performance.now();
    const ops = (
      await parallel(K, async (w) => {
        const out: Op[] = [];
        for (const [j, amount] of plan[w]!.entries()) {
          out.push(
            await attempt(
              w,
              amount,
              clients[w]!.postTransfer({ idempotencyKey: `t1-${seed}-${w}-${j}-${x}`, debitAccountId: x, creditAccountId: sink, asset: "USD", amount }),
            ),
          );
        }
        return out;
      })
    ).flat();
    const ms = performance.now() - started;
    const ok = ops.filter((o) => o.transfer);
    const refused = ops.filter((o) => o.refusal);
    const accepted = sum(ok.map((o) => o.amount));
    console.log(`[T1] seed=${seed} attempts ${ops.length}; accepted ${ok.length} (${accepted}); refused ${refused.length}; ${(ops.length / (ms / 1000)).toFixed(0)} req/s`);

    // Every op is definite, and every refusal is the defined one: no internal/unknown errors.
    expect(ok.length + refused.length).toBe(K * M);
    expect(refused.filter((o) => o.refusal !== "FailedPrecondition/insufficient_funds").map((o) => o.refusal)).toEqual([]);
    expect(refused.length).toBeGreaterThan(0);
    expect(accepted).toBeLessThanOrEqual(F);

    const b = (await L.getBalance({ accountId: x, asset: "USD" })).balance!;
    expect(b.posted).toBe(F - accepted);
    expect(b.posted).toBeGreaterThanOrEqual(0n);
    expect((await L.getBalance({ accountId: sink, asset: "USD" })).balance?.posted).toBe(accepted);
    // The balance only falls, so each refusal of `a` means the balance was already below `a`: it still is.
    const smallestRefused = refused.reduce((m, o) => (o.amount < m ? o.amount : m), 101n);
    expect(b.posted).toBeLessThan(smallestRefused);

    // The server's order of the accepted debits replays exactly to the balances it reported.
    const ordered = [...ok].sort((p, q) => (p.transfer!.sequence < q.transfer!.sequence ? -1 : 1));
    let running = F;
    for (const o of ordered) {
      running -= o.amount;
      expect(o.transfer!.debitBalanceAfter).toBe(running);
    }

    // The journal: exactly the accepted debits plus the funding, summing to the balance.
    const entries = await allTransactions(L, x);
    expect(entries).toHaveLength(ok.length + 1);
    expect(sum(entries.map((e) => e.amount))).toBe(b.posted);
    expect(new Set(entries.map((e) => e.transferId)).size).toBe(entries.length);
    const okIds = new Set(ok.map((o) => o.transfer!.id));
    expect(entries.filter((e) => okIds.has(e.transferId))).toHaveLength(ok.length);
    expect(entries.every((e) => e.balanceAfter >= 0n)).toBe(true);

    // A subscriber saw every change, and never a negative balance.
    await watcher.until((seen) => seen.length >= ok.length + 1);
    await watcher.stop();
    expect(watcher.seen).toHaveLength(ok.length + 1);
    expect(watcher.seen.every((s) => s.posted >= 0n && s.available >= 0n)).toBe(true);
    expect(watcher.seen.at(-1)!.posted).toBe(b.posted);
  });

  it("exact boundary: F = 50 x N, debits of 50: exactly N succeed, then a debit of 1 fails", async () => {
    const K = 32;
    const N = 32 * 30;
    const extra = 2; // attempts per client beyond the N that fit
    const F = 50n * BigInt(N);
    const x = await open("t1b-x", F);
    const sink = await open("t1b-sink");
    const clients = loadClients(K);
    const ops = (
      await parallel(K, async (w) => {
        const out: Op[] = [];
        for (let j = 0; j < N / K + extra; j++) {
          out.push(await attempt(w, 50n, clients[w]!.postTransfer({ idempotencyKey: `t1b-${w}-${j}-${x}`, debitAccountId: x, creditAccountId: sink, asset: "USD", amount: 50n })));
        }
        return out;
      })
    ).flat();
    const ok = ops.filter((o) => o.transfer);
    const refused = ops.filter((o) => o.refusal);
    console.log(`[T1 boundary] attempts ${ops.length}; accepted ${ok.length}; refused ${refused.length}`);
    expect(ok).toHaveLength(N);
    expect(refused).toHaveLength(K * extra);
    expect(refused.every((o) => o.refusal === "FailedPrecondition/insufficient_funds")).toBe(true);
    expect((await L.getBalance({ accountId: x, asset: "USD" })).balance?.posted).toBe(0n);
    const one = await attempt(0, 1n, L.postTransfer({ idempotencyKey: uniq("t1b-one"), debitAccountId: x, creditAccountId: sink, asset: "USD", amount: 1n }));
    expect(one.refusal).toBe("FailedPrecondition/insufficient_funds");
    expect((await L.getBalance({ accountId: x, asset: "USD" })).balance?.posted).toBe(0n);
    expect(await allTransactions(L, x)).toHaveLength(N + 1);
  });

  it("holds: pending debits of 50 against F: exactly F/50 accepted, available never < 0, then all posted", async () => {
    const K = 32;
    const H = 400; // holds that fit
    const perClient = 16; // 512 attempts
    const F = 50n * BigInt(H);
    const x = await open("t1h-x", F);
    const sink = await open("t1h-sink");
    const watcher = await watch(x);
    const clients = loadClients(K);
    // A reader sampling the balance while the holds race.
    let sampling = true;
    const samples: Balance[] = [];
    const sampler = (async () => {
      while (sampling) samples.push((await L.getBalance({ accountId: x, asset: "USD" })).balance!);
    })();
    const ops = (
      await parallel(K, async (w) => {
        const out: Op[] = [];
        for (let j = 0; j < perClient; j++) {
          out.push(
            await attempt(
              w,
              50n,
              clients[w]!.postTransfer({ idempotencyKey: `t1h-${w}-${j}-${x}`, debitAccountId: x, creditAccountId: sink, asset: "USD", amount: 50n, pending: true }),
            ),
          );
        }
        return out;
      })
    ).flat();
    sampling = false;
    await sampler;
    const ok = ops.filter((o) => o.transfer);
    const refused = ops.filter((o) => o.refusal);
    console.log(`[T1 holds] attempts ${ops.length}; accepted ${ok.length}; refused ${refused.length}; balance samples ${samples.length}`);
    expect(ok).toHaveLength(H);
    expect(refused.every((o) => o.refusal === "FailedPrecondition/insufficient_funds")).toBe(true);
    expect(ok.every((o) => o.transfer!.status === TransferStatus.PENDING)).toBe(true);
    expect(samples.length).toBeGreaterThan(0);
    for (const s of samples) {
      expect(s.available).toBeGreaterThanOrEqual(0n);
      expect(s.posted).toBe(F);
      expect(s.available).toBe(s.posted - s.pendingOut);
    }
    const held = (await L.getBalance({ accountId: x, asset: "USD" })).balance!;
    expect([held.posted, held.pendingOut, held.available]).toEqual([F, F, 0n]);
    expect((await L.getBalance({ accountId: sink, asset: "USD" })).balance?.pendingIn).toBe(F);

    // Post every hold, each twice at once (a retried post): one settlement each.
    const ids = ok.map((o) => o.transfer!.id);
    const posts = await parallel(K, async (w) => {
      const out: [Transfer, Transfer][] = [];
      for (let i = w; i < ids.length; i += K) {
        const [p, q] = await Promise.all([
          clients[w]!.postPendingTransfer({ transferId: ids[i]! }),
          clients[(w + 1) % K]!.postPendingTransfer({ transferId: ids[i]! }),
        ]);
        out.push([p.transfer!, q.transfer!]);
      }
      return out;
    });
    for (const [p, q] of posts.flat()) {
      expect(p.status).toBe(TransferStatus.POSTED);
      expect(p.postedAmount).toBe(50n);
      expect(q).toEqual(p);
    }
    const final = (await L.getBalance({ accountId: x, asset: "USD" })).balance!;
    expect([final.posted, final.pendingOut, final.available]).toEqual([0n, 0n, 0n]);
    const s = (await L.getBalance({ accountId: sink, asset: "USD" })).balance!;
    expect([s.posted, s.pendingIn]).toEqual([F, 0n]);

    // The subscriber saw the funding, H holds and H settlements, and never a negative available.
    await watcher.until((seen) => seen.length >= 1 + 2 * H);
    await watcher.stop();
    expect(watcher.seen).toHaveLength(1 + 2 * H);
    expect(watcher.seen.every((b) => b.available >= 0n && b.posted >= 0n)).toBe(true);
    expect(await allTransactions(L, x)).toHaveLength(1 + 2 * H);
  });
});

describe("settlement races", () => {
  it("post and void racing on the same holds: exactly one settles each, balances follow the winner", async () => {
    const HOLDS = 96;
    const x = await open("race-x", 100n * BigInt(HOLDS));
    const sink = await open("race-sink");
    const holds: Transfer[] = [];
    for (let i = 0; i < HOLDS; i++) {
      holds.push((await L.postTransfer({ idempotencyKey: uniq("race"), debitAccountId: x, creditAccountId: sink, asset: "USD", amount: 100n, pending: true })).transfer!);
    }
    const clients = loadClients(3);
    const results = await parallel(HOLDS, async (i) => {
      const id = holds[i]!.id;
      // Alternate who is sent first, so both orders happen.
      const post = attempt(i, 100n, clients[i % 3]!.postPendingTransfer({ transferId: id, amount: i % 2 === 0 ? 0n : 60n }));
      const voided = attempt(i, 100n, clients[(i + 1) % 3]!.voidPendingTransfer({ transferId: id }));
      return Promise.all(i % 3 === 0 ? [voided, post] : [post, voided]);
    });
    let moved = 0n;
    let posted = 0;
    for (const [i, pair] of results.entries()) {
      const oks = pair.filter((o) => o.transfer);
      const refusals = pair.filter((o) => o.refusal).map((o) => o.refusal);
      // One wins; the other is refused as no longer pending.
      expect(oks, `hold ${i}`).toHaveLength(1);
      expect(refusals).toEqual(["FailedPrecondition/transfer_not_pending"]);
      const final = (await L.getTransfer({ id: holds[i]!.id })).transfer!;
      expect(final.status).toBe(oks[0]!.transfer!.status);
      if (final.status === TransferStatus.POSTED) {
        posted++;
        moved += final.postedAmount;
      } else expect(final.status).toBe(TransferStatus.VOIDED);
    }
    console.log(`[settlement race] ${HOLDS} holds: posted ${posted}, voided ${HOLDS - posted}`);
    // Both orders were sent, so both outcomes must occur (else the race was not exercised).
    expect(posted).toBeGreaterThan(0);
    expect(posted).toBeLessThan(HOLDS);
    const b = (await L.getBalance({ accountId: x, asset: "USD" })).balance!;
    expect([b.posted, b.pendingOut]).toEqual([100n * BigInt(HOLDS) - moved, 0n]);
    const s = (await L.getBalance({ accountId: sink, asset: "USD" })).balance!;
    expect([s.posted, s.pendingIn]).toEqual([moved, 0n]);
    // Each hold has exactly its pending entry and one settlement entry on the debit side.
    expect(await allTransactions(L, x)).toHaveLength(1 + 2 * HOLDS);
  });
});

describe("T2-lite: transfers among many accounts in both directions", () => {
  it("16 clients x 300 random transfers among 50 accounts: conserved, never negative, Verify ok", async () => {
    const next = rng(seed ^ 0x7202);
    const ACCOUNTS = 50;
    const FUND = 2_000n; // low enough that random walks hit zero and get refused
    const K = 16;
    const M = 300;
    const ids: string[] = [];
    for (let i = 0; i < ACCOUNTS; i++) ids.push(await open(`t2-${String(i).padStart(2, "0")}`, FUND));
    const total = FUND * BigInt(ACCOUNTS);
    // Pre-draw every op from the seed so the run is reproducible whatever the interleaving.
    type Plan = { from: number; to: number; amount: bigint; batchBack: boolean };
    const plans: Plan[][] = Array.from({ length: K }, () => {
      const recent: [number, number][] = [];
      return Array.from({ length: M }, () => {
        let from: number;
        let to: number;
        if (recent.length > 0 && next() < 0.3) {
          // Reverse a recent pair: provokes A->B / B->A lock inversion.
          [to, from] = recent[randInt(next, 0, recent.length - 1)]!;
        } else {
          from = randInt(next, 0, ACCOUNTS - 1);
          to = (from + randInt(next, 1, ACCOUNTS - 1)) % ACCOUNTS;
        }
        recent.push([from, to]);
        if (recent.length > 10) recent.shift();
        return { from, to, amount: BigInt(randInt(next, 1, 500)), batchBack: next() < 0.1 };
      });
    });
    const clients = loadClients(K);
    const delta = new Array<bigint>(ACCOUNTS).fill(0n);
    const errors: string[] = [];
    let accepted = 0;
    let refusedCount = 0;
    let verifies = 0;
    let done = 0;
    const verifyFailures: string[] = [];
    const started = performance.now();
    await parallel(K, async (w) => {
      for (const [j, p] of plans[w]!.entries()) {
        const key = `t2-${seed}-${w}-${j}-${ids[0]}`;
        try {
          if (p.batchBack) {
            // An atomic pair in opposite directions: both or neither.
            const back = p.amount / 2n + 1n;
            await clients[w]!.postTransfers({
              transfers: [
                { idempotencyKey: key, debitAccountId: ids[p.from]!, creditAccountId: ids[p.to]!, asset: "USD", amount: p.amount },
                { idempotencyKey: `${key}-back`, debitAccountId: ids[p.to]!, creditAccountId: ids[p.from]!, asset: "USD", amount: back },
              ],
            });
            delta[p.from] = delta[p.from]! - p.amount + back;
            delta[p.to] = delta[p.to]! + p.amount - back;
          } else {
            await clients[w]!.postTransfer({ idempotencyKey: key, debitAccountId: ids[p.from]!, creditAccountId: ids[p.to]!, asset: "USD", amount: p.amount });
            delta[p.from] = delta[p.from]! - p.amount;
            delta[p.to] = delta[p.to]! + p.amount;
          }
          accepted++;
        } catch (e) {
          const r = refusalOf(e);
          if (r.code === Code.FailedPrecondition && r.reason === "insufficient_funds") refusedCount++;
          else errors.push(`${Code[r.code]}/${r.reason}: ${r.error.rawMessage}`);
        }
        // Sample the books every 500 ops, mid-run: Verify reads one consistent snapshot.
        if (++done % 500 === 0) {
          verifies++;
          const v = await admin.verify({});
          if (!v.ok) verifyFailures.push(JSON.stringify(v.discrepancies.map((d) => [d.accountId, d.field, String(d.stored), String(d.recomputed)])));
        }
      }
    });
    const ms = performance.now() - started;
    console.log(
      `[T2] seed=${seed} transfers ${K * M}; accepted ${accepted}; refused ${refusedCount}; mid-run verifies ${verifies}; ${((K * M) / (ms / 1000)).toFixed(0)} req/s`,
    );
    expect(errors).toEqual([]);
    expect(verifyFailures).toEqual([]);
    expect(accepted + refusedCount).toBe(K * M);
    expect(accepted).toBeGreaterThan(K * M * 0.5);
    expect(refusedCount).toBeGreaterThan(0);

    const balances = await Promise.all(ids.map(async (id) => (await L.getBalance({ accountId: id, asset: "USD" })).balance!));
    expect(sum(balances.map((b) => b.posted))).toBe(total);
    expect(balances.filter((b) => b.posted < 0n || b.available < 0n).map((b) => b.accountId)).toEqual([]);
    // Each balance is exactly what the accepted ops add up to...
    expect(balances.map((b) => b.posted)).toEqual(delta.map((d) => FUND + d));
    // ...and exactly the sum of its journal.
    for (const b of balances) {
      const entries = await allTransactions(L, b.accountId);
      expect(sum(entries.map((e) => e.amount))).toBe(b.posted);
      expect(entries.every((e) => e.balanceAfter >= 0n)).toBe(true);
    }
    const v = await admin.verify({});
    expect(v.discrepancies).toEqual([]);
    expect(v.ok).toBe(true);
  });
});
