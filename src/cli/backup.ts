import { copyFileSync, existsSync, realpathSync, renameSync, rmSync, statSync } from "node:fs";
import { resolve } from "node:path";
import Database from "better-sqlite3";
import type { VerifyReport } from "../domain/model.js";
import { MIGRATIONS } from "../store/sqlite/migrations.js";
import { SqliteStore } from "../store/sqlite/sqlite-store.js";
import type { Command } from "./command.js";
import { UsageError, bool, required, str } from "./flags.js";
import { requireDatabase } from "./open-store.js";
import { fail, printJson } from "./output.js";
import { verifyTenants } from "./verify.js";

/**
 * `tally backup --db FILE --to FILE [--force]`: a consistent copy of a
 * SQLite database through SQLite's online backup API, safe while a server
 * writes to it, checked (integrity_check, then Tally's verify) before it is
 * put in place. The copy is made under a temporary name beside the target
 * and renamed onto it only once checked, so the target is only ever absent,
 * the old file (--force) or a verified backup: never half a copy.
 */
export const backupCommand: Command = {
  name: "backup",
  summary: "copy a SQLite database safely while it is in use, then verify the copy",
  synopsis: "--db FILE --to FILE [--force]",
  details:
    "Uses SQLite's online backup API in one step: a consistent snapshot, taken while a server keeps\n" +
    "writing (readers never block its writers in WAL mode). The copy must pass PRAGMA integrity_check\n" +
    "and `tally verify` before it is renamed onto --to; on any failure --to is left as it was and the\n" +
    "exit code is 1. PostgreSQL: use pg_dump (or your provider's snapshots) instead.",
  flags: {
    db: { type: "string", value: "FILE", help: "the SQLite database to copy (required; env TALLY_DB)" },
    database: { type: "string", value: "URL", help: "not supported: backup is for SQLite (PostgreSQL: pg_dump)" },
    to: { type: "string", value: "FILE", help: "where the copy goes (required); must not exist unless --force" },
    force: { type: "boolean", help: "replace --to if it exists" },
  },
  async run({ values }) {
    if (str(values, "database") !== undefined) throw new UsageError("backup copies a SQLite file; back PostgreSQL up with pg_dump");
    const from = str(values, "db") ?? process.env.TALLY_DB;
    if (from === undefined || from === "") throw new UsageError("--db is required");
    const to = resolve(required(values, "to"));
    requireDatabase({ kind: "sqlite", path: from });
    if (existsSync(to) && realpathSync(to) === realpathSync(from)) throw new UsageError("--to is the database itself");
    if (existsSync(to) && !bool(values, "force")) return fail(`${to} exists; give --force to replace it`);
    // A WAL file left beside the target would be replayed into the new copy on its first open.
    for (const side of [`${to}-wal`, `${to}-journal`]) {
      if (existsSync(side)) return fail(`${side} exists: the target is open, or was not closed cleanly; choose another --to`);
    }
    const started = performance.now();
    const temp = `${to}.tmp-${process.pid}`;
    try {
      const pages = await copyDatabase(from, temp);
      const corrupt = integrityProblem(temp);
      if (corrupt !== undefined) return fail(`the copy failed its check (${corrupt}); ${to} was not written`);
      const version = schemaVersionOf(temp);
      const problem = schemaProblem(version);
      if (problem !== undefined || version === undefined) return fail(`the copy failed its check (${problem}); ${to} was not written`);
      const reports: { tenant: string; report: VerifyReport }[] = [];
      const ok = await verifyCopy(temp, version, (tenant, report) => reports.push({ tenant, report }));
      if (!ok) {
        for (const r of reports.filter((x) => !x.report.ok)) printJson({ tenant: r.tenant, ...r.report });
        return fail(`the copy does not verify (the source will not either: run tally verify --db ${from}); ${to} was not written`);
      }
      // Closed by now, so fully checkpointed: a WAL file left over would be a bug, and renaming without it would lose data.
      if (existsSync(`${temp}-wal`)) return fail(`${temp}-wal is still there after the check; ${to} was not written`);
      renameSync(temp, to);
      printJson({
        backup: {
          from: resolve(from),
          to,
          pages,
          bytes: statSync(to).size,
          schema_version: version,
          integrity: "ok",
          tenants: reports.length,
          verified: true,
          seconds: Math.round(performance.now() - started) / 1000,
        },
      });
      return 0;
    } finally {
      removeDatabase(temp);
    }
  },
};

/**
 * Copies in one backup step (every page at once): one read transaction,
 * hence one consistent snapshot. In smaller steps SQLite restarts the copy
 * whenever another process commits between two of them, which under a busy
 * server may be forever.
 */
async function copyDatabase(from: string, to: string): Promise<number> {
  const source = new Database(from, { readonly: true, fileMustExist: true });
  try {
    const done = await source.backup(to, { progress: () => 0x7fffffff });
    return done.totalPages;
  } finally {
    source.close();
  }
}

/** PRAGMA integrity_check on the copy: undefined when "ok". */
function integrityProblem(path: string): string | undefined {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const rows = db.pragma("integrity_check") as { integrity_check: string }[];
    const result = rows.map((r) => r.integrity_check).join("; ");
    return result === "ok" ? undefined : `integrity_check: ${result}`;
  } finally {
    db.close();
  }
}

/** The schema version of a Tally database file (its highest migration applied), or undefined when it is none. */
function schemaVersionOf(path: string): number | undefined {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get();
    if (table === undefined) return undefined;
    return Number((db.prepare("SELECT coalesce(max(version), 0) AS v FROM schema_migrations").pluck().get() as number | bigint));
  } finally {
    db.close();
  }
}

const KNOWN_VERSION = Math.max(...MIGRATIONS.map((m) => m.version));

/** Undefined when the copy is a Tally database of a schema this version knows. */
function schemaProblem(version: number | undefined): string | undefined {
  if (version === undefined) return "not a Tally database: no schema_migrations table";
  if (version > KNOWN_VERSION) return `schema version ${version} is newer than this tally's ${KNOWN_VERSION}: back up with the newer tally`;
  return undefined;
}

/**
 * Tally's verify over the copy. Opening a store migrates, and a backup must
 * stay as the source was: when the copy's schema is older than this
 * version's, the check runs on a scratch copy of it, which is then removed.
 */
async function verifyCopy(path: string, version: number, report: (tenant: string, r: VerifyReport) => void): Promise<boolean> {
  const current = version === KNOWN_VERSION;
  const checked = current ? path : `${path}.verify`;
  if (!current) copyFileSync(path, checked);
  try {
    const store = SqliteStore.open({ path: checked });
    try {
      return await verifyTenants(store, undefined, report);
    } finally {
      await store.close();
    }
  } finally {
    if (!current) removeDatabase(checked);
  }
}

/** Removes a database file and its side files, when present. */
function removeDatabase(path: string): void {
  for (const p of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) rmSync(p, { force: true });
}
