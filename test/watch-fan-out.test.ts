import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Access } from "../src/domain/access.js";
import { Ledger } from "../src/domain/ledger.js";
import type { WatchEvent } from "../src/domain/ledger.js";
import type { Store } from "../src/domain/store.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { becomesTrue } from "./support/poll.js";
import { tempDir } from "./support/server.js";
import { payment } from "./support/transfer-input.js";

/**
 * A commit to an account with many watchers is read from the journal once,
 * not once per watcher, and every watcher still sees every change exactly
 * once and in order. A real SQLite file; the store is only wrapped to count
 * the reads the watchers make.
 */
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const WATCHERS = 100;

/** The store with its journal-tail and account reads counted. */
function counted(store: SqliteStore): { store: Store; reads: { entriesAfter: number; getAccount: number } } {
  const reads = { entriesAfter: 0, getAccount: 0 };
  const wrapped = new Proxy(store, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== "function") return v;
      if (prop === "entriesAfter" || prop === "getAccount") {
        return (...args: unknown[]) => {
          reads[prop]++;
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return (v as (...a: unknown[]) => unknown).bind(target);
    },
  });
  return { store: wrapped as unknown as Store, reads };
}

describe("balance watchers of one account", () => {
  it(`share the journal read and the change event of each commit: ${WATCHERS} watchers, one read per commit, every change to every watcher`, async () => {
    const { dir, remove } = tempDir();
    const sqlite = SqliteStore.open({ path: join(dir, "tally.db") });
    cleanups.push(remove, () => sqlite.close());
    const { store, reads } = counted(sqlite);
    const ledger = new Ledger({ store });
    await new Access(store, () => ledger.now()).createTenant({ id: "t1", name: "t1" });
    await ledger.createAccount("t1", { id: "a", overdraftLimit: 0n, overdraftUnlimited: false, metadata: {} });

    const stop = new AbortController();
    cleanups.push(() => stop.abort());
    const seen: bigint[][] = Array.from({ length: WATCHERS }, () => []);
    const snapshots: boolean[] = [];
    // The distinct event objects delivered for each journal entry.
    const events = new Map<bigint, Set<WatchEvent>>();
    for (let i = 0; i < WATCHERS; i++) {
      void (async () => {
        for await (const ev of ledger.watch({ tenantId: "t1", accountId: "a", asset: "USD", signal: stop.signal }) as AsyncGenerator<WatchEvent>) {
          if (ev.type === "snapshot") snapshots.push(true);
          else {
            seen[i]!.push(ev.balance.posted);
            const same = events.get(ev.entry.sequence) ?? new Set<WatchEvent>();
            events.set(ev.entry.sequence, same.add(ev));
          }
        }
      })().catch(() => undefined);
    }
    expect(await becomesTrue(() => snapshots.length === WATCHERS, 10_000)).toBe(true);
    const COMMITS = 5;
    for (let c = 1; c <= COMMITS; c++) {
      const before = reads.entriesAfter;
      await ledger.postTransfer("t1", payment(`k${c}`, "@world", "a", 10n));
      expect(await becomesTrue(() => seen.every((s) => s.length === c), 10_000)).toBe(true);
      // The first commit may find some watchers still reading after their snapshot; from then on,
      // every watcher is waiting when a commit lands.
      if (c === 1) continue;
      // The watchers are woken together and ask for the same entries: one read between them
      // (a second, at most, if a watcher was still busy when the first read settled).
      expect(reads.entriesAfter - before).toBeLessThanOrEqual(2);
      // And they get the same event object from it (one per read), so the message the service
      // makes of it, and its encoding, are made once for all of them.
      const delivered = [...events.values()].at(-1)!;
      expect(delivered.size).toBeLessThanOrEqual(2);
    }
    for (const s of seen) expect(s).toEqual([10n, 20n, 30n, 40n, 50n]);
    // The lock state, read once per batch, is shared too.
    expect(reads.getAccount).toBeLessThan(WATCHERS + 2 * COMMITS + 5);
  });
});
