import { createContextKey } from "@connectrpc/connect";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { TraceParent } from "./traceparent.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/**
 * What the front door learnt of a request before dispatching it, for the
 * layers that log, measure and trace it: its id (echoed as `x-request-id`),
 * the caller's trace context, and when it arrived.
 */
export interface RequestInfo {
  /** The request id (the client's, or generated); undefined when request ids are off. */
  readonly id: string | undefined;
  /** The valid `traceparent` the client sent. */
  readonly parent: TraceParent | undefined;
  /** The raw `tracestate` that came with it (passed on unread). */
  readonly traceState: string | undefined;
  /** performance.now() when the front door got the request. */
  readonly start: number;
  readonly req: Req;
  readonly res: Res;
  /** The trace and span of this server's handling, once a call has them (for its log line). */
  traceId?: string | undefined;
  spanId?: string | undefined;
  /** Set once the interceptors have seen the call (it then gets its log line and metrics there). */
  observed?: boolean;
}

const INFO = Symbol("tally.request");

/** Attaches the info to the Node request, where the RPC and REST layers pick it up. */
export function attachRequestInfo(req: Req, info: RequestInfo): void {
  (req as unknown as { [INFO]?: RequestInfo })[INFO] = info;
}

/** The info the front door attached to a request; undefined when observation is off. */
export function requestInfoOf(req: Req): RequestInfo | undefined {
  return (req as unknown as { [INFO]?: RequestInfo })[INFO];
}

/** The request's info as interceptors see it, set by the RPC and REST layers from {@link requestInfoOf}. */
export const requestInfoKey = createContextKey<RequestInfo | undefined>(undefined, { description: "the request's id and trace context" });

/** The request id and trace fields of a log line about this request (none when unknown). */
export function requestFields(info: RequestInfo | undefined): Record<string, string> {
  if (info === undefined) return {};
  const f: Record<string, string> = {};
  if (info.id !== undefined) f.request_id = info.id;
  const traceId = info.traceId ?? info.parent?.traceId;
  if (traceId !== undefined) f.trace_id = traceId;
  if (info.spanId !== undefined) f.span_id = info.spanId;
  return f;
}
