/**
 * Merges the BENCH_JSON files of several `npm run bench` invocations into one
 * report: every figure becomes the median over all runs of all invocations.
 * This is how the tables in BENCHMARKS.md are made.
 *
 * Usage: npx tsx bench/aggregate.ts run1.json run2.json run3.json
 */
import { readFileSync } from "node:fs";
import type { BenchResults, GetBalanceRun, RawRun } from "./report.js";
import { renderReport } from "./report.js";

const files = process.argv.slice(2);
if (files.length === 0) {
  process.stderr.write("usage: npx tsx bench/aggregate.ts FILE.json...\n");
  process.exit(2);
}
const all = files.map((f) => JSON.parse(readFileSync(f, "utf8")) as BenchResults);
const first = all[0]!;
for (const r of all) {
  // Medians over runs made with different settings would describe nothing.
  if (JSON.stringify(r.settings) !== JSON.stringify(first.settings)) throw new Error("the files were made with different settings");
}

function mergeRecords<T>(records: (Readonly<Record<string, readonly T[]>> | undefined)[]): Record<string, T[]> {
  const out: Record<string, T[]> = {};
  for (const rec of records) for (const [k, v] of Object.entries(rec ?? {})) (out[k] ??= []).push(...v);
  return out;
}

const withGet = all.filter((r) => r.getBalance);
const withPost = all.filter((r) => r.postTransfer);
const withRaw = all.filter((r) => r.raw);
const merged: BenchResults = {
  machine: first.machine,
  startedAt: first.startedAt,
  conditions: all.flatMap((r) => r.conditions),
  settings: first.settings,
  ...(withGet.length > 0
    ? { getBalance: { targets: withGet[0]!.getBalance!.targets, runs: mergeRecords<GetBalanceRun>(withGet.map((r) => r.getBalance!.runs)) } }
    : {}),
  ...(withPost.length > 0
    ? {
        postTransfer: {
          runs: withPost.flatMap((r) => r.postTransfer!.runs),
          verify: withPost.flatMap((r) => r.postTransfer!.verify),
          verified: withPost.every((r) => r.postTransfer!.verified),
        },
      }
    : {}),
  ...(withRaw.length > 0 ? { raw: mergeRecords<RawRun>(withRaw.map((r) => r.raw)) } : {}),
};
const total = all.length * first.settings.repeat;
const report = renderReport(merged, `median of ${total} runs (${all.length} invocations x ${first.settings.repeat})`);
process.stdout.write(report.text);
process.exit(report.failed ? 1 : 0);
