/**
 * `npx tsx bench/heap-summary.ts before.heapsnapshot after.heapsnapshot [count]`:
 * what grew between two V8 heap snapshots, by constructor (or node type for
 * closures, strings, arrays and native memory), as self bytes and objects
 * per `count` (the number of streams opened between the two; 1 if absent).
 * bench:streams takes the two snapshots with BENCH_HEAP_SNAPSHOT=<dir>.
 */
import { readFileSync } from "node:fs";

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Self bytes and object count per key (`type:name`). */
export function tally(file: string): Map<string, { bytes: number; count: number }> {
  const s = JSON.parse(readFileSync(file, "utf8")) as Snapshot;
  const f = s.snapshot.meta.node_fields;
  const width = f.length;
  const iType = f.indexOf("type");
  const iName = f.indexOf("name");
  const iSize = f.indexOf("self_size");
  const types = s.snapshot.meta.node_types[0];
  const out = new Map<string, { bytes: number; count: number }>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType]!]!;
    let name = s.strings[s.nodes[i + iName]!]!;
    // Strings and code are keyed by type; their names are their contents.
    if (type === "string" || type === "concatenated string" || type === "sliced string" || type === "code" || type === "number") name = "";
    if (type === "closure") name = `${name}()`;
    const key = `${type}:${name.slice(0, 60)}`;
    const e = out.get(key) ?? { bytes: 0, count: 0 };
    e.bytes += s.nodes[i + iSize]!;
    e.count++;
    out.set(key, e);
  }
  return out;
}

function main(): void {
  const [before, after, countArg] = process.argv.slice(2);
  if (before === undefined || after === undefined) throw new Error("usage: heap-summary.ts before after [count]");
  const n = Number(countArg ?? 1);
  const a = tally(before);
  const b = tally(after);
  const rows: { key: string; bytes: number; count: number }[] = [];
  let total = 0;
  for (const [key, v] of b) {
    const w = a.get(key) ?? { bytes: 0, count: 0 };
    const bytes = (v.bytes - w.bytes) / n;
    total += bytes;
    rows.push({ key, bytes, count: (v.count - w.count) / n });
  }
  rows.sort((x, y) => y.bytes - x.bytes);
  process.stdout.write(`heap growth per unit (${n}): ${(total / 1024).toFixed(2)} KiB of self size\n`);
  process.stdout.write("bytes/unit  objects/unit  type:constructor\n");
  for (const r of rows.slice(0, 40)) process.stdout.write(`${r.bytes.toFixed(0).padStart(10)}  ${r.count.toFixed(2).padStart(12)}  ${r.key}\n`);
}

main();
