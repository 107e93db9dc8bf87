/**
 * Posted ordinals (migration 7): `Ledger.listPostedEntries` pages an account's
 * POSTED entries with one seek on their ordinals, and must answer exactly what
 * a walk over the whole journal answers, for every skip and take. The journal
 * is built with pending, partly posted and voided transfers interleaved, in
 * batches and in concurrent writes that share a group commit, with refused
 * writes among them (whose ordinals must be taken back). Then the same after
 * migration 7 backfills a journal written without ordinals. Runs on SQLite
 * and, in the postgres project, on PostgreSQL.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Access } from "../src/domain/access.js";
import { Ledger } from "../src/domain/ledger.js";
import type { TransferInput } from "../src/domain/ledger.js";
import type { EntryView } from "../src/domain/model.js";
import type { Store } from "../src/domain/store.js";
import { PostgresStore, pgUrlSchema } from "../src/store/postgres/postgres-store.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { freshPgUrl, testStore } from "./support/postgres.js";
import { seededRandom } from "./support/seeded-random.js";
import { tempDir } from "./support/server.js";

const TENANT = "t1";
const ACCOUNTS = ["a", "b", "c"] as const;
const ASSETS = ["USD", "EUR"] as const;
const INT64_MAX = 2n ** 63n - 1n;

/** A store of the project's kind that can be closed and opened again on the same data. */
interface Reopenable {
  open(): Promise<Store>;
  /** Takes migration 7 back out of the closed database: no column, no index, version 7 not applied. */
  downgrade(): Promise<void>;
  /** Tries an UPDATE of a journal entry on the closed database; resolves with the error message. */
  updateRefusal(): Promise<string>;
  remove(): Promise<void>;
}

function reopenable(): Reopenable {
  if (testStore() === "postgres") {
    const url = freshPgUrl("ordinal");
    const { url: base, schema } = pgUrlSchema(url);
    const sql = async (text: string) => {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      try {
        await c.query(`SET search_path TO "${schema}"`);
        await c.query(text);
      } finally {
        await c.end();
      }
    };
    return {
      open: () => PostgresStore.open({ url }),
      downgrade: () => sql("ALTER TABLE entries DROP COLUMN posted_ordinal; DELETE FROM schema_migrations WHERE version = 7"),
      updateRefusal: () => sql("UPDATE entries SET posted_ordinal = NULL").then(() => "", (e: Error) => e.message),
      remove: () => sql(`DROP SCHEMA "${schema}" CASCADE`),
    };
  }
  const { dir, remove } = tempDir();
  const path = join(dir, "tally.db");
  const raw = (fn: (db: Database.Database) => void) => {
    const db = new Database(path);
    try {
      fn(db);
    } finally {
      db.close();
    }
  };
  return {
    open: async () => SqliteStore.open({ path }),
    downgrade: async () =>
      raw((db) => db.exec("DROP INDEX entries_by_posted_ordinal; ALTER TABLE entries DROP COLUMN posted_ordinal; DELETE FROM schema_migrations WHERE version = 7")),
    updateRefusal: async () => {
      let message = "";
      raw((db) => {
        try {
          db.exec("UPDATE entries SET posted_ordinal = NULL");
        } catch (e) {
          message = (e as Error).message;
        }
      });
      return message;
    },
    remove: async () => remove(),
  };
}

const random = seededRandom();
let n = 0;
const transfer = (debit: string, credit: string, asset: string, amount: bigint, pending: boolean): TransferInput => ({
  idempotencyKey: `k-${++n}`,
  debitAccountId: debit,
  creditAccountId: credit,
  asset,
  amount,
  kind: "payment",
  note: `n${n}`,
  metadata: {},
  pending,
});

/**
 * Writes a random journal over ACCOUNTS × ASSETS: funding, transfers between
 * the accounts, holds that are posted (in full or in part) or voided, each
 * round as one batch, one set of concurrent writes (one group commit) with
 * overdrafts refused among them, and the settlements of the open holds.
 */
async function writeJournal(ledger: Ledger, rounds: number): Promise<void> {
  // Room for every small transfer (a batch is all or nothing); the huge ones are still refused.
  for (const id of ACCOUNTS) await ledger.createAccount(TENANT, { id, overdraftLimit: 1_000_000n, overdraftUnlimited: false, metadata: {} });
  const holds: string[] = [];
  // Whatever the seed: a voided hold and a partly posted one on "a", between posted entries.
  await ledger.postTransfer(TENANT, transfer("@world", "a", "USD", 100n, false));
  await ledger.voidPending(TENANT, (await ledger.postTransfer(TENANT, transfer("a", "b", "USD", 10n, true))).transfer.id);
  await ledger.postPending(TENANT, (await ledger.postTransfer(TENANT, transfer("@world", "a", "USD", 10n, true))).transfer.id, 4n);
  for (let round = 0; round < rounds; round++) {
    const batch: TransferInput[] = [];
    for (let i = 0; i < 8; i++) {
      const asset = random.pick(ASSETS);
      const to = random.pick(ACCOUNTS);
      const from = random.next() < 0.5 ? "@world" : random.pick(ACCOUNTS.filter((x) => x !== to));
      batch.push(transfer(from === to ? "@world" : from, to, asset, BigInt(random.int(1, 50)), random.next() < 0.3));
    }
    const results = await Promise.allSettled([
      ledger.postTransfers(TENANT, batch),
      // Refused after its first item was applied: the ordinals that item took must be given back.
      ledger.postTransfers(TENANT, [transfer("@world", "a", random.pick(ASSETS), 1n, false), transfer("a", "b", "USD", 1_000_000_000n, false)]),
      // Concurrent single writes join one group commit; the huge ones are refused (insufficient funds).
      ...Array.from({ length: 6 }, () => {
        const [from, to] = [random.pick(ACCOUNTS), random.pick(["@world", ...ACCOUNTS])];
        const amount = random.next() < 0.3 ? 1_000_000_000n : BigInt(random.int(1, 5));
        return ledger.postTransfer(TENANT, transfer(from, to === from ? "@world" : to, random.pick(ASSETS), amount, random.next() < 0.3));
      }),
    ]);
    for (const r of results) {
      if (r.status === "rejected") continue;
      for (const t of Array.isArray(r.value) ? r.value : [r.value]) if (t.transfer.status === "PENDING") holds.push(t.transfer.id);
    }
    // Settle some holds, concurrently too: posted in full, in part, or voided.
    const settle = holds.splice(0, random.int(0, holds.length));
    await Promise.allSettled(
      settle.map((id) => {
        const pick = random.next();
        return pick < 0.4 ? ledger.postPending(TENANT, id, 0n) : pick < 0.7 ? ledger.postPending(TENANT, id, 1n) : ledger.voidPending(TENANT, id);
      }),
    );
  }
}

/** The reference: every entry of (account, asset) from a walk over the whole journal, POSTED only, newest first. */
async function postedByWalk(store: Store, accountId: string, asset: string): Promise<EntryView[]> {
  const all = await store.listEntries({ tenantId: TENANT, accountId, asset, limit: 1_000_000 });
  return all.filter((e) => e.status === "POSTED");
}

/** Every skip from 0 past the end with take 1 (which pins each ordinal), and windows of 7 and 50, plus huge skips. */
async function expectSamePages(ledger: Ledger, store: Store): Promise<number> {
  let checked = 0;
  for (const accountId of ACCOUNTS) {
    for (const asset of ASSETS) {
      const ref = await postedByWalk(store, accountId, asset);
      // The journal holds entries that are not posted, so the seek has something to skip over.
      const page = (skip: bigint, take: number) => ledger.listPostedEntries(TENANT, accountId, asset, skip, take);
      for (const take of [1, 7, 50]) {
        for (let skip = 0; skip <= ref.length + 1; skip += take === 1 ? 1 : 3) {
          expect([accountId, asset, skip, take, await page(BigInt(skip), take)]).toEqual([accountId, asset, skip, take, ref.slice(skip, skip + take)]);
          checked++;
        }
      }
      for (const skip of [BigInt(ref.length), BigInt(ref.length) + 1n, 2n ** 62n, INT64_MAX]) expect(await page(skip, 50)).toEqual([]);
    }
  }
  return checked;
}

describe("posted ordinals", () => {
  let place: Reopenable;
  let store: Store;
  let ledger: Ledger;

  beforeAll(async () => {
    place = reopenable();
    store = await place.open();
    ledger = new Ledger({ store });
    await new Access(store, () => ledger.now()).createTenant({ id: TENANT, name: TENANT });
    await writeJournal(ledger, 12);
  });
  afterAll(async () => {
    await store?.close();
    await place?.remove();
  });

  it(`a seek answers what a walk over the journal answers, for every skip and take (seed=${random.seed})`, async () => {
    const all = await store.listEntries({ tenantId: TENANT, accountId: "a", limit: 1_000_000 });
    // Something to get wrong: entries that are not posted, between posted ones.
    expect(all.some((e) => e.status === "PENDING") && all.some((e) => e.status === "VOIDED")).toBe(true);
    expect(await expectSamePages(ledger, store)).toBeGreaterThan(100);
    expect((await ledger.verify(TENANT)).ok).toBe(true);
  });

  it("a skip outside int64 or below zero is refused; an account without posted entries is an empty page", async () => {
    await expect(ledger.listPostedEntries(TENANT, "a", "USD", INT64_MAX + 1n, 1)).rejects.toMatchObject({ reason: "invalid_skip" });
    await expect(ledger.listPostedEntries(TENANT, "a", "USD", -1n, 1)).rejects.toMatchObject({ reason: "invalid_skip" });
    await expect(ledger.listPostedEntries(TENANT, "nobody", "USD", 0n, 1)).rejects.toMatchObject({ reason: "account_not_found" });
    await ledger.createAccount(TENANT, { id: "quiet", overdraftLimit: 0n, overdraftUnlimited: false, metadata: {} });
    await ledger.postTransfer(TENANT, transfer("@world", "quiet", "USD", 5n, true));
    expect(await ledger.listPostedEntries(TENANT, "quiet", "USD", 0n, 50)).toEqual([]);
    expect(await ledger.listPostedEntries(TENANT, "quiet", "USD", INT64_MAX, 50)).toEqual([]);
  });

  it("migration 7 backfills a journal written without ordinals exactly, keeps the journal append-only, and writes continue the counts", async () => {
    await store.close();
    await place.downgrade();
    store = await place.open();
    ledger = new Ledger({ store });
    await expectSamePages(ledger, store);
    // New entries continue the backfilled counts.
    await ledger.postTransfers(TENANT, [transfer("@world", "a", "USD", 3n, false), transfer("@world", "a", "EUR", 4n, false)]);
    await expectSamePages(ledger, store);
    expect((await ledger.verify(TENANT)).ok).toBe(true);
    await store.close();
    // The trigger the backfill went around is back.
    expect(await place.updateRefusal()).toMatch(/the journal is append-only/);
    store = await place.open();
  });
});
