// T3-lite (SIGKILL at random moments, restart, retry with idempotency keys) and
// T4 check 1 (the durability settings in force), against `tally serve` running
// as a child process on a real SQLite file or, in the "postgres" project, on a
// PostgreSQL schema (the service is killed; PostgreSQL keeps running).
//
// Clients follow the reliable-submission rule: an op's key and body are fixed
// before it is first sent, and an unknown outcome (connection refused or cut,
// deadline, unavailable) is retried with the same key and body until it gets a
// definite answer, across as many crashes as it takes.
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import { equals } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { LedgerService, TransferSchema } from "../gen/tally/ledger/v1/ledger_pb.js";
import type { PostTransferRequestSchema, PostTransferResponse, Transfer } from "../gen/tally/ledger/v1/ledger_pb.js";
import {
  ServerFleet,
  codeName,
  integrityCheck,
  isUnknownOutcome,
  logLine,
  queryDb,
  runTallyCli,
  seededRandom,
  sleep,
} from "./support/durability.js";
import { bearer, tempDir } from "./support/server.js";
import { becomesTrue } from "./support/poll.js";
import { freshPgUrl, testStore } from "./support/postgres.js";
import { queryPg } from "./support/pg-probe.js";
import type { ChildServer } from "./support/server.js";

const CLIENTS = 16;
const KILLS = 5;
const ACCOUNTS = ["crash-a", "crash-b", "crash-c", "crash-d"];
const MAX_OPS = 40_000; // count bound on the load, whatever the speed
// A safety net only (a hung server fails the test instead of hanging it): every kill
// happens however slowly a busy machine restarts the server.
const LOAD_DEADLINE_MS = 140_000;
const RPC_TIMEOUT_MS = 5_000;
const SEED = Number(process.env.TALLY_SEED ?? Math.floor(Math.random() * 2 ** 31));

interface Op {
  readonly key: string;
  readonly account: string;
  readonly amount: bigint;
  unknownOutcomes: number;
}
interface Ack {
  readonly key: string;
  readonly account: string;
  readonly amount: bigint;
  readonly transferId: string;
  /** The first definite answer was a replay: the write had committed before an unknown outcome. */
  readonly replayed: boolean;
  /** The response as first acknowledged: every later replay must be identical to it. */
  readonly transfer: Transfer;
}

/** Transfers without exactly their debit and credit entry (every transfer here is posted at once). */
const PARTIAL_TRANSFERS_SQL =
  "SELECT * FROM (SELECT t.id, (SELECT COUNT(*) FROM entries e WHERE e.tenant_id = t.tenant_id AND e.transfer_id = t.id) AS n FROM transfers t) x WHERE n <> 2";

const fleet = new ServerFleet();
const tmp = tempDir("tally-crash-");
afterAll(async () => {
  await fleet.killAll();
  tmp.remove();
});

function ledgerClient(url: string, key: string): Client<typeof LedgerService> {
  return createClient(LedgerService, createGrpcTransport({ baseUrl: url, interceptors: [bearer(key)] }));
}

function request(op: Op): MessageInitShape<typeof PostTransferRequestSchema> {
  return { idempotencyKey: op.key, debitAccountId: "@world", creditAccountId: op.account, asset: "USD", amount: op.amount, note: "crash test" };
}

describe("SIGKILL during load, restart, retry with the same key", () => {
  // The seed fixes accounts, amounts and kill delays (printed; replay with TALLY_SEED=<n>); scheduling is not replayable.
  it(`loses no acknowledged transfer and duplicates none over ${KILLS} kills`, { timeout: 170_000 }, async () => {
    const random = seededRandom(SEED);
    const dbPath = join(tmp.dir, "crash.db");
    const pgUrl = testStore() === "postgres" ? freshPgUrl("crash") : undefined;
    // The same flags for every start: on PostgreSQL the --db file is unused.
    const storeArgs = pgUrl === undefined ? [] : ["--database", pgUrl];

    // ---- first start: T4 check 1 reads the durability settings it logs.
    const first = await fleet.spawn(dbPath, ["--log-level", "info", ...storeArgs]);
    const opened = logLine(first.server.output(), "store opened");
    expect(opened, first.server.output()).toBeDefined();
    if (pgUrl === undefined) {
      expect(opened!.journal_mode).toBe("wal");
      expect(opened!.synchronous).toBe(2); // FULL: every commit is fsynced before it is acknowledged
    } else {
      // PostgreSQL acknowledges a commit only after its WAL is flushed.
      expect(opened!.fsync).toBe("on");
      expect(opened!.synchronous_commit).toBe("on");
    }
    const adminKey = first.server.adminKey;
    expect(adminKey).toMatch(/^tly_/);

    const setup = ledgerClient(first.server.url, adminKey!);
    for (const id of ACCOUNTS) await setup.createAccount({ id });

    // ---- the load: CLIENTS workers, each with one op in flight at a time.
    let current: { server: ChildServer; epoch: number } = { server: first.server, epoch: 0 };
    let phase: "load" | "drain" = "load";
    const deadline = Date.now() + LOAD_DEADLINE_MS;
    const acks: Ack[] = [];
    const refusals: { key: string; code: string; message: string }[] = [];
    const mismatches: { key: string; got: string }[] = [];
    const unresolved: Op[] = [];
    const unknownCodes = new Map<string, number>();
    const unknownSamples = new Map<string, string>(); // first message per code, for the report
    let issued = 0;

    const worker = async () => {
      let conn: { epoch: number; client: Client<typeof LedgerService> } | undefined;
      let op: Op | undefined;
      while (Date.now() < deadline) {
        if (op === undefined) {
          if (phase !== "load" || issued >= MAX_OPS) break;
          issued++;
          // Key and body are fixed here, before the first send, and never change.
          op = {
            key: `crash-${randomUUID()}`,
            account: ACCOUNTS[Math.floor(random() * ACCOUNTS.length)]!,
            amount: BigInt(1 + Math.floor(random() * 1000)),
            unknownOutcomes: 0,
          };
        }
        // A fresh connection per server life, one per client (16 HTTP/2 connections).
        if (conn?.epoch !== current.epoch) conn = { epoch: current.epoch, client: ledgerClient(current.server.url, adminKey!) };
        let res: PostTransferResponse;
        try {
          res = await conn.client.postTransfer(request(op), { timeoutMs: RPC_TIMEOUT_MS });
        } catch (e) {
          if (isUnknownOutcome(e)) {
            op.unknownOutcomes++;
            unknownCodes.set(codeName(e), (unknownCodes.get(codeName(e)) ?? 0) + 1);
            if (!unknownSamples.has(codeName(e))) unknownSamples.set(codeName(e), String(e));
            await sleep(Math.min(10 * 2 ** Math.min(op.unknownOutcomes, 4), 100));
          } else {
            refusals.push({ key: op.key, code: codeName(e), message: String(e) });
            op = undefined;
          }
          continue;
        }
        const t = res.transfer;
        // A replay must be the answer to this very request (checked after the run, not thrown here).
        if (!t || t.idempotencyKey !== op.key || t.amount !== op.amount || t.creditAccountId !== op.account) {
          mismatches.push({ key: op.key, got: String(t?.idempotencyKey) });
        } else {
          acks.push({ key: op.key, account: op.account, amount: op.amount, transferId: t.id, replayed: res.replayed, transfer: t });
        }
        op = undefined;
      }
      if (op !== undefined) unresolved.push(op);
    };
    const workers = Array.from({ length: CLIENTS }, () => worker());

    // ---- the faults: SIGKILL after 300-1000 ms of load, restart at once.
    const startMs: number[] = [];
    const integrity: string[] = [];
    let killed = 0;
    for (let k = 0; k < KILLS; k++) {
      // Load must really be running when the kill comes (else the test proves nothing): wait for
      // this server life's first acknowledgement however long a busy machine takes to give it,
      // then let the load run for 300-1000 ms more.
      const ackedAtStart = acks.length;
      expect(await becomesTrue(() => acks.length > ackedAtStart, 60_000)).toBe(true);
      await sleep(300 + Math.floor(random() * 700));
      const ackedBefore = acks.length;
      await current.server.stop("SIGKILL");
      killed++;
      expect(ackedBefore).toBeGreaterThan(ackedAtStart);
      const next = await fleet.spawn(dbPath, storeArgs);
      startMs.push(next.startMs);
      // A read-only connection beside the restarted server: the file it recovered is sound.
      // On PostgreSQL (which was not killed) the check is that no transfer is partial:
      // every one has exactly its debit and credit entry.
      integrity.push(
        pgUrl === undefined
          ? integrityCheck(dbPath)
          : await queryPg<{ n: bigint }>(pgUrl, PARTIAL_TRANSFERS_SQL.replace("SELECT *", "SELECT count(*) AS n")).then(([r]) => (r!.n === 0n ? "ok" : `${r!.n} partial transfers`)),
      );
      current = { server: next.server, epoch: current.epoch + 1 };
    }
    // Some load on the last server too, then no new ops: pending unknown outcomes are retried to a definite answer.
    await sleep(300);
    phase = "drain";
    await Promise.all(workers);

    const replays = acks.filter((a) => a.replayed).length;
    const unknowns = [...unknownCodes.values()].reduce((a, b) => a + b, 0);
    console.log(
      `T3-lite seed=${SEED}: kills ${killed}; ops ${issued}; acknowledged ${acks.length}; unknown outcomes ${unknowns} ` +
        `(${[...unknownCodes].map(([c, n]) => `${c} ${n}`).join(", ")}); acked by replay ${replays}; ` +
        `restart ms ${startMs.map((m) => m.toFixed(0)).join(", ")}`,
    );
    for (const [code, sample] of unknownSamples) console.log(`  first ${code}: ${sample}`);

    expect(killed).toBe(KILLS);
    expect(integrity).toEqual(Array(KILLS).fill("ok"));
    // The plan's target is < 5 s (printed above; ~0.7 s on an idle machine). The
    // bound is looser because a loaded 2-core CI box was seen at 3 s for tsx
    // start-up alone; a recovery that stalls still fails it.
    for (const ms of startMs) expect(ms).toBeLessThan(10_000);
    expect(refusals).toEqual([]); // funding from @world is never refused
    expect(mismatches).toEqual([]);
    expect(unresolved.map((o) => o.key)).toEqual([]); // every op reached a definite answer
    expect(acks).toHaveLength(issued);
    // Each key got one transfer, and no two keys share one.
    expect(new Set(acks.map((a) => a.key)).size).toBe(acks.length);
    expect(new Set(acks.map((a) => a.transferId)).size).toBe(acks.length);

    // ---- every acknowledged transfer is there, and its key replays to it.
    const check = ledgerClient(current.server.url, adminKey!);
    let next = 0;
    const missing: string[] = [];
    const badReplays: string[] = [];
    const verifier = async () => {
      while (next < acks.length) {
        const a = acks[next++]!;
        const got = await check.getTransfer({ id: a.transferId }).catch(() => undefined);
        const t = got?.transfer;
        if (!t || t.idempotencyKey !== a.key || t.amount !== a.amount || t.creditAccountId !== a.account) missing.push(a.transferId);
        const again = await check.postTransfer(request({ ...a, unknownOutcomes: 0 }));
        // Same id, and the very same message as the first acknowledgement, field for field.
        if (!again.replayed || !again.transfer || !equals(TransferSchema, again.transfer, a.transfer)) badReplays.push(a.key);
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, () => verifier()));
    expect(missing).toEqual([]);
    expect(badReplays).toEqual([]);

    // ---- balances are exactly the acknowledged amounts.
    for (const id of ACCOUNTS) {
      const want = acks.filter((a) => a.account === id).reduce((s, a) => s + a.amount, 0n);
      const { balance } = await check.getBalance({ accountId: id, asset: "USD" });
      expect(balance?.posted, id).toBe(want);
    }

    // ---- a clean stop, then the file itself.
    expect(await current.server.stop("SIGTERM")).toBe(0);

    const query = <T>(sql: string): Promise<T[]> => (pgUrl === undefined ? Promise.resolve(queryDb<T>(dbPath, sql)) : queryPg<T>(pgUrl, sql));
    const perKey = await query<{ idempotency_key: string; n: bigint }>(
      "SELECT idempotency_key, COUNT(*) AS n FROM transfers WHERE idempotency_key LIKE 'crash-%' GROUP BY idempotency_key",
    );
    expect(perKey.filter((r) => r.n > 1n)).toEqual([]); // postings per key <= 1
    expect(perKey).toHaveLength(acks.length); // and nothing unacknowledged was written
    // No partial transfer: each has exactly its debit and credit entry.
    const partial = await query<{ id: string; n: bigint }>(PARTIAL_TRANSFERS_SQL);
    expect(partial).toEqual([]);

    const verify = await runTallyCli(["verify", ...(pgUrl === undefined ? ["--db", dbPath] : ["--database", pgUrl])]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stdout).toContain('"ok":true');
    if (pgUrl === undefined) expect(integrityCheck(dbPath)).toBe("ok");
  });
});
