import type { Interceptor, UnaryRequest, StreamRequest } from "@connectrpc/connect";
import { Code, ConnectError, createContextKey } from "@connectrpc/connect";
import type { Span } from "@opentelemetry/api";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { LedgerError } from "../../domain/errors.js";
import { principalKey } from "../../services/principal.js";
import type { Logger } from "../log.js";
import { restCallKey } from "../rest-call.js";
import type { Metrics, Protocol } from "./metrics.js";
import { codeName } from "./metrics.js";
import { attachRequestInfo, requestFields, requestInfoKey, requestInfoOf } from "./request-context.js";
import type { RequestInfo } from "./request-context.js";
import { RequestIds, acceptedRequestId } from "./request-id.js";
import { formatTraceParent, newSpanId, parseTraceParent } from "./traceparent.js";
import type { Tracing } from "./tracing.js";
import { endCallSpan, startCallSpan } from "./tracing.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** Options for {@link Observer}. */
export interface ObserverOptions {
  readonly logger: Logger;
  /** Accept, generate and echo `x-request-id` (true). */
  readonly requestIds?: boolean;
  readonly metrics?: Metrics | undefined;
  readonly tracing?: Tracing | undefined;
}

/** The call's span, from the outer interceptor to the inner one. */
const spanKey = createContextKey<Span | undefined>(undefined, { description: "the call's span" });

/** Longest client-controlled value (a path, an id) put in a log line. */
const MAX_LOGGED = 256;
/** What a presented credential id may look like to be logged (it is the client's to fill). */
const LOGGABLE_ID = /^[A-Za-z0-9._~:+/=@-]{1,128}$/;

/**
 * Everything a server tells about its requests, in one place: the request
 * id (accepted from `x-request-id` when well-formed, generated otherwise,
 * echoed on every answer), W3C `traceparent` (validated; the answer carries
 * the server's span of the trace), one log line per request, the call
 * metrics and the call spans.
 *
 * Each feature costs nothing when off: with request ids, metrics and
 * tracing off and info logging off, the front door does no work and there is
 * no interceptor. A call's work is: reading two headers, one small object
 * for the request, one interceptor frame, and a cached series update.
 */
export class Observer {
  readonly #log: Logger;
  readonly #ids: RequestIds | undefined;
  readonly #metrics: Metrics | undefined;
  readonly #tracing: Tracing | undefined;
  /** Whether requests get a RequestInfo at all. */
  readonly active: boolean;
  /** The interceptors to put first and last in the chain (empty when there is nothing to observe). */
  readonly outer: Interceptor[];
  readonly inner: Interceptor[];

  constructor(options: ObserverOptions) {
    this.#log = options.logger;
    this.#ids = options.requestIds === false ? undefined : new RequestIds();
    this.#metrics = options.metrics;
    this.#tracing = options.tracing;
    const logging = this.#log.infoEnabled !== false;
    this.active = this.#ids !== undefined || this.#metrics !== undefined || this.#tracing !== undefined || logging;
    this.outer = this.active ? [this.#outer()] : [];
    const tracing = this.#tracing;
    // The call's span, for a store write started in the implementation's synchronous part (see tracingStoreObserver).
    this.inner =
      tracing === undefined
        ? []
        : [
            (next) => (req) => {
              tracing.slot.current = req.contextValues.get(spanKey);
              try {
                return next(req);
              } finally {
                tracing.slot.current = undefined;
              }
            },
          ];
  }

  /** Called by the front door first for every request: its id and trace context, echoed on the answer. */
  begin(req: Req, res: Res): void {
    if (!this.active) return;
    let id: string | undefined;
    if (this.#ids !== undefined) {
      id = acceptedRequestId(req.headers["x-request-id"]) ?? this.#ids.next();
      res.setHeader("x-request-id", id);
    }
    const tp = req.headers.traceparent;
    const parent = tp === undefined ? undefined : parseTraceParent(tp);
    const ts = parent === undefined ? undefined : req.headers.tracestate;
    // Every field set here, so that all of them share one shape.
    const info: RequestInfo = {
      id,
      parent,
      traceState: typeof ts === "string" && ts.length <= 512 ? ts : undefined,
      start: performance.now(),
      req,
      res,
      traceId: undefined,
      spanId: undefined,
      observed: false,
    };
    attachRequestInfo(req, info);
  }

  /**
   * Logs a request the front door (or the dashboard, a probe, /metrics)
   * answered itself, once it is answered: 404s and the bare 404 of an
   * unknown method at info, the rest at debug.
   */
  http(req: Req, res: Res, kind: "not_found" | "unknown_method" | "endpoint" | "ui", path: string): void {
    const debug = kind === "endpoint" || kind === "ui";
    if (debug ? this.#log.debugEnabled !== true : this.#log.infoEnabled === false) return;
    const info = requestInfoOf(req);
    const start = info?.start ?? performance.now();
    res.once("close", () => {
      const fields = {
        kind,
        http_method: String(req.method).slice(0, 16),
        path: path.slice(0, MAX_LOGGED),
        status: res.statusCode,
        duration_ms: ms(start),
        ...requestFields(info),
      };
      if (debug) this.#log.debug?.("http", fields);
      else this.#log.info("http", fields);
    });
  }

  /**
   * Records a call refused before the interceptors ran (a malformed
   * message, a bad protocol header, a REST body too large, a failed REST
   * authentication): its metrics and its one log line.
   */
  refused(req: Req, procedure: string | undefined, protocol: Protocol, error: ConnectError, extra: Record<string, unknown> = {}): void {
    const info = requestInfoOf(req);
    const start = info?.start;
    if (this.#metrics !== undefined && procedure !== undefined && start !== undefined) {
      this.#metrics.callSeries(procedure, protocol, error.code).observe((performance.now() - start) / 1000);
    }
    if (this.#log.infoEnabled === false) return;
    this.#log.info("rpc", {
      ...(procedure === undefined ? {} : { procedure }),
      protocol,
      ...extra,
      code: codeName(error.code),
      ...errorFields(error),
      ...(start === undefined ? {} : { duration_ms: ms(start) }),
      ...requestFields(info),
    });
  }

  /** Records a REST request by dialect and route template once it is answered (the route's own metric). */
  restDone(req: Req, dialect: string, route: string, status: number): void {
    const start = requestInfoOf(req)?.start;
    if (this.#metrics !== undefined && start !== undefined) this.#metrics.restSeries(dialect, route, status).observe((performance.now() - start) / 1000);
  }

  /** The request id and trace fields of a log line about this request. */
  fields(req: Req): Record<string, string> {
    return requestFields(requestInfoOf(req));
  }

  #outer(): Interceptor {
    const tracing = this.#tracing;
    return (next) => async (req) => {
      const info = req.contextValues.get(requestInfoKey);
      if (info !== undefined) info.observed = true;
      const start = info?.start ?? performance.now();
      const protocol = protocolOf(req, info);
      let span: Span | undefined;
      if (tracing !== undefined) {
        span = startCallSpan(tracing.tracer, info, req.service.typeName, req.method.name, protocol);
        req.contextValues.set(spanKey, span);
        if (info !== undefined) {
          const sc = span.spanContext();
          info.traceId = sc.traceId;
          info.spanId = sc.spanId;
          // Echoed to a caller that sent one: it continues its trace through this span.
          if (info.parent !== undefined && !info.res.headersSent) info.res.setHeader("traceparent", formatTraceParent(sc.traceId, sc.spanId, sc.traceFlags));
        }
      } else if (info?.parent !== undefined) {
        // No tracer: the trace still goes on through this server, as one span nobody records.
        info.spanId = newSpanId();
        if (!info.res.headersSent) info.res.setHeader("traceparent", formatTraceParent(info.parent.traceId, info.spanId, info.parent.flags));
      }
      try {
        const res = await next(req);
        if (!res.stream) {
          this.#done(req, info, start, protocol, span, 0, undefined);
          return res;
        }
        const source = res.message;
        const done = (err: unknown) => this.#done(req, info, start, protocol, span, err === undefined ? 0 : ConnectError.from(err).code, err);
        return {
          ...res,
          message: (async function* () {
            let err: unknown;
            try {
              yield* source;
            } catch (e) {
              err = e;
              throw e;
            } finally {
              done(err);
            }
          })(),
        };
      } catch (e) {
        this.#done(req, info, start, protocol, span, ConnectError.from(e).code, e);
        throw e;
      }
    };
  }

  /** A call has ended: its series, its span, its log line. No closure per call: the unary path calls this directly. */
  #done(req: UnaryRequest | StreamRequest, info: RequestInfo | undefined, start: number, protocol: Protocol, span: Span | undefined, code: Code | 0, error: unknown): void {
    if (this.#metrics !== undefined) this.#metrics.callSeries(req.method, protocol, code).observe((performance.now() - start) / 1000);
    if (span !== undefined) endCallSpan(span, code, codeName(code));
    if (this.#log.infoEnabled !== false) this.#line(req, info, start, protocol, code, error, req.contextValues.get(principalKey));
  }

  #line(
    req: UnaryRequest | StreamRequest,
    info: RequestInfo | undefined,
    start: number,
    protocol: Protocol,
    code: Code | 0,
    error: unknown,
    principal: { tenantId: string; keyId: string } | undefined,
  ): void {
    const rest = req.contextValues.get(restCallKey);
    this.#log.info("rpc", {
      procedure: `/${req.service.typeName}/${req.method.name}`,
      protocol,
      ...(rest === undefined ? {} : { http_method: rest.method, path: rest.path.slice(0, MAX_LOGGED), dialect: rest.dialect, route: rest.route }),
      code: codeName(code),
      ...(error === undefined ? {} : errorFields(error)),
      duration_ms: ms(start),
      tenant: principal?.tenantId,
      key_id: principal?.keyId,
      ...requestFields(info),
    });
  }
}

/** The protocol a call came in by: REST when transcoded, else by its Content-Type. */
function protocolOf(req: UnaryRequest | StreamRequest, info: RequestInfo | undefined): Protocol {
  if (req.contextValues.get(restCallKey) !== undefined) return "rest";
  return protocolOfContentType(info === undefined ? (req.header.get("content-type") ?? undefined) : info.req.headers["content-type"]);
}

/** The protocol of a request by its Content-Type, for refusals made before a call exists. */
export function protocolOfContentType(ct: string | undefined): Protocol {
  if (ct === undefined) return "connect";
  if (ct.startsWith("application/grpc-web")) return "grpc-web";
  if (ct.startsWith("application/grpc")) return "grpc";
  return "connect";
}

/**
 * The why of a failed call, for its log line: the domain's reason, and for
 * an authentication failure the key or credential id presented (never a
 * secret; a malformed id is not repeated).
 */
function errorFields(error: unknown): Record<string, string> {
  const cause = error instanceof ConnectError ? error.cause : error;
  if (!(cause instanceof LedgerError)) return {};
  const f: Record<string, string> = { reason: cause.reason };
  if (cause.code === "unauthenticated" && cause.credentialId !== undefined) {
    f.credential_id = LOGGABLE_ID.test(cause.credentialId) ? cause.credentialId : "(malformed)";
  }
  return f;
}

function ms(start: number): number {
  return Math.round((performance.now() - start) * 100) / 100;
}


