/** A W3C trace context (https://www.w3.org/TR/trace-context/), as a `traceparent` header carries it. */
export interface TraceParent {
  /** 32 lower-case hex digits, not all zero. */
  readonly traceId: string;
  /** 16 lower-case hex digits, not all zero: the caller's span. */
  readonly spanId: string;
  /** The trace flags byte (bit 0: sampled). */
  readonly flags: number;
}

const V00 = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
// A later version may append fields after the flags, each behind a dash.
const FUTURE = /^([0-9a-e][0-9a-f]|f[0-9a-e])-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);

/** Longest traceparent header read; anything longer is ignored. */
const MAX_LENGTH = 512;

/**
 * Parses a `traceparent` header as the W3C spec says a receiver must:
 * version 00 exactly, a later version by its first four fields; version ff,
 * upper-case hex, all-zero ids and anything malformed are invalid, and an
 * invalid header is ignored (the request then starts a new trace).
 */
export function parseTraceParent(header: string | string[] | undefined): TraceParent | undefined {
  if (typeof header !== "string" || header.length > MAX_LENGTH) return undefined;
  const m = V00.exec(header);
  let traceId: string, spanId: string, flags: string;
  if (m !== null) [, traceId, spanId, flags] = m as unknown as [string, string, string, string];
  else {
    const f = FUTURE.exec(header);
    if (f === null || f[1] === "00") return undefined;
    [traceId, spanId, flags] = [f[2]!, f[3]!, f[4]!];
  }
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return { traceId, spanId, flags: parseInt(flags, 16) };
}

/** The header value for a span of the trace: version 00. */
export function formatTraceParent(traceId: string, spanId: string, flags: number): string {
  return `00-${traceId}-${spanId}-${flags & 0xff ? (flags & 0xff).toString(16).padStart(2, "0") : "00"}`;
}

/**
 * A new span id (16 hex digits, never all zero). Math.random, as the
 * OpenTelemetry SDK's own id generator: ids must be unique, not unguessable.
 */
export function newSpanId(): string {
  const hi = (Math.random() * 0x100000000) >>> 0;
  const lo = (Math.random() * 0x100000000) >>> 0 || 1;
  return hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0");
}

/** A new trace id (32 hex digits, never all zero). */
export function newTraceId(): string {
  return newSpanId() + newSpanId();
}
