import { randomBytes } from "node:crypto";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Access } from "../src/domain/access.js";
import { LedgerError } from "../src/domain/errors.js";
import { Ledger } from "../src/domain/ledger.js";
import type { Account, NewEntry } from "../src/domain/model.js";
import type { Store } from "../src/domain/store.js";
import { PG_MIGRATIONS } from "../src/store/postgres/migrations.js";
import { storeError } from "../src/store/postgres/pg-errors.js";
import { PostgresStore, pgUrlSchema } from "../src/store/postgres/postgres-store.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { tempDir } from "./support/server.js";
import { payment } from "./support/transfer-input.js";

/** The run's database when the postgres project created one, else the local `test` database. */
const BASE_URL = process.env.TALLY_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";

async function unreachable(): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: BASE_URL, connectionTimeoutMillis: 3000 });
  c.on("error", () => {});
  try {
    await c.connect();
    await c.query("SELECT 1");
    return undefined;
  } catch (e) {
    return `PostgreSQL is not reachable at ${BASE_URL.replace(/\/\/[^@]*@/, "//")}: ${e instanceof Error ? e.message : String(e)}`;
  } finally {
    await c.end().catch(() => {});
  }
}

const skipReason = await unreachable();
if (skipReason !== undefined && process.env.CI) throw new Error(`CI needs PostgreSQL: ${skipReason}`);

const MAX = 2n ** 63n - 1n;
const MIN = -(2n ** 63n);

/** A gate a write can wait on, opened by the test. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eventually(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await sleep(20);
  }
}

const account = (tenantId: string, id: string, extra: Partial<Account> = {}): Account => ({
  tenantId,
  id,
  overdraftLimit: 0n,
  overdraftUnlimited: false,
  metadata: {},
  frozenAt: null,
  createdAt: 1n,
  effectiveAt: 1n,
  ...extra,
});

const entry = (tenantId: string, accountId: string, amount: bigint, postedAfter: bigint): NewEntry => ({
  tenantId,
  transferId: "tr_x",
  accountId,
  counterpartyId: "@world",
  asset: "USD",
  direction: amount < 0n ? "debit" : "credit",
  status: "POSTED",
  amount,
  pendingChange: 0n,
  postedAfter,
  pendingInAfter: 0n,
  pendingOutAfter: 0n,
  createdAt: 1n,
  effectiveAt: 1n,
});

describe.skipIf(skipReason !== undefined)(`PostgreSQL store${skipReason ? ` (skipped: ${skipReason})` : ""}`, () => {
  const schema = `t_${randomBytes(6).toString("hex")}`;
  const url = (() => {
    const u = new URL(BASE_URL);
    u.searchParams.set("schema", schema);
    return u.toString();
  })();
  let admin: pg.Client;
  let store: PostgresStore;
  const opened: Store[] = [];

  /** A store on a schema of its own (dropped with the file's schema prefix). */
  async function openStore(extra: Partial<Parameters<typeof PostgresStore.open>[0]> = {}, s = schema): Promise<PostgresStore> {
    const st = await PostgresStore.open({ url: BASE_URL, schema: s, ...extra });
    opened.push(st);
    return st;
  }

  /** A tenant with accounts, written straight through the store. */
  async function tenantWith(st: Store, accounts: Account[]): Promise<string> {
    const tenantId = accounts[0]?.tenantId ?? `tn_${randomBytes(4).toString("hex")}`;
    await st.write(async (tx) => {
      await tx.insertTenant({ id: tenantId, name: tenantId, createdAt: 1n });
      for (const a of accounts) await tx.insertAccount(a);
    });
    return tenantId;
  }

  const extraSchemas: string[] = [];

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: BASE_URL });
    admin.on("error", () => {});
    await admin.connect();
    store = await openStore();
  });

  afterAll(async () => {
    for (const st of opened) await st.close().catch(() => {});
    for (const s of [schema, ...extraSchemas]) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
    await admin.end();
  });

  it("splits the schema off the URL; an explicit schema wins", async () => {
    expect(pgUrlSchema("postgres://u@h:5432/db?schema=abc&sslmode=disable")).toEqual({ url: "postgres://u@h:5432/db?sslmode=disable", schema: "abc" });
    expect(pgUrlSchema("postgres://u@h/db")).toEqual({ url: "postgres://u@h/db", schema: undefined });
    const s = `t_${randomBytes(6).toString("hex")}`;
    extraSchemas.push(s);
    const st = await PostgresStore.open({ url: `${BASE_URL}${BASE_URL.includes("?") ? "&" : "?"}schema=${s}` });
    opened.push(st);
    expect(st.schema).toBe(s);
    await expect(PostgresStore.open({ url, schema: "Bad-Name" })).rejects.toThrow(/invalid schema name/);
    // Connection options in the URL are kept, and do not displace the schema.
    const withOptions = new URL(url);
    withOptions.searchParams.set("options", "-c application_name=tally_opts");
    const st2 = await PostgresStore.open({ url: withOptions.toString() });
    opened.push(st2);
    await st2.write((tx) => tx.initMeta("via-options", "yes"));
    expect(await store.getMeta("via-options")).toBe("yes");
    expect(store.schema).toBe(schema);
    expect(await store.settings()).toEqual({ fsync: expect.any(String), synchronousCommit: expect.any(String) });
  });

  it("migrates once when several opens race on a fresh schema", async () => {
    const s = `t_${randomBytes(6).toString("hex")}`;
    extraSchemas.push(s);
    const stores = await Promise.all(Array.from({ length: 6 }, () => PostgresStore.open({ url: BASE_URL, schema: s, poolSize: 2 })));
    opened.push(...stores);
    const r = await admin.query(`SELECT version FROM "${s}".schema_migrations ORDER BY version`);
    expect(r.rows.map((x: { version: string }) => Number(x.version))).toEqual(PG_MIGRATIONS.map((m) => m.version));
    // Every store works on it.
    await Promise.all(stores.map((st, i) => st.write((tx) => tx.initMeta(`k${i}`, "v"))));
    expect(await stores[0]!.getMeta("k5")).toBe("v");
    // Replicas starting together each propose a page-token key: the first stored wins everywhere.
    const values = await Promise.all(stores.map((st, i) => st.write((tx) => tx.initMeta("shared", `proposal-${i}`))));
    expect(new Set(values).size).toBe(1);
    expect(await stores[3]!.getMeta("shared")).toBe(values[0]);
  });

  it("keeps int64 extremes exact through balances, entries and accounts", async () => {
    const t = await tenantWith(store, [account("t_int64", "a", { overdraftLimit: MAX, metadata: { x: "1" } })]);
    const written = await store.write(async (tx) => {
      await tx.putBalance({ tenantId: t, accountId: "a", asset: "USD", posted: MIN, pendingIn: MAX, pendingOut: 0n, sequence: MAX, updatedAt: MAX });
      return tx.appendEntries([entry(t, "a", MIN, MAX), entry(t, "a", MAX, MIN)]);
    });
    expect(written[1]!.sequence).toBeGreaterThan(written[0]!.sequence);
    expect(await store.getBalance(t, "a", "USD")).toEqual({
      tenantId: t,
      accountId: "a",
      asset: "USD",
      posted: MIN,
      pendingIn: MAX,
      pendingOut: 0n,
      sequence: MAX,
      updatedAt: MAX,
    });
    expect((await store.getAccount(t, "a"))!.overdraftLimit).toBe(MAX);
    // The joined read of a balance says the same as the two reads it replaces.
    expect(await store.getAccountBalance(t, "a", "USD")).toEqual({ account: await store.getAccount(t, "a"), balance: await store.getBalance(t, "a", "USD") });
    expect(await store.getAccountBalance(t, "a", "EUR")).toEqual({ account: await store.getAccount(t, "a"), balance: undefined });
    expect(await store.getAccountBalance(t, "no-such", "USD")).toBeUndefined();
    const e = await store.lastEntryAtOrBefore(t, "a", "USD", MAX);
    expect(e).toMatchObject({ sequence: written[1]!.sequence, amount: MAX, postedAfter: MIN });
    const first = await store.lastEntryAtOrBefore(t, "a", "USD", written[0]!.sequence);
    expect(first).toMatchObject({ amount: MIN, postedAfter: MAX });
    expect(typeof first!.sequence).toBe("bigint");
  });

  it("refuses to update, delete or truncate journal entries", async () => {
    const t = await tenantWith(store, [account("t_append", "a")]);
    await store.write((tx) => tx.appendEntries([entry(t, "a", 5n, 5n)]));
    await expect(admin.query(`UPDATE "${schema}".entries SET amount = 11`)).rejects.toThrow(/append-only/);
    await expect(admin.query(`DELETE FROM "${schema}".entries`)).rejects.toThrow(/append-only/);
    await expect(admin.query(`TRUNCATE "${schema}".entries`)).rejects.toThrow(/append-only/);
    await expect(admin.query(`TRUNCATE "${schema}".credit_entries`)).rejects.toThrow(/append-only/);
  });

  it("keeps nothing of a write whose function throws, and rethrows its LedgerError as is", async () => {
    const planned = new LedgerError("invalid_argument", "test", "planned failure");
    await expect(
      store.write(async (tx) => {
        await tx.initMeta("poison", "x");
        throw planned;
      }),
    ).rejects.toBe(planned);
    expect(await store.getMeta("poison")).toBeUndefined();
    // Anything else is an internal error with nothing of the cause in its message.
    const bug = store.write(async (tx) => {
      await tx.initMeta("poison2", "x");
      throw new TypeError("secret detail");
    });
    await expect(bug).rejects.toMatchObject({ code: "internal", message: "internal error" });
    expect(await store.getMeta("poison2")).toBeUndefined();
  });

  it("re-runs a write that lost a duplicate-key race, and the re-run sees the winner", async () => {
    const t = await tenantWith(store, [account("t_dup", "a")]);
    const before = store.retries["23505"] ?? 0;
    let firstReads = 0;
    const bothRead = gate();
    const attempt = (name: string) =>
      store.write(async (tx) => {
        const prior = await tx.getIdempotency(t, "same-key");
        if (prior) return `${name} saw ${prior.transferId}`;
        // Only the first attempts meet here, so that both miss the key.
        if (++firstReads === 2) bothRead.open();
        if (firstReads <= 2) await bothRead.wait;
        await tx.putIdempotency({ tenantId: t, key: "same-key", requestHash: "h", transferId: name, sequence: 1n, debitBalanceAfter: 0n, creditBalanceAfter: 0n });
        return `${name} inserted`;
      });
    const results = await Promise.all([attempt("w1"), attempt("w2")]);
    const inserted = results.filter((r) => r.endsWith("inserted"));
    expect(inserted).toHaveLength(1);
    const winner = inserted[0]!.split(" ")[0]!;
    expect(results.filter((r) => r.endsWith(`saw ${winner}`))).toHaveLength(1);
    expect((store.retries["23505"] ?? 0) - before).toBeGreaterThanOrEqual(1);
  });

  it("re-runs a group commit whose write lost a duplicate-key race to another replica; the re-run sees the winner and the batch commits once", async () => {
    const replica = await openStore();
    const t = await tenantWith(store, [account("t_bdup", "a"), account("t_bdup", "b"), account("t_bdup", "c")]);
    const retriesBefore = (store.retries["23505"] ?? 0) + (replica.retries["23505"] ?? 0);
    let firstReads = 0;
    const bothRead = gate();
    // One replica's racer, and the other's with a companion write in the same batch.
    const racer = (on: PostgresStore, name: string, accountId: string) =>
      on.write(
        async (tx) => {
          const prior = await tx.getIdempotency(t, "batch-key");
          if (prior) return `${name} saw ${prior.transferId}`;
          // Only the first runs meet here, so that both miss the key.
          if (++firstReads === 2) bothRead.open();
          if (firstReads <= 2) await bothRead.wait;
          await tx.putIdempotency({ tenantId: t, key: "batch-key", requestHash: "h", transferId: name, sequence: 1n, debitBalanceAfter: 0n, creditBalanceAfter: 0n });
          return `${name} inserted`;
        },
        { locks: { tenantId: t, accountIds: [accountId] } },
      );
    let companionRuns = 0;
    const companion = replica.write(
      async (tx) => {
        companionRuns++;
        return tx.initMeta("batch-companion", "1");
      },
      { locks: { tenantId: t, accountIds: ["c"] } },
    );
    const results = await Promise.all([racer(store, "w1", "a"), racer(replica, "w2", "b")]);
    expect(await companion).toBe("1");
    const inserted = results.filter((r) => r.endsWith("inserted"));
    expect(inserted).toHaveLength(1);
    const winner = inserted[0]!.split(" ")[0]!;
    expect(results.filter((r) => r.endsWith(`saw ${winner}`))).toHaveLength(1);
    expect((store.retries["23505"] ?? 0) + (replica.retries["23505"] ?? 0) - retriesBefore).toBeGreaterThanOrEqual(1);
    // The key holds the winner's record, once; the companion ran once more for each re-run of its batch, and landed once.
    expect((await store.write((tx) => tx.getIdempotency(t, "batch-key")))?.transferId).toBe(winner);
    expect(companionRuns).toBeGreaterThanOrEqual(1);
    expect(await store.getMeta("batch-companion")).toBe("1");
  });

  it("assigns concurrent credit balances distinct ordinals", async () => {
    const t = await tenantWith(store, [account("t_ord", "c")]);
    const draft = (id: string) => ({
      tenantId: t,
      id,
      kind: "CREDIT" as const,
      customerId: "c",
      contractId: null,
      name: id,
      description: "",
      priority: 1n,
      productId: "p",
      productName: "p",
      asset: "USD",
      applicableProductIds: [],
      applicableProductTags: [],
      customFields: {},
      uniquenessKey: null,
      segments: [{ id: `${id}-s`, amount: MAX, startingAt: MIN, endingBefore: MAX }],
      archivedAt: null,
      createdAt: 1n,
    });
    const out = await Promise.all(Array.from({ length: 8 }, (_, i) => store.write((tx) => tx.insertCreditBalance(draft(`b${i}`)))));
    expect(new Set(out.map((b) => b.ordinal)).size).toBe(8);
    const listed = await store.listCreditBalances(t, "c", 0n, 100);
    // Listed in creation order: the order the concurrent writes committed in, as their ordinals say.
    expect(listed.map((b) => b.id)).toEqual([...out].sort((a, b) => (a.ordinal < b.ordinal ? -1 : 1)).map((b) => b.id));
    expect(listed.find((b) => b.id === "b0")!.segments).toEqual([{ id: "b0-s", amount: MAX, startingAt: MIN, endingBefore: MAX }]);
  });

  it("runs 50 concurrent transfers A->B and B->A without a deadlock", async () => {
    const st = await openStore({ poolSize: 10 });
    const ledger = new Ledger({ store: st });
    await new Access(st, () => ledger.now()).createTenant({ id: "t_ab", name: "t_ab" });
    for (const id of ["A", "B"]) await ledger.createAccount("t_ab", { id, overdraftLimit: 0n, overdraftUnlimited: true, metadata: {} });
    const deadlocks = st.retries["40P01"] ?? 0;
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        ledger.postTransfer("t_ab", payment(`ab-${i}`, i % 2 === 0 ? "A" : "B", i % 2 === 0 ? "B" : "A", BigInt(i + 1))),
      ),
    );
    expect(results.filter((r) => r.status === "rejected")).toEqual([]);
    expect(st.retries["40P01"] ?? 0).toBe(deadlocks);
    const a = (await ledger.getBalance("t_ab", "A", "USD")).posted;
    const b = (await ledger.getBalance("t_ab", "B", "USD")).posted;
    expect(a + b).toBe(0n);
    expect((await ledger.verify("t_ab")).ok).toBe(true);
  });

  it("answers unavailable when its connections are killed, and recovers without reopening", async () => {
    const s = `t_${randomBytes(6).toString("hex")}`;
    extraSchemas.push(s);
    // Three connections: two for writes, one kept for reads.
    const st = await openStore({ poolSize: 3 }, s);
    const lockers = async () =>
      (await admin.query(`SELECT DISTINCT pid FROM pg_locks WHERE relation = '"${s}".meta'::regclass AND pid <> pg_backend_pid()`)).rows.map(
        (r: { pid: number }) => r.pid,
      );

    // Two writes hold a lock on meta; their backends are noted, then they commit
    // and the connections go back to the pool, idle.
    const g1 = gate();
    const held = [0, 1].map((i) =>
      st.write(async (tx) => {
        await tx.initMeta(`held${i}`, "x");
        await g1.wait;
      }),
    );
    await eventually(async () => (await lockers()).length === 2);
    const idlePids = await lockers();
    g1.open();
    await Promise.all(held);
    // Killing idle pooled connections must not crash the process (the pool's error handler).
    await admin.query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", [idlePids]);
    await sleep(200);
    await st.write((tx) => tx.initMeta("after-idle-kill", "ok"));
    expect(await st.getMeta("after-idle-kill")).toBe("ok");

    // Now kill the connection in the middle of a write.
    const g2 = gate();
    const doomed = st.write(async (tx) => {
      await tx.initMeta("doomed", "x");
      await g2.wait;
      await tx.initMeta("doomed2", "x");
    });
    await eventually(async () => (await lockers()).length === 1);
    await admin.query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", [await lockers()]);
    await sleep(200);
    g2.open();
    const err = await doomed.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LedgerError);
    expect(err).toMatchObject({ code: "unavailable", reason: "store_unavailable" });
    expect((err as Error).message).toMatch(/nothing was written/);
    await st.write((tx) => tx.initMeta("after", "ok"));
    expect(await st.getMeta("after")).toBe("ok");
    expect(await st.getMeta("doomed")).toBeUndefined();
  });

  it("queues a burst of writes on one account past the connect timeout, and keeps a connection for reads", async () => {
    const s = `t_${randomBytes(6).toString("hex")}`;
    extraSchemas.push(s);
    const st = await openStore({ poolSize: 2, connectTimeoutMs: 300 }, s);
    const t = await tenantWith(st, [account("t_burst", "a")]);
    const g = gate();
    let n = 0;
    const writes = Array.from({ length: 8 }, (_, i) =>
      st.write(async (tx) => {
        await tx.lockAccounts(t, ["a"]);
        if (n++ === 0) await g.wait;
        await tx.initMeta(`burst${i}`, "x");
      }),
    );
    await sleep(100);
    // Writers hold or wait for the only write connection; a read still gets through.
    expect(await st.getMeta("burst0")).toBeUndefined();
    await sleep(600);
    g.open();
    await Promise.all(writes);
    for (let i = 0; i < 8; i++) expect(await st.getMeta(`burst${i}`)).toBe("x");
  });

  it("says the outcome is unknown when the connection is lost during COMMIT", () => {
    const lost = storeError(Object.assign(new Error("Connection terminated unexpectedly")), "commit");
    expect(lost).toMatchObject({ code: "unavailable", reason: "store_unavailable" });
    expect(lost.message).not.toMatch(/nothing was written/);
    expect(lost.message).toMatch(/may or may not/);
    const before = storeError(Object.assign(new Error("x"), { code: "57P01" }), "write");
    expect(before).toMatchObject({ code: "unavailable", metadata: { pg_code: "57P01" } });
    expect(before.message).toMatch(/nothing was written/);
    expect(storeError(Object.assign(new Error("relation secret does not exist"), { code: "42P01" }), "write")).toMatchObject({
      code: "internal",
      message: "internal error",
    });
  });

  it("watchPoint waits for a writer holding the account's lock", async () => {
    const t = await tenantWith(store, [account("t_watch", "a")]);
    const g = gate();
    const locked = gate();
    let seq = 0n;
    const writer = store.write(async (tx) => {
      await tx.lockAccounts(t, ["a"]);
      seq = (await tx.appendEntries([entry(t, "a", 1n, 1n)]))[0]!.sequence;
      locked.open();
      await g.wait;
    });
    await locked.wait;
    let settled = false;
    const point = store.watchPoint(t, "a").then((s) => {
      settled = true;
      return s;
    });
    await sleep(300);
    expect(settled).toBe(false);
    // The committed head, read by another connection, is below the writer's entry: a plain head read would be too early.
    const head = (await admin.query(`SELECT coalesce(max(sequence), 0)::bigint AS head FROM "${schema}".entries`)).rows[0].head as string;
    expect(BigInt(head)).toBeLessThan(seq);
    g.open();
    await writer;
    expect(await point).toBeGreaterThanOrEqual(seq);
  });

  it("claims a nonce once until it expires", async () => {
    expect(await store.write((tx) => tx.claimNonce("s", "n1", 100n, 10n))).toBe(true);
    expect(await store.write((tx) => tx.claimNonce("s", "n1", 100n, 20n))).toBe(false);
    expect(await store.write((tx) => tx.claimNonce("s", "n1", 300n, 100n))).toBe(true);
  });

  it("verify reports exactly what the SQLite store reports", async () => {
    const { dir, remove } = tempDir();
    const path = join(dir, "tally.db");
    const sqlite = SqliteStore.open({ path });
    const s = `t_${randomBytes(6).toString("hex")}`;
    extraSchemas.push(s);
    const pgStore = await openStore({}, s);
    try {
      const scenario = async (st: Store) => {
        let now = 1_000_000n;
        const ledger = new Ledger({ store: st, clock: () => (now += 1n) });
        await new Access(st, () => now).createTenant({ id: "t1", name: "t1" });
        for (const id of ["a", "B", "c_1"]) await ledger.createAccount("t1", { id, overdraftLimit: 100n, overdraftUnlimited: false, metadata: {} });
        const move = (key: string, from: string, to: string, amount: bigint, pending = false) =>
          ledger.postTransfer("t1", { idempotencyKey: key, debitAccountId: from, creditAccountId: to, asset: "USD", amount, kind: "payment", note: "", metadata: {}, pending });
        await move("k1", "@world", "a", 10n);
        await move("k2", "a", "B", 3n);
        await move("k3", "c_1", "a", 50n);
        const hold = await move("k4", "B", "c_1", 2n, true);
        await move("k5", "@world", "B", 7n);
        await ledger.postPending("t1", hold.transfer.id, 1n);
        await ledger.defineAsset("t1", "EUR", 2);
        await move("k6", "@world", "a", 4n);
        return ledger;
      };
      const lite = await scenario(sqlite);
      const pgl = await scenario(pgStore);
      const clean = await lite.verify("t1");
      expect(clean.ok).toBe(true);
      expect(await pgl.verify("t1")).toEqual(clean);
      expect(await pgStore.listAccounts("t1", "", 10)).toEqual(await sqlite.listAccounts("t1", "", 10));
      expect(await pgStore.listEntries({ tenantId: "t1", accountId: "a", limit: 100 })).toEqual(
        (await sqlite.listEntries({ tenantId: "t1", accountId: "a", limit: 100 })).map((e) => ({ ...e, transferId: expect.any(String) })),
      );

      // The same tampering behind each store's back.
      const db = new Database(path);
      db.exec("UPDATE balances SET posted = posted + 1 WHERE account_id = 'a'");
      db.exec("UPDATE balances SET pending_in = pending_in + 2 WHERE account_id = 'B'");
      db.exec("DELETE FROM balances WHERE account_id = 'c_1'");
      db.exec("DROP TRIGGER entries_no_update");
      db.exec("UPDATE entries SET posted_after = 99 WHERE sequence = 3");
      db.close();
      await admin.query(`UPDATE "${s}".balances SET posted = posted + 1 WHERE account_id = 'a'`);
      await admin.query(`UPDATE "${s}".balances SET pending_in = pending_in + 2 WHERE account_id = 'B'`);
      await admin.query(`DELETE FROM "${s}".balances WHERE account_id = 'c_1'`);
      await admin.query(`ALTER TABLE "${s}".entries DISABLE TRIGGER entries_no_update`);
      await admin.query(`UPDATE "${s}".entries SET posted_after = 99 WHERE sequence = 3`);
      const tampered = await lite.verify("t1");
      expect(tampered.ok).toBe(false);
      expect(tampered.discrepancies.length).toBeGreaterThanOrEqual(5);
      expect(await pgl.verify("t1")).toEqual(tampered);

      // Sums beyond int64: SQLite's SUM raises and its store reports one finding; so does this one.
      for (const st of [sqlite, pgStore] as Store[]) {
        await st.write(async (tx) => {
          await tx.insertAccount(account("t1", "big"));
          await tx.appendEntries([entry("t1", "big", MAX, MAX), entry("t1", "big", MAX, MAX)]);
        });
      }
      const overflow = await lite.verify("t1");
      expect(overflow).toMatchObject({ ok: false, entriesChecked: 0n, discrepancies: [{ field: "asset_sum" }] });
      expect(await pgl.verify("t1")).toEqual(overflow);
    } finally {
      await sqlite.close();
      remove();
    }
  });

  it("finishes in-flight writes on close, then refuses writes", async () => {
    const s = `t_${randomBytes(6).toString("hex")}`;
    extraSchemas.push(s);
    const st = await PostgresStore.open({ url: BASE_URL, schema: s });
    const g = gate();
    const inflight = st.write(async (tx) => {
      await g.wait;
      await tx.initMeta("late", "ok");
      return "done";
    });
    await sleep(50);
    const closing = st.close();
    await expect(st.write((tx) => tx.initMeta("x", "y"))).rejects.toMatchObject({ code: "unavailable", reason: "store_closed" });
    g.open();
    expect(await inflight).toBe("done");
    await closing;
    const r = await admin.query(`SELECT value FROM "${s}".meta WHERE key = 'late'`);
    expect(r.rows).toEqual([{ value: "ok" }]);
    await expect(st.getMeta("late")).rejects.toMatchObject({ code: "unavailable", reason: "store_closed" });
  });
});
