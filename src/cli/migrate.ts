import { resolve } from "node:path";
import { redactUrl } from "../config.js";
import { PostgresStore } from "../store/postgres/postgres-store.js";
import { SqliteStore } from "../store/sqlite/sqlite-store.js";
import type { Command } from "./command.js";
import { STORE_FLAGS } from "./flags.js";
import { requireDatabase, storeLocation } from "./open-store.js";
import { printJson } from "./output.js";

/**
 * `tally migrate`: applies the schema migrations this version knows and
 * exits, so that a deploy pipeline can migrate PostgreSQL once, before any
 * replica of the new version starts (servers also migrate on start; on
 * PostgreSQL one advisory lock makes the two safe together).
 */
export const migrateCommand: Command = {
  name: "migrate",
  summary: "apply the schema migrations and exit; prints the schema version before and after",
  synopsis: "[--db FILE | --database URL]",
  details:
    "For deploy pipelines: run it with the new version before starting its servers. Servers migrate\n" +
    "on start as well, so it is never required; it is idempotent (nothing to do: before = after).\n" +
    "A SQLite --db must exist (serve creates one; an empty file is an empty database).\n" +
    "On PostgreSQL it takes the same advisory lock as starting servers, inside one transaction.",
  flags: { ...STORE_FLAGS },
  async run({ values }) {
    const at = storeLocation(values);
    requireDatabase(at);
    if (at.kind === "postgres") {
      // One connection: migrating needs no more, and a pipeline's database may allow few.
      const store = await PostgresStore.open({ url: at.url, poolSize: 1 });
      printJson({ store: "postgres", database: redactUrl(at.url), schema: store.schema, ...store.schemaVersions });
      await store.close();
    } else {
      const store = SqliteStore.open({ path: at.path });
      printJson({ store: "sqlite", database: resolve(at.path), ...store.schemaVersions });
      await store.close();
    }
    return 0;
  },
};
