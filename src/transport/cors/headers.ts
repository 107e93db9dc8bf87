import { cors as connectCors } from "@connectrpc/connect";

/**
 * The request headers Tally itself reads beyond the Connect, gRPC and
 * gRPC-Web protocols' own: `authorization` (Bearer API keys in
 * auth-interceptor.ts, and the Basic and Bearer schemes of the dialects) and
 * `last-event-id` (a reconnecting server-sent events client, rest/event-stream.ts),
 * and the request id and W3C trace context (observe/observer.ts).
 */
export const TALLY_REQUEST_HEADERS: readonly string[] = ["authorization", "last-event-id", "x-request-id", "traceparent", "tracestate"];

/**
 * Response headers a browser client of Tally must be able to read beyond
 * connect-es's list: `allow`, which names the methods of a REST path answered
 * 405, and `x-request-id` and `traceparent`, which every answer of a call
 * carries (observe/observer.ts). Tally's handlers set no trailers of their own; one that did would be
 * sent as `trailer-<name>` on Connect unary calls and need adding here.
 */
export const TALLY_EXPOSED_HEADERS: readonly string[] = ["allow", "x-request-id", "traceparent"];

/** The header lists of a CORS answer, lower-case and without repeats. */
export interface CorsHeaderLists {
  /** For Access-Control-Allow-Methods on an RPC path: connect-es's list (POST for every protocol, GET for Connect GET). */
  readonly rpcMethods: readonly string[];
  /** For Access-Control-Allow-Headers: connect-es's list, Tally's, and the dialects'. */
  readonly allowedHeaders: readonly string[];
  /** For Access-Control-Expose-Headers: connect-es's list and Tally's. */
  readonly exposedHeaders: readonly string[];
}

/**
 * The lists for a server: connect-es's own (`cors` from @connectrpc/connect,
 * kept current with the protocols by its authors), then the headers Tally
 * reads, then those the enabled dialects' clients send (their
 * `requestHeaders`).
 */
export function corsHeaderLists(dialectRequestHeaders: readonly string[] = []): CorsHeaderLists {
  return {
    rpcMethods: [...new Set(connectCors.allowedMethods.map((m) => m.toUpperCase()))],
    allowedHeaders: unique([...connectCors.allowedHeaders, ...TALLY_REQUEST_HEADERS, ...dialectRequestHeaders]),
    exposedHeaders: unique([...connectCors.exposedHeaders, ...TALLY_EXPOSED_HEADERS]),
  };
}

function unique(names: readonly string[]): string[] {
  return [...new Set(names.map((n) => n.toLowerCase()))];
}
