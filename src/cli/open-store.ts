import { databaseUrlOf } from "../config.js";
import type { Store } from "../domain/store.js";
import { PostgresStore } from "../store/postgres/postgres-store.js";
import { SqliteStore } from "../store/sqlite/sqlite-store.js";
import { str } from "./flags.js";
import type { FlagValues } from "./flags.js";

/** Where the store flags point: a SQLite file or a PostgreSQL URL. */
export type StoreLocation = { readonly kind: "sqlite"; readonly path: string } | { readonly kind: "postgres"; readonly url: string };

/** The store --database / DATABASE_URL (PostgreSQL) or else --db / TALLY_DB (SQLite, default tally.db) names. */
export function storeLocation(values: FlagValues, env: NodeJS.ProcessEnv = process.env): StoreLocation {
  const url = databaseUrlOf(str(values, "database") ?? env.DATABASE_URL ?? "");
  if (url !== undefined) return { kind: "postgres", url };
  return { kind: "sqlite", path: str(values, "db") ?? env.TALLY_DB ?? "tally.db" };
}

/** Opens (creating and migrating when needed) the store the flags name. */
export async function openStore(values: FlagValues): Promise<Store> {
  const at = storeLocation(values);
  return at.kind === "postgres" ? PostgresStore.open({ url: at.url }) : SqliteStore.open({ path: at.path });
}

/** Runs `fn` on the store the flags name, and closes it whatever happens. */
export async function withStore<T>(values: FlagValues, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(values);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}
