/**
 * A Tally server for bench/observability.ts, with one observability setting:
 *
 *   off      request ids, metrics and tracing all off
 *   ids      request ids only
 *   metrics  metrics only
 *   on       request ids and metrics (the defaults of `tally serve`)
 *   tracing  request ids, metrics and tracing, spans going through the SDK's
 *            batch processor to an exporter that drops them (counted)
 *   sampled  the same with 1 call in 10 sampled (OTEL_TRACES_SAMPLER=traceidratio, 0.1)
 *
 * Logging is at error (nothing per call) in every setting, as in `npm run
 * bench`. Prints `READY port=N`; on SIGTERM prints `SPANS n` (spans exported)
 * and exits.
 */
import { SpanKind } from "@opentelemetry/api";
import type { ExportResult } from "@opentelemetry/core";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base";
import { startTally } from "../src/app.js";
import { jsonLogger } from "../src/transport/log.js";

const MODES = ["off", "ids", "metrics", "on", "tracing", "sampled"] as const;

/** Drops every span; counts the calls' (server) spans so that the run can check none was lost before export. */
class CountingExporter implements SpanExporter {
  spans = 0;
  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    for (const s of spans) if (s.kind === SpanKind.SERVER) this.spans++;
    done({ code: 0 });
  }
  async shutdown(): Promise<void> {}
}

async function main(): Promise<void> {
  const arg = (name: string) => {
    const i = process.argv.indexOf(`--${name}`);
    if (i < 0 || process.argv[i + 1] === undefined) throw new Error(`--${name} is required`);
    return process.argv[i + 1]!;
  };
  const mode = arg("mode") as (typeof MODES)[number];
  if (!MODES.includes(mode)) throw new Error(`--mode must be one of ${MODES.join(", ")}`);
  const exporter = new CountingExporter();
  if (mode === "sampled") {
    // Read by the SDK's provider, as from a deployment's environment.
    process.env.OTEL_TRACES_SAMPLER = "traceidratio";
    process.env.OTEL_TRACES_SAMPLER_ARG = "0.1";
  }
  const traced = mode === "tracing" || mode === "sampled";
  const tally = await startTally({
    databasePath: arg("db"),
    port: 0,
    logger: jsonLogger(process.stderr, "error"),
    requestIds: mode !== "off" && mode !== "metrics",
    metrics: mode !== "off" && mode !== "ids",
    // Empty env: the machine's OTEL_* variables must not switch tracing on for the other settings.
    tracing: traced ? { exporter, processor: "batch" } : { env: {} },
  });
  process.stdout.write(`READY port=${tally.port}\n`);
  process.once("SIGTERM", () => {
    void tally.close().then(() => {
      process.stdout.write(`SPANS ${exporter.spans}\n`);
      process.exit(0);
    });
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`observability-server: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
