import { ProxyTracerProvider, ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, createTraceState, trace } from "@opentelemetry/api";
import type { Context, Link, Span, Tracer } from "@opentelemetry/api";
import type { SpanExporter } from "@opentelemetry/sdk-trace-base";
import type { StoreObserver } from "../../store/store-observer.js";
import type { RequestInfo } from "./request-context.js";

/** Options for {@link startTracing}. */
export interface TracingOptions {
  /** The environment the standard `OTEL_*` variables are read from. */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Export spans here instead of what the environment says (tests: the SDK's
   * InMemorySpanExporter; the benchmark: one that drops them).
   */
  readonly exporter?: SpanExporter;
  /** How `exporter` is fed: "simple" (each span as it ends; tests) or "batch" (as in production). Default "batch". */
  readonly processor?: "simple" | "batch";
  /** service.version of the resource. */
  readonly version: string;
}

/** Tracing of a running server: its tracer and how to flush and stop it. */
export interface Tracing {
  readonly tracer: Tracer;
  /** Spans started since the last call's synchronous part began, for store transactions (see {@link Tracing.storeObserver}). */
  readonly slot: { current: Span | undefined };
  /** Flushes what is buffered and stops exporting. */
  shutdown(): Promise<void>;
}

/** Exporter names of OTEL_TRACES_EXPORTER that Tally can build. */
const EXPORTERS = ["otlp", "console"] as const;

/**
 * Tracing as the standard OpenTelemetry environment variables ask for it,
 * or undefined (no spans at all, and no per-call work):
 *
 * - on when OTEL_TRACES_EXPORTER names an exporter (`otlp`, `console`, or
 *   both), or OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
 *   is set (then `otlp`); off with OTEL_TRACES_EXPORTER=none or
 *   OTEL_SDK_DISABLED=true;
 * - `otlp` is OTLP over HTTP with protobuf (the spec's default protocol),
 *   configured by the exporter's own OTEL_EXPORTER_OTLP_* variables
 *   (endpoint, headers, timeout, compression);
 * - the batch processor reads OTEL_BSP_*, the sampler OTEL_TRACES_SAMPLER and
 *   _ARG (default parentbased_always_on), the resource OTEL_SERVICE_NAME
 *   (default `tally`) and OTEL_RESOURCE_ATTRIBUTES.
 *
 * The SDK is loaded only then (dynamic imports). No context manager is
 * installed: AsyncLocalStorage costs every promise of the process a hook on
 * Node 20, so the call span is passed explicitly instead. When something else
 * already registered a global tracer provider (an SDK preloaded with
 * `--import`), Tally's spans go to it.
 */
export async function startTracing(options: TracingOptions): Promise<Tracing | undefined> {
  const env = options.env ?? process.env;
  let exporters: SpanExporter[];
  if (options.exporter !== undefined) exporters = [options.exporter];
  else {
    const names = exporterNames(env);
    if (names === undefined) return globalTracing();
    exporters = await Promise.all(names.map((n) => buildExporter(n)));
  }
  const [{ NodeTracerProvider }, base, { resourceFromAttributes, detectResources, envDetector }] = await Promise.all([
    import("@opentelemetry/sdk-trace-node"),
    import("@opentelemetry/sdk-trace-base"),
    import("@opentelemetry/resources"),
  ]);
  const resource = resourceFromAttributes({ "service.name": env.OTEL_SERVICE_NAME ?? "tally", "service.version": options.version }).merge(
    detectResources({ detectors: [envDetector] }),
  );
  const simple = options.exporter !== undefined && options.processor === "simple";
  const provider = new NodeTracerProvider({
    resource,
    spanProcessors: exporters.map((e) => (simple ? new base.SimpleSpanProcessor(e) : new base.BatchSpanProcessor(e))),
  });
  return { tracer: provider.getTracer("tally", options.version), slot: { current: undefined }, shutdown: () => provider.shutdown() };
}

/** The exporters the environment asks for; undefined when tracing is off. */
export function exporterNames(env: NodeJS.ProcessEnv): (typeof EXPORTERS)[number][] | undefined {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return undefined;
  const listed = (env.OTEL_TRACES_EXPORTER ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "");
  if (listed.includes("none")) return undefined;
  if (listed.length === 0) return env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? ["otlp"] : undefined;
  for (const n of listed) {
    if (!(EXPORTERS as readonly string[]).includes(n)) throw new Error(`OTEL_TRACES_EXPORTER: unknown exporter "${n}" (Tally has ${EXPORTERS.join(", ")} and none)`);
  }
  return [...new Set(listed)] as (typeof EXPORTERS)[number][];
}

async function buildExporter(name: (typeof EXPORTERS)[number]): Promise<SpanExporter> {
  if (name === "console") return new (await import("@opentelemetry/sdk-trace-base")).ConsoleSpanExporter();
  return new (await import("@opentelemetry/exporter-trace-otlp-proto")).OTLPTraceExporter();
}

/** A tracer provider someone else registered globally, when there is one (not the API's no-op). */
function globalTracing(): Tracing | undefined {
  const global = trace.getTracerProvider();
  const noop = new ProxyTracerProvider().getDelegate();
  if (global instanceof ProxyTracerProvider ? global.getDelegate() === noop : global === noop) return undefined;
  return { tracer: global.getTracer("tally"), slot: { current: undefined }, shutdown: async () => undefined };
}

/** gRPC codes that make a server span an error (OpenTelemetry's RPC conventions). */
const SERVER_ERRORS: ReadonlySet<number> = new Set([2, 4, 12, 13, 14, 15]);

/** The span of one call: a child of the client's span when it sent a valid traceparent. */
export function startCallSpan(tracer: Tracer, info: RequestInfo | undefined, service: string, method: string, protocol: string): Span {
  let parent: Context = ROOT_CONTEXT;
  const p = info?.parent;
  if (p !== undefined) {
    parent = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: p.traceId,
      spanId: p.spanId,
      traceFlags: p.flags & TraceFlags.SAMPLED,
      isRemote: true,
      ...(info!.traceState === undefined ? {} : { traceState: createTraceState(info!.traceState) }),
    });
  }
  // Few attributes, set once: each costs the SDK a validation and a copy on every call.
  const span = tracer.startSpan(
    `${service}/${method}`,
    {
      kind: SpanKind.SERVER,
      attributes: {
        "rpc.system": protocol === "grpc" || protocol === "grpc-web" ? "grpc" : "connect_rpc",
        "rpc.service": service,
        "rpc.method": method,
        "tally.protocol": protocol,
      },
    },
    parent,
  );
  return span;
}

/** Ends a call's span with its outcome: the gRPC status code (0 for ok), and the code's name when it failed. */
export function endCallSpan(span: Span, code: number, codeName: string): void {
  span.setAttribute("rpc.grpc.status_code", code);
  if (code !== 0) {
    span.setAttribute("tally.code", codeName);
    if (SERVER_ERRORS.has(code)) span.setStatus({ code: SpanStatusCode.ERROR, message: codeName });
  }
  span.end();
}

/**
 * One span per store transaction (`tally.store.transaction`, with the store
 * and the number of writes it carries). A write started in a call's
 * synchronous part (before the call's first await, as PostTransfer's is)
 * is remembered: a transaction of that one write is a child of the call's
 * span, a group commit of several links to each of their calls. Without a
 * context manager nothing else is known of a caller, and such a
 * transaction is a root span of its own.
 */
export function tracingStoreObserver(tracing: Tracing, store: "sqlite" | "postgres"): StoreObserver {
  return {
    capture: () => tracing.slot.current,
    transaction(writes, callers) {
      const spans = (callers ?? []).filter((c): c is Span => c !== undefined);
      const only = writes === 1 && spans.length === 1 ? spans[0] : undefined;
      const links: Link[] = only === undefined ? spans.map((s) => ({ context: s.spanContext() })) : [];
      const span = tracing.tracer.startSpan(
        "tally.store.transaction",
        { kind: SpanKind.INTERNAL, attributes: { "db.system": store === "sqlite" ? "sqlite" : "postgresql", "tally.store": store, "tally.writes": writes }, links },
        only === undefined ? ROOT_CONTEXT : trace.setSpan(ROOT_CONTEXT, only),
      );
      return (committed) => {
        if (!committed) span.setStatus({ code: SpanStatusCode.ERROR, message: "rolled back" });
        span.end();
      };
    },
  };
}

/** Both observers, one capture (the tracing one's). */
export function bothObservers(a: StoreObserver | undefined, b: StoreObserver | undefined): StoreObserver | undefined {
  if (a === undefined || b === undefined) return a ?? b;
  const capture = b.capture ?? a.capture;
  return {
    ...(capture === undefined ? {} : { capture }),
    transaction(writes, callers) {
      const x = a.transaction(writes, callers);
      const y = b.transaction(writes, callers);
      return (ok) => {
        x(ok);
        y(ok);
      };
    },
  };
}
