import { join } from "node:path";
import type { Store } from "../../src/domain/store.js";
import { PostgresStore } from "../../src/store/postgres/postgres-store.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { freshPgUrl, testStore } from "./postgres.js";
import { tempDir } from "./server.js";

/**
 * A real store for a test that drives the domain directly (no socket): a
 * fresh SQLite file, or in the postgres project a fresh PostgreSQL database
 * named after `name`. `close` removes what it made.
 */
export async function openDomainStore(name: string): Promise<{ store: Store; close: () => Promise<void> }> {
  if (testStore() === "postgres") {
    const pg = await PostgresStore.open({ url: freshPgUrl(name) });
    return { store: pg, close: () => pg.close() };
  }
  const { dir, remove } = tempDir();
  const sqlite = SqliteStore.open({ path: join(dir, "tally.db") });
  return {
    store: sqlite,
    close: async () => {
      await sqlite.close();
      remove();
    },
  };
}
