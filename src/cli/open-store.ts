import { existsSync } from "node:fs";
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

/**
 * The SQLite file a command names does not exist. Only `serve` creates one
 * (and `import --create`): any other command on a mistyped path would
 * otherwise succeed on a new empty database and leave it behind.
 * Exit code 1, like any failure of the command itself.
 */
export class MissingDatabaseError extends Error {
  override readonly name = "MissingDatabaseError";
  constructor(
    readonly path: string,
    hint = "serve creates one on first start",
  ) {
    super(`no database at ${path} (${hint})`);
  }
}

/** Options of {@link openStore} and {@link requireDatabase}. */
export interface OpenStoreOptions {
  /** Create (and migrate) a SQLite file that does not exist yet, instead of refusing it. Default false. */
  readonly create?: boolean;
  /** What the refusal suggests, in its parentheses. */
  readonly hint?: string;
}

/**
 * Throws MissingDatabaseError when `at` is a SQLite file that does not exist
 * (and `create` is not set). Checked before anything is opened, so that a
 * refused command leaves no file, -wal, -shm or .lock behind.
 */
export function requireDatabase(at: StoreLocation, opts: OpenStoreOptions = {}): void {
  if (at.kind !== "sqlite" || opts.create === true || at.path === ":memory:") return;
  if (!existsSync(at.path)) throw new MissingDatabaseError(at.path, opts.hint);
}

/** Opens (migrating when needed) the store the flags name; a SQLite file must exist unless `create`. */
export async function openStore(values: FlagValues, opts: OpenStoreOptions = {}): Promise<Store> {
  const at = storeLocation(values);
  requireDatabase(at, opts);
  return at.kind === "postgres" ? PostgresStore.open({ url: at.url }) : SqliteStore.open({ path: at.path });
}

/** Runs `fn` on the store the flags name (which must exist), and closes it whatever happens. */
export async function withStore<T>(values: FlagValues, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(values);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}
