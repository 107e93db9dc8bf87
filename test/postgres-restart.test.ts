/**
 * Issue 5, "Done when" #3: the server survives losing its database connections.
 *
 * One `tally serve --database` process S whose URL carries an
 * application_name, so that the test can find its backends in
 * pg_stat_activity and terminate them (as a PostgreSQL restart or failover
 * would) while 16 clients post transfers and read balances. What must hold:
 * - a call in flight at a kill fails with UNAVAILABLE, never INTERNAL/UNKNOWN;
 * - retrying it with the same idempotency key and body eventually succeeds and
 *   applies it exactly once;
 * - the books stay exact (balances, Verify), and the same process serves new
 *   calls normally afterwards, without a restart;
 * - the balance feed's LISTEN connection comes back: a watcher on S is woken
 *   by a commit made through another process W (different application_name,
 *   never killed) after its listener was killed.
 *
 * PostgreSQL itself is not restarted: that would break the other test files
 * sharing the server.
 *
 * The run prints its seed; replay with TALLY_SEED=<seed>.
 */
import { randomBytes } from "node:crypto";
import type pg from "pg";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import type { PostTransferRequestSchema, Transfer } from "../gen/tally/ledger/v1/ledger_pb.js";
import { clientFor } from "./support/server.js";
import type { Protocol } from "./support/server.js";
import { freshPgUrl } from "./support/postgres.js";
import { parallel, randInt, rng, seedFor, uniq } from "./support/ledger-kit.js";
import type { LedgerClient } from "./support/ledger-kit.js";
import { BalanceRecorder, backendsOf, diagnose, eventually, journal, killBackends, listenerOf, outcomeOf, pgProbe, sleep, spawnPgReplica, sum } from "./support/replica-kit.js";
import type { PgReplica } from "./support/replica-kit.js";

const LOAD_PROTOCOLS: readonly Protocol[] = ["connect-json", "connect-binary", "grpc"];

const suffix = randomBytes(4).toString("hex");
/** S's connections are named by this; the kills select on it. */
const APP = `tally_restart_${suffix}`;
let schema: string;
let S: PgReplica | undefined;
/** A second process on the same schema whose connections are never killed. */
let W: PgReplica | undefined;
let probe: pg.Client | undefined;
let key: string;
let L: LedgerClient;
let LW: LedgerClient;

beforeAll(async () => {
  const base = freshPgUrl("restart");
  schema = new URL(base).searchParams.get("schema")!;
  S = await spawnPgReplica(`${base}&application_name=${APP}`);
  if (S.adminKey === undefined) throw new Error(`S printed no admin key on a fresh schema:\n${S.output()}`);
  key = S.adminKey;
  W = await spawnPgReplica(`${base}&application_name=${APP}_w`);
  probe = await pgProbe();
  L = clientFor(LedgerService, S.url, "connect-binary", key);
  LW = clientFor(LedgerService, W.url, "connect-binary", key);
}, 60_000);

afterAll(async () => {
  for (const [name, r] of [["S", S], ["W", W]] as const) {
    const d = diagnose(`replica ${name}`, r);
    if (d !== undefined) console.log(d);
  }
  await probe?.end().catch(() => {});
  await Promise.all([S?.close(), W?.close()]);
});

type TransferBody = MessageInitShape<typeof PostTransferRequestSchema>;

/** A failed attempt: its code/reason, when (ms into the load), and whether the connection died during COMMIT. */
interface Failure {
  readonly outcome: string;
  readonly at: number;
  readonly inCommit: boolean;
}

/** One idempotency key's history: the body sent every time, and what came back. */
interface KeyRecord {
  readonly body: TransferBody & { idempotencyKey: string; debitAccountId: string; creditAccountId: string; amount: bigint };
  readonly failures: Failure[];
  transfer?: Transfer;
}

describe("losing the database connections", () => {
  it("the server's backends carry the URL's application_name, the feed's LISTEN connection among them", async () => {
    const backends = await eventually("S's backends", () => backendsOf(probe!, APP), (b) => b.length > 0);
    const listener = listenerOf(backends, schema);
    console.log(`[restart] ${backends.length} backends named ${APP}: ${backends.map((b) => `${b.pid} ${b.state} ${b.query.slice(0, 40)}`).join(" | ")}`);
    expect(listener, `no LISTEN backend named ${APP}: the feed does not pass application_name through`).toBeDefined();
    // W's connections are named apart, so killing S's never touches W.
    expect(await backendsOf(probe!, `${APP}_w`)).not.toHaveLength(0);
  });

  it("16 clients while S's backends are killed 5 times: in-flight calls fail UNAVAILABLE only, same-key retries apply each transfer exactly once, books exact, same process serves on", async () => {
    const seed = seedFor("postgres-restart");
    const next = rng(seed);
    const pid = S!.child.pid;
    const K = 16;
    const ACCOUNTS = 8;
    // Large enough that no transfer is ever refused: every key must end in a success.
    const FUND = 1_000_000_000n;
    const ids = Array.from({ length: ACCOUNTS }, (_, i) => uniq(`rs-${i}`));
    for (const id of ids) await L.createAccount({ id });
    // Watching before the funding: the recorder must see the whole journal of ids[0].
    const watcher = await BalanceRecorder.start({ url: S!.url, protocol: "grpc", key, accountId: ids[0]!, resume: true });
    for (const id of ids) await L.postTransfer({ idempotencyKey: uniq("fund"), debitAccountId: "@world", creditAccountId: id, asset: "USD", amount: FUND });

    const clients = Array.from({ length: K }, (_, i) => clientFor(LedgerService, S!.url, LOAD_PROTOCOLS[i % LOAD_PROTOCOLS.length]!, key));
    const records: KeyRecord[] = [];
    const readFailures: Failure[] = [];
    const gaveUp: string[] = [];
    let stop = false;
    const started = Date.now();
    const dead = () => S!.child.exitCode !== null || S!.child.signalCode !== null;
    /** Calls until it succeeds, recording each failure; undefined after about 15 s of failures (the test then fails). */
    const retrying = async <T,>(call: () => Promise<T>, failures: Failure[]): Promise<T | undefined> => {
      for (let attempt = 1; attempt <= 40; attempt++) {
        // A dead server answers nothing again: stop at once, the liveness check below says why.
        if (dead()) return undefined;
        try {
          return await call();
        } catch (e) {
          failures.push({ outcome: outcomeOf(e), at: Date.now() - started, inCommit: e instanceof Error && e.message.includes("while committing") });
          await sleep(Math.min(50 * attempt, 500));
        }
      }
      return undefined;
    };
    const load = parallel(K, async (w) => {
      // One PRNG per client, so that each client's sequence of bodies replays from the seed.
      const draw = rng((seed + Math.imul(w + 1, 0x9e3779b9)) >>> 0);
      // Stops when S is dead too: a retry loop that returns at once would otherwise spin without yielding.
      for (let j = 0; !stop && !dead(); j++) {
        const from = randInt(draw, 0, ACCOUNTS - 1);
        const to = (from + randInt(draw, 1, ACCOUNTS - 1)) % ACCOUNTS;
        // The key and body are fixed before the first send: every retry resends exactly this.
        const rec: KeyRecord = {
          body: { idempotencyKey: `rs-${seed}-${w}-${j}-${ids[0]}`, debitAccountId: ids[from]!, creditAccountId: ids[to]!, asset: "USD", amount: BigInt(randInt(draw, 1, 1000)) },
          failures: [],
        };
        records.push(rec);
        const t = await retrying(() => clients[w]!.postTransfer(rec.body), rec.failures);
        if (t === undefined) gaveUp.push(rec.body.idempotencyKey);
        else rec.transfer = t.transfer!;
        // A read between writes: reads in flight at a kill must fail the same way, and
        // releasing pooled connections to waiting writers is where a kill once crashed S.
        if ((await retrying(() => clients[w]!.getBalance({ accountId: rec.body.debitAccountId, asset: "USD" }), readFailures)) === undefined) gaveUp.push(`read ${j} of client ${w}`);
      }
    });

    // The kills: S's whole pool, its notifier and its LISTEN connection, mid-load.
    const kills: { at: number; killed: number; listener: number | undefined }[] = [];
    await sleep(500);
    for (let k = 0; k < 5 && !dead(); k++) {
      // The previous kill took the listener too; it reconnects within about 100 ms.
      const listener = (await eventually("S's LISTEN backend", async () => listenerOf(await backendsOf(probe!, APP), schema), (b) => b !== undefined || dead(), 5000))?.pid;
      const at = Date.now() - started;
      kills.push({ at, killed: await killBackends(probe!, APP), listener });
      await sleep(randInt(next, 300, 800));
    }
    // Let every client get through its retries after the last kill.
    await sleep(1000);
    stop = true;
    await load;
    // A process that died would surface below as a flood of transport errors; say it plainly first.
    expect(dead(), `S died during the kills:\n${S!.output().slice(-3000)}`).toBe(false);
    const lastKill = kills.at(-1)!.at;

    const failures = [...records.flatMap((r) => r.failures), ...readFailures];
    const outcomes = new Map<string, number>();
    for (const f of failures) outcomes.set(f.outcome, (outcomes.get(f.outcome) ?? 0) + 1);
    const retried = records.filter((r) => r.failures.length > 0);
    console.log(
      `[restart] seed=${seed} keys ${records.length}; kills ${kills.map((k) => `@${k.at}ms:${k.killed}`).join(" ")}; ` +
        `failed calls ${failures.length} (${readFailures.length} reads; ${failures.filter((f) => f.inCommit).length} during COMMIT) on ${retried.length} keys: ${JSON.stringify(Object.fromEntries(outcomes))}; ` +
        `watcher resumes ${JSON.stringify(watcher.resumes)}`,
    );
    expect(kills.every((k) => k.killed > 0)).toBe(true);

    // A failed call is UNAVAILABLE, and at least one was: otherwise no kill hit a call in flight.
    expect([...outcomes.keys()].filter((o) => !o.startsWith("Unavailable/"))).toEqual([]);
    expect(failures.filter((f) => f.outcome.startsWith("Unavailable/")).length).toBeGreaterThan(0);
    // Failures are caused by the kills: none before the first, none long after the last.
    expect(failures.filter((f) => f.at < kills[0]!.at || f.at > lastKill + 3000).map((f) => `${f.outcome}@${f.at}ms`)).toEqual([]);

    // Every key eventually succeeded, as the transfer it asked for.
    expect(gaveUp).toEqual([]);
    for (const r of records) {
      const t = r.transfer!;
      expect(t, r.body.idempotencyKey).toBeDefined();
      expect([t.idempotencyKey, t.debitAccountId, t.creditAccountId, t.amount, t.postedAmount]).toEqual([
        r.body.idempotencyKey,
        r.body.debitAccountId,
        r.body.creditAccountId,
        r.body.amount,
        r.body.amount,
      ]);
    }
    // Exactly one transfer per key: distinct ids, each journaled once on each side, nothing else journaled.
    const transferIds = records.map((r) => r.transfer!.id);
    expect(new Set(transferIds).size).toBe(records.length);
    const entries = (await Promise.all(ids.map((id) => journal(L, id)))).flat().filter((e) => e.counterpartyAccountId !== "@world");
    const perTransfer = new Map<string, number>();
    for (const e of entries) perTransfer.set(e.transferId, (perTransfer.get(e.transferId) ?? 0) + 1);
    expect(perTransfer.size).toBe(records.length);
    expect([...perTransfer.entries()].filter(([, n]) => n !== 2)).toEqual([]);
    expect(transferIds.filter((id) => !perTransfer.has(id))).toEqual([]);
    // The retried keys read back as the transfer their final answer named.
    for (const r of retried.slice(0, 20)) expect((await L.getTransfer({ id: r.transfer!.id })).transfer?.idempotencyKey).toBe(r.body.idempotencyKey);

    // Balances: the funding plus each key's transfer once.
    const delta = new Map<string, bigint>(ids.map((id) => [id, 0n]));
    for (const r of records) {
      delta.set(r.body.debitAccountId, delta.get(r.body.debitAccountId)! - r.body.amount);
      delta.set(r.body.creditAccountId, delta.get(r.body.creditAccountId)! + r.body.amount);
    }
    const balances = await Promise.all(ids.map(async (id) => (await L.getBalance({ accountId: id, asset: "USD" })).balance!.posted));
    expect(balances).toEqual(ids.map((id) => FUND + delta.get(id)!));
    expect(sum(balances)).toBe(FUND * BigInt(ACCOUNTS));
    const v = await clientFor(AdminService, S!.url, "grpc", key).verify({});
    expect(v.discrepancies).toEqual([]);
    expect(v.ok).toBe(true);

    // The same process, never restarted, serves new calls at the first attempt on every protocol.
    expect(S!.child.pid).toBe(pid);
    expect([S!.child.exitCode, S!.child.signalCode]).toEqual([null, null]);
    const after = await parallel(12, async (i) => {
      try {
        const c = clientFor(LedgerService, S!.url, LOAD_PROTOCOLS[i % LOAD_PROTOCOLS.length]!, key);
        await c.postTransfer({ idempotencyKey: uniq("after"), debitAccountId: ids[i % ACCOUNTS]!, creditAccountId: ids[(i + 1) % ACCOUNTS]!, asset: "USD", amount: 1n });
        return "OK";
      } catch (e) {
        return outcomeOf(e);
      }
    });
    expect(after).toEqual(new Array(12).fill("OK"));

    // The watcher on S (resuming with after_sequence if its stream was cut) saw ids[0]'s journal exactly once, in order.
    const entries0 = await journal(L, ids[0]!);
    await watcher.until((c) => c.length >= entries0.length, 15_000);
    await watcher.stop();
    expect(watcher.changes.map((c) => c.sequence)).toEqual(entries0.map((e) => e.sequence));
    expect(watcher.lastBalance?.posted).toBe((await L.getBalance({ accountId: ids[0]!, asset: "USD" })).balance?.posted);
    // Every kill also took the feed's listener (named like the rest of S's connections).
    expect(kills.filter((k) => k.listener === undefined)).toEqual([]);
  }, 90_000);

  it("after its LISTEN connection is killed, the feed reconnects: a commit made through another process wakes S's watcher, before and after the reconnect", async () => {
    const acct = uniq("rs-feed");
    await L.createAccount({ id: acct });
    const watcher = await BalanceRecorder.start({ url: S!.url, protocol: "connect-binary", key, accountId: acct, resume: true });
    const postViaW = (amount: bigint) => LW.postTransfer({ idempotencyKey: uniq("feed"), debitAccountId: "@world", creditAccountId: acct, asset: "USD", amount });
    const latencies: number[] = [];
    /** W commits; S's watcher must see it. Nothing runs on S, so only a notification (or the reconnect's catch-up) can wake it. */
    const seenAfterCommitViaW = async (amount: bigint) => {
      const want = watcher.changes.length + 1;
      const t0 = performance.now();
      await postViaW(amount);
      await watcher.until((c) => c.length >= want, 15_000);
      latencies.push(performance.now() - t0);
    };

    // Through the intact feed first: this is the baseline latency.
    await seenAfterCommitViaW(1n);
    const before = listenerOf(await backendsOf(probe!, APP), schema);
    expect(before, "S's LISTEN backend is not identifiable by application_name").toBeDefined();

    // Kill the listener alone and commit right away: the commit lands while
    // nobody listens, so the reconnect's catch-up must deliver it.
    const killed = await probe!.query<{ ok: boolean }>("SELECT pg_terminate_backend($1) AS ok", [before!.pid]);
    expect(killed.rows[0]?.ok).toBe(true);
    await seenAfterCommitViaW(2n);
    // A new listening backend replaces it...
    const again = await eventually("a new LISTEN backend", async () => listenerOf(await backendsOf(probe!, APP), schema), (b) => b !== undefined && b.pid !== before!.pid);
    // ...and notifications flow through it again.
    await seenAfterCommitViaW(4n);
    console.log(`[restart] listener ${before!.pid} -> ${again!.pid}; W -> S watcher latency ${latencies.map((ms) => ms.toFixed(0)).join(", ")} ms; resumes ${JSON.stringify(watcher.resumes)}`);
    // Faster than the feed's 10 s safety wake: the notification (or catch-up) did it, not the timer.
    expect(Math.max(...latencies)).toBeLessThan(3000);
    await watcher.stop();
    expect(watcher.changes.map((c) => c.delta)).toEqual([1n, 2n, 4n]);
    expect(watcher.lastBalance?.posted).toBe(7n);
  });
});
