import { Access } from "../domain/access.js";
import { Ledger, systemClock } from "../domain/ledger.js";
import { journalRecords } from "../journal-file/export.js";
import { fileLines, spoolStdin, writeRecords, writeRecordsToFile } from "../journal-file/file-io.js";
import { importJournal } from "../journal-file/import.js";
import { progressBar } from "../journal-file/progress.js";
import type { Command } from "./command.js";
import { STORE_FLAGS, UsageError, bool, str, strs } from "./flags.js";
import { openStore, requireDatabase, storeLocation } from "./open-store.js";

/**
 * `tally export [--tenant ID]... [--out FILE]`: the journal as NDJSON, to
 * stdout or a file, with a progress bar on a terminal's stderr. Prints what
 * it wrote as one JSON line (to stderr when the data goes to stdout).
 */
export const exportCommand: Command = {
  name: "export",
  summary: "write the journal as NDJSON to stdout or a file",
  synopsis: "[--tenant ID]... [--out FILE] [--db FILE | --database URL]",
  details:
    "Tenants, assets, accounts, transfers, holds, freezes and effective times, one JSON record a line\n" +
    "(see README, \"Import and export\"). Prints what it wrote as one JSON line (to stderr when the\n" +
    "data goes to stdout).",
  flags: {
    ...STORE_FLAGS,
    tenant: { type: "string", multiple: true, value: "ID", help: "only these tenants (default: every tenant)" },
    out: { type: "string", short: "o", value: "FILE", help: "write here instead of stdout (- for stdout)" },
  },
  async run({ values }) {
    const tenants = strs(values, "tenant");
    const out = str(values, "out");
    const store = await openStore(values);
    const toStdout = out === undefined || out === "-";
    const bar = progressBar(process.stderr, "export", "writes");
    try {
      const started = performance.now();
      let lines = 0;
      let writes = 0;
      const source = journalRecords(store, {
        tenants: tenants.length === 0 ? undefined : tenants,
        onProgress: (p) => {
          writes = p.writes;
          bar.update(Number(p.sequence), Number(p.head));
        },
      });
      async function* counted() {
        for await (const r of source) {
          lines++;
          yield r;
        }
      }
      if (toStdout) await writeRecords(counted(), process.stdout);
      else await writeRecordsToFile(counted(), out);
      bar.finish();
      const seconds = (performance.now() - started) / 1000;
      const summary = JSON.stringify({ exported: { lines, writes, file: toStdout ? null : out }, seconds: round(seconds) }) + "\n";
      (toStdout ? process.stderr : process.stdout).write(summary);
      return 0;
    } finally {
      await store.close();
    }
  },
};

/**
 * `tally import [--tenant ID] [--batch N] [--no-verify] [--create] FILE|-`:
 * reads a journal file through the ledger's rules, then verifies each
 * imported tenant. Prints a JSON report; exit 1 when verify finds a
 * difference. A SQLite --db that does not exist is refused unless --create
 * says a new database is meant (a mistyped path would otherwise be one).
 */
export const importCommand: Command = {
  name: "import",
  summary: "read an export through the ledger's rules (idempotent), then verify",
  synopsis: "[--tenant ID] [--batch N] [--no-verify] [--create] [--db FILE | --database URL] FILE|-",
  details:
    "FILE is an export (- reads stdin). Importing the same file twice changes nothing the second time.\n" +
    "A SQLite --db must exist, unless --create is given: then a new database is made for the import.",
  positionals: true,
  flags: {
    ...STORE_FLAGS,
    tenant: { type: "string", value: "ID", help: "import the file's one tenant section into this tenant" },
    batch: { type: "string", value: "N", help: "records per write" },
    "no-verify": { type: "boolean", help: "skip the verify of each imported tenant" },
    create: { type: "boolean", help: "create the SQLite --db when it does not exist (a fresh database for the import)" },
  },
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new UsageError("give one file to import (or - for stdin)");
    const batch = str(values, "batch");
    if (batch !== undefined && !/^[1-9][0-9]*$/.test(batch)) throw new UsageError("--batch must be a positive integer");
    // Before stdin is spooled: a refused import reads nothing.
    const create = { create: bool(values, "create"), hint: "give --create to import into a new database" };
    requireDatabase(storeLocation(values), create);
    const spooled = positionals[0] === "-" ? await spoolStdin() : undefined;
    const path = spooled?.path ?? positionals[0]!;
    const store = await openStore(values, create);
    const bar = progressBar(process.stderr, "import", "records");
    try {
      const ledger = new Ledger({ store, clock: systemClock });
      const report = await importJournal({ ledger, access: new Access(store, systemClock), tenants: store }, () => fileLines(path), {
        tenant: str(values, "tenant"),
        batchSize: batch === undefined ? undefined : Number(batch),
        verify: !bool(values, "no-verify"),
        onProgress: (p) => bar.update(p.records, p.total),
      });
      bar.finish();
      process.stdout.write(JSON.stringify({ imported: { ...report, seconds: round(report.seconds) } }) + "\n");
      return report.ok ? 0 : 1;
    } finally {
      await store.close();
      await spooled?.remove();
    }
  },
};

function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}
