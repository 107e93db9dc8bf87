import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { pipeline } from "node:stream/promises";
import type { Writable } from "node:stream";
import { encodeRecord, type JournalRecord } from "./records.js";

/** The lines of a file, without their line ends (LF or CRLF). */
export async function* fileLines(path: string): AsyncGenerator<string> {
  const lines = createInterface({ input: createReadStream(path, { encoding: "utf8" }), crlfDelay: Infinity });
  for await (const line of lines) yield line;
}

/** Writes records as NDJSON, in chunks of about 64 KiB, waiting whenever the stream asks to. */
export async function writeRecords(records: AsyncIterable<JournalRecord>, out: Writable): Promise<void> {
  let chunk = "";
  for await (const r of records) {
    chunk += encodeRecord(r) + "\n";
    if (chunk.length >= 65536) {
      if (!out.write(chunk)) await once(out, "drain");
      chunk = "";
    }
  }
  if (chunk !== "" && !out.write(chunk)) await once(out, "drain");
}

/**
 * Writes records to `path` through a temporary file renamed into place at
 * the end, so that an export that fails never leaves a file that looks whole.
 */
export async function writeRecordsToFile(records: AsyncIterable<JournalRecord>, path: string): Promise<void> {
  const partial = `${path}.partial`;
  const out = createWriteStream(partial);
  try {
    await writeRecords(records, out);
    out.end();
    await once(out, "finish");
    await rename(partial, path);
  } catch (e) {
    out.destroy();
    await rm(partial, { force: true });
    throw e;
  }
}

/**
 * Copies stdin to a temporary file (an import reads its input twice: it
 * checks the whole file before writing anything) and returns its path and a
 * function that removes it.
 */
export async function spoolStdin(): Promise<{ path: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "tally-import-"));
  const path = join(dir, "stdin.ndjson");
  await pipeline(process.stdin, createWriteStream(path));
  return { path, remove: () => rm(dir, { recursive: true, force: true }) };
}
