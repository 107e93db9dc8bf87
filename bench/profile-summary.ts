/**
 * Summarizes a V8 CPU profile (`node --cpu-prof`, or BENCH_CPU_PROF=dir npm
 * run bench) by where the time went: self time per component (connect,
 * protobuf-es, node:http2, Tally's own layers, SQLite, GC), the hottest
 * functions, and the inclusive time of Tally's per-call layers.
 *
 * Usage: npx tsx bench/profile-summary.ts FILE.cpuprofile [top=25] [FRAMES [UNITS]]
 * FRAMES, a regular expression over frame labels ("name path:line"), picks
 * the frames whose inclusive time is listed (default: Tally's per-call
 * layers); UNITS (e.g. the number of transfers the profile served) adds a
 * column of microseconds per unit.
 */
import { readFileSync } from "node:fs";

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

/** The parts of a .cpuprofile this summary reads. */
export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** The component a frame belongs to, for the self-time breakdown. */
export function componentOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (functionName === "(garbage collector)") return "garbage collector";
  if (functionName === "(idle)") return "idle";
  if (functionName === "(program)" || functionName === "(root)") return "V8/native (program)";
  if (url.includes("node_modules/@connectrpc/connect-node/")) return "connect-node";
  if (url.includes("node_modules/@connectrpc/connect/")) return "connect";
  if (url.includes("node_modules/@bufbuild/protobuf/")) return "protobuf-es";
  if (url.includes("node_modules/better-sqlite3/")) return "better-sqlite3 (JS wrapper)";
  if (url.includes("node_modules/@opentelemetry/")) return "opentelemetry";
  if (url.includes("node_modules/prom-client/")) return "prom-client";
  if (url.includes("node_modules/pino") || url.includes("node_modules/sonic-boom/")) return "pino";
  if (url.includes("node_modules/tsx/") || url.includes("node:internal/modules/")) return "module loading (start-up)";
  const src = /\/(src|gen|bench)\/([^/]+)/.exec(url);
  if (src) return `tally ${src[1]}/${src[2]}`;
  if (url.startsWith("node:internal/http2") || url.startsWith("node:http2")) return "node:http2";
  if (url.startsWith("node:internal/streams") || url.startsWith("node:stream")) return "node streams";
  if (url.includes("abort_controller") || url.includes("domexception") || url.includes("event_target")) return "node AbortController/DOMException";
  if (url.startsWith("node:")) return "node (other)";
  if (url === "") return "V8/native builtins";
  return "other";
}

/** Milliseconds of self time per key, and of inclusive time per frame label. */
export function summarize(p: CpuProfile): { totalMs: number; byComponent: Map<string, number>; selfByFrame: Map<string, number>; inclusive: Map<string, number> } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const perNode = new Map<number, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    perNode.set(id, (perNode.get(id) ?? 0) + dt);
    total += dt;
  });
  const label = (f: CallFrame) => `${f.functionName || "(anonymous)"} ${f.url.replace(/^.*node_modules\//, "").replace(/^.*\/(src|bench|gen)\//, "$1/")}:${f.lineNumber + 1}`;
  const byComponent = new Map<string, number>();
  const selfByFrame = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  for (const [id, us] of perNode) {
    const node = byId.get(id)!;
    add(byComponent, componentOf(node.callFrame), us);
    add(selfByFrame, label(node.callFrame), us);
    // Each frame counts once per sample even when it recurses.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur)!.callFrame);
      if (!seen.has(l)) {
        seen.add(l);
        add(inclusive, l, us);
      }
    }
  }
  const toMs = (m: Map<string, number>) => new Map([...m].map(([k, v]) => [k, v / 1000]));
  return { totalMs: total / 1000, byComponent: toMs(byComponent), selfByFrame: toMs(selfByFrame), inclusive: toMs(inclusive) };
}

const DEFAULT_FRAMES =
  /^(\(anonymous\) src\/transport\/(auth-interceptor|log)|\(anonymous\) src\/services\/errors|authenticate |getBalance src|postTransfers? src|commitBatch|handle .*protocol-(grpc|connect)\/handler-factory|universalRequestFromNodeRequest|universalResponseToNodeResponse|DOMException|abort .*implementation|exec .*better-sqlite3)/;

function print(file: string, top: number, frames: RegExp, units: number | undefined): void {
  const s = summarize(JSON.parse(readFileSync(file, "utf8")) as CpuProfile);
  const busy = s.totalMs - (s.byComponent.get("idle") ?? 0);
  const rows = (m: Map<string, number>, n: number, filter: (k: string) => boolean = () => true) =>
    [...m]
      .filter(([k]) => filter(k))
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `  ${((100 * v) / busy).toFixed(1).padStart(5)}%  ${v.toFixed(0).padStart(7)} ms${units === undefined ? "" : `  ${((1000 * v) / units).toFixed(1).padStart(7)} µs/unit`}  ${k}`)
      .join("\n");
  process.stdout.write(`${file}\nbusy ${busy.toFixed(0)} ms of ${s.totalMs.toFixed(0)} ms profiled (percentages are of busy time)\n`);
  process.stdout.write(`self time by component:\n${rows(s.byComponent, 30, (k) => k !== "idle")}\n`);
  process.stdout.write(`hottest functions (self):\n${rows(s.selfByFrame, top, (k) => !k.startsWith("(idle)"))}\n`);
  process.stdout.write(
    `Tally's layers and other frames of interest (inclusive):\n${rows(s.inclusive, 40, (k) => frames.test(k))}\n`,
  );
}

const [file, topArg, framesArg, unitsArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write("usage: npx tsx bench/profile-summary.ts FILE.cpuprofile [top]\n");
  process.exit(2);
}
print(file, Number(topArg ?? 25), framesArg === undefined ? DEFAULT_FRAMES : new RegExp(framesArg), unitsArg === undefined ? undefined : Number(unitsArg));
