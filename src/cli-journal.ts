import { parseArgs } from "node:util";
import { Access } from "./domain/access.js";
import { Ledger, systemClock } from "./domain/ledger.js";
import type { Store } from "./domain/store.js";
import { journalRecords } from "./journal-file/export.js";
import { fileLines, spoolStdin, writeRecords, writeRecordsToFile } from "./journal-file/file-io.js";
import { importJournal } from "./journal-file/import.js";
import { progressBar } from "./journal-file/progress.js";

/** Opens the store the common flags name (--db / --database). */
export type StoreOpener = (values: { db?: string | undefined; database?: string | undefined }) => Promise<Store>;

const STORE_FLAGS = { db: { type: "string" }, database: { type: "string" } } as const;

/**
 * `tally export [--tenant ID]... [--out FILE]`: the journal as NDJSON, to
 * stdout or a file, with a progress bar on a terminal's stderr. Prints what
 * it wrote as one JSON line (to stderr when the data goes to stdout).
 */
export async function exportCommand(args: string[], openStore: StoreOpener): Promise<number> {
  const { values } = parseArgs({ args, options: { ...STORE_FLAGS, tenant: { type: "string", multiple: true }, out: { type: "string", short: "o" } } });
  const store = await openStore(values);
  const toStdout = values.out === undefined || values.out === "-";
  const bar = progressBar(process.stderr, "export", "writes");
  try {
    const started = performance.now();
    let lines = 0;
    let writes = 0;
    const source = journalRecords(store, {
      tenants: values.tenant,
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
    else await writeRecordsToFile(counted(), values.out!);
    bar.finish();
    const seconds = (performance.now() - started) / 1000;
    const summary = JSON.stringify({ exported: { lines, writes, file: toStdout ? null : values.out }, seconds: round(seconds) }) + "\n";
    (toStdout ? process.stderr : process.stdout).write(summary);
    return 0;
  } finally {
    await store.close();
  }
}

/**
 * `tally import [--tenant ID] [--batch N] [--no-verify] FILE|-`: reads a
 * journal file through the ledger's rules, then verifies each imported
 * tenant. Prints a JSON report; exit 1 when verify finds a difference.
 */
export async function importCommand(args: string[], openStore: StoreOpener): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...STORE_FLAGS, tenant: { type: "string" }, batch: { type: "string" }, "no-verify": { type: "boolean" } },
  });
  if (positionals.length !== 1) throw new Error("give one file to import (or - for stdin)");
  const batchSize = values.batch === undefined ? undefined : Number(values.batch);
  if (values.batch !== undefined && !/^[1-9][0-9]*$/.test(values.batch)) throw new Error("--batch must be a positive integer");
  const spooled = positionals[0] === "-" ? await spoolStdin() : undefined;
  const path = spooled?.path ?? positionals[0]!;
  const store = await openStore(values);
  const bar = progressBar(process.stderr, "import", "records");
  try {
    const ledger = new Ledger({ store, clock: systemClock });
    const report = await importJournal({ ledger, access: new Access(store, systemClock), tenants: store }, () => fileLines(path), {
      tenant: values.tenant,
      batchSize,
      verify: !values["no-verify"],
      onProgress: (p) => bar.update(p.records, p.total),
    });
    bar.finish();
    process.stdout.write(JSON.stringify({ imported: { ...report, seconds: round(report.seconds) } }) + "\n");
    return report.ok ? 0 : 1;
  } finally {
    await store.close();
    await spooled?.remove();
  }
}

function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}
