import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import type { Message } from "@bufbuild/protobuf";
import { normalizeError } from "../../services/errors.js";
import { principalKey } from "../../services/principal.js";
import { nodeHeaderToWebHeader } from "../lean/headers.js";
import type { RpcHandler } from "../rpc-handler.js";
import { restCallKey } from "../rest-call.js";
import { DEFAULT_REQUEST_TIMEOUT_MS } from "../server.js";
import type { Logger } from "../log.js";
import { Observer } from "../observe/observer.js";
import { requestInfoKey, requestInfoOf } from "../observe/request-context.js";
import { readBounded } from "../read-body.js";
import type { ErrorEnvelopeWriter, EventStreamFormat } from "../../dialects/dialect.js";
import type { LastEventIdSetter } from "./event-stream.js";
import { lastEventIdSetter, serveEventStream } from "./event-stream.js";
import type { Authenticate } from "../auth-interceptor.js";
import { HTTP_STATUS, connectEnvelope, messageEnvelope, statusEnvelope } from "./errors.js";
import { writeFieldJson, writeMessageJson, writeProfileOf } from "./json-writer.js";
import { buildRequest } from "./request-builder.js";
import { SUPPORTED_ENCODINGS, decodeBody, requestCoding } from "./content-encoding.js";
import type { Route, RouteMatch } from "./route-table.js";
import { RouteTable } from "./route-table.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** Options for {@link createRestHandler}. */
export interface RestHandlerOptions {
  readonly routes: readonly Route[];
  /** The RPC layer the routes call into: its procedure paths and its in-process unary call. */
  readonly rpc: Pick<RpcHandler, "paths" | "invokeUnary" | "invokeServerStream">;
  /**
   * Authentication, the same function the auth interceptor runs: called for
   * every REST call once its body is read and before it is parsed; the
   * interceptor then finds the principal already set.
   */
  readonly authenticate?: Authenticate;
  /** How server-streaming routes answer as server-sent events, by "/pkg.Service/Method". */
  readonly eventStreams?: ReadonlyMap<string, EventStreamFormat>;
  /** Envelope writers by name, beside the built-in "connect" and "status". */
  readonly envelopes?: ReadonlyMap<string, ErrorEnvelopeWriter>;
  readonly readMaxBytes: number;
  /** Time a client has to send its whole request, in ms (60 s); then it is answered 408. */
  readonly requestTimeoutMs?: number;
  readonly logger: Logger;
  /** Logs and measures REST requests (refusals, and every request by route); a quiet one without request ids by default. */
  readonly observer?: Observer | undefined;
  /** The dialect of each service with routes, by its type name, for logs and metrics ("" for none). */
  readonly dialects?: ReadonlyMap<string, string>;
}

/** A request the REST table has something to say about: a route, a path served under other methods, or a malformed path. */
export type RestMatch = Exclude<RouteMatch, { kind: "not_found" }> | { readonly kind: "bad_path" };

/** The REST routes of the served services. */
export interface RestHandler {
  /** What the table holds for this method and raw path; undefined when no route has the path. */
  match(httpMethod: string, rawPath: string): RestMatch | undefined;
  /** Answers a request that {@link RestHandler.match} matched. */
  serve(req: Req, res: Res, match: RestMatch): void;
}

/**
 * Serves google.api.http routes by transcoding: builds the RPC input from the
 * path, query and JSON body, calls the same Connect handler in-process, and
 * writes the output with the service's JSON profile. It knows no dialect: the
 * dialects contribute protos, authenticators and envelope writers.
 */
export function createRestHandler(opts: RestHandlerOptions): RestHandler {
  const table = new RouteTable(opts.routes);
  const envelopes = new Map<string, ErrorEnvelopeWriter>([
    ["connect", connectEnvelope],
    ["status", statusEnvelope],
    ["message", messageEnvelope],
    ...(opts.envelopes ?? []),
  ]);
  for (const r of table.all) {
    const name = r.profile?.errorEnvelope || "connect";
    if (!envelopes.has(name)) throw new Error(`${r.service.typeName}: unknown error envelope "${name}"`);
    if (!opts.rpc.paths.has(procedure(r))) throw new Error(`${procedure(r)} has an http rule but no handler`);
  }
  // Server-sent events, prepared once per procedure.
  const events = new Map<string, { readonly format: EventStreamFormat; readonly resume: LastEventIdSetter | undefined }>();
  for (const r of table.all) {
    const format = opts.eventStreams?.get(procedure(r));
    if (r.method.methodKind === "server_streaming" && format !== undefined) {
      events.set(procedure(r), { format, resume: lastEventIdSetter(r.method.input, format) });
    }
  }

  const observer = opts.observer ?? new Observer({ logger: opts.logger, requestIds: false });
  const dialectOf = (r: Route | undefined) => (r === undefined ? "" : (opts.dialects?.get(r.service.typeName) ?? ""));

  const match = (httpMethod: string, rawPath: string): RestMatch | undefined => {
    let found: RouteMatch;
    try {
      found = table.find(httpMethod, rawPath);
    } catch {
      return { kind: "bad_path" };
    }
    return found.kind === "not_found" ? undefined : found;
  };
  const serve = (req: Req, res: Res, found: RestMatch) => {
    let route: Route | undefined;
    // Once the call is in the RPC pipeline, its log interceptor writes the request's line.
    let inPipeline = false;
    const fail = (e: unknown, statusOverride?: number, headers?: Record<string, string>) => {
      const ce = normalizeError(e, (err) => opts.logger.error("rest internal error", { error: err instanceof Error ? err.stack : String(err), ...observer.fields(req) }));
      if (!inPipeline) {
        // Refused before the call ran (path, method, size, credentials): still one line per request.
        observer.refused(req, route === undefined ? undefined : procedure(route), "rest", ce, {
          http_method: String(req.method).slice(0, 16),
          path: rawPathOf(req.url ?? "/").slice(0, 256),
          dialect: dialectOf(route),
          route: routeLabel(req, found),
        });
      }
      const writer = envelopes.get(route?.profile?.errorEnvelope || "connect")!;
      const written = writer(ce, { status: statusOverride ?? HTTP_STATUS[ce.code] ?? 500 });
      send(res, written.status, written.body, { ...headers, ...written.headers });
    };
    const run = async () => {
      const url = req.url ?? "/";
      const q = url.indexOf("?");
      const query = new URLSearchParams(q < 0 ? "" : url.slice(q + 1));
      if (found.kind === "bad_path") {
        return fail(new ConnectError("malformed percent-encoding in the path", Code.InvalidArgument));
      }
      if (found.kind === "method_not_allowed") {
        // The path belongs to a service: answer in its dialect's envelope.
        route = found.routes[0];
        return fail(new ConnectError(`method ${req.method} not allowed`, Code.Unimplemented), 405, { allow: found.allow.join(", ") });
      }
      route = found.route;
      // Answered before the body is read: an HTTP/1.1 connection then closes, once
      // h1-guard has drained the rest so that the client can read the answer.
      const close: Record<string, string> = req.httpVersionMajor === 1 ? { connection: "close" } : {};
      // Receiving the body (its coding, its size before and after decoding) is
      // checked before the caller is: like the size, a coding says nothing of
      // the request's content.
      const coding = requestCoding(req.headers["content-encoding"]);
      if (coding instanceof ConnectError) return fail(coding, 415, { ...close, "accept-encoding": SUPPORTED_ENCODINGS });
      let body: Buffer | undefined;
      try {
        body = await readBounded(req, opts.readMaxBytes, opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
      } catch (e) {
        if (e instanceof ConnectError && e.code === Code.DeadlineExceeded) return fail(e, 408, close);
        throw e;
      }
      if (body === undefined) {
        return fail(new ConnectError(`request body is larger than ${opts.readMaxBytes} bytes`, Code.ResourceExhausted), 413, close);
      }
      let decoded: Buffer;
      try {
        decoded = await decodeBody(body, coding, opts.readMaxBytes);
      } catch (e) {
        if (e instanceof ConnectError && e.code === Code.ResourceExhausted) return fail(e, 413);
        throw e;
      }
      // The body as sent (still encoded) is what a request signature's Content-Digest covers (RFC 9530).
      const call = { method: req.method ?? "GET", url, path: rawPathOf(url), body, dialect: dialectOf(route), route: routeLabel(req, found) };
      // The caller first, before the body is parsed: an unauthenticated client
      // learns nothing from validation errors. The same function the auth
      // interceptor runs; it then finds the principal already set.
      const principal = await opts.authenticate?.(route.service.typeName, {
        headers: nodeHeaderToWebHeader(req.headers),
        procedure: procedure(route),
        http: call,
      });
      const stream = route.method.methodKind === "server_streaming" ? events.get(procedure(route)) : undefined;
      if (route.method.methodKind === "server_streaming" && stream === undefined) {
        return fail(new ConnectError("streaming is not available over this REST route", Code.Unimplemented));
      }
      if (route.method.methodKind !== "unary" && stream === undefined) {
        return fail(new ConnectError("only unary and server-streaming methods have REST routes", Code.Unimplemented));
      }
      const input = buildRequest(route, route.method.input, { bindings: found.bindings, query, body: decoded.toString("utf8") }, route.profile?.rejectUnknownQuery ?? false);
      const contextValues = createContextValues();
      contextValues.set(restCallKey, call);
      const info = requestInfoOf(req);
      if (info !== undefined) contextValues.set(requestInfoKey, info);
      if (principal !== undefined) contextValues.set(principalKey, principal);
      // The decoded request goes straight to the interceptors and the handler: no codec in between.
      inPipeline = true;
      const profile = writeProfileOf(route.profile);
      if (stream !== undefined) {
        stream.resume?.(input as Message, req);
        const started = await opts.rpc.invokeServerStream(procedure(route), input as Message, { req, res, contextValues });
        return serveEventStream(res, started, stream.format, { toJson: (schema, message) => writeMessageJson(schema, message, profile) });
      }
      const output = await opts.rpc.invokeUnary(procedure(route), input as Message, { req, res, contextValues });
      const json = route.responseBody
        ? writeFieldJson(route.method.output, output, route.responseBody, profile)
        : writeMessageJson(route.method.output, output, profile);
      send(res, 200, json, {});
    };
    run()
      .catch((e: unknown) => {
        if (res.headersSent) {
          res.destroy?.();
          return;
        }
        fail(e);
      })
      .finally(() => observer.restDone(req, dialectOf(route ?? (found.kind === "method_not_allowed" ? found.routes[0] : undefined)), routeLabel(req, found), res.statusCode));
  };
  return { match, serve };
}

/** The Connect request path of a route's method. */
export function procedure(r: Route): string {
  return `/${r.service.typeName}/${r.method.name}`;
}

/** HTTP methods a route label may name; any other is OTHER (the method is the client's to choose). */
const METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/**
 * A request's route for logs and metrics: the method and the matched
 * template (`GET /v1/accounts/{account_id}`), never the raw path, so that
 * the label values are bounded by the route table.
 */
function routeLabel(req: Req, found: RestMatch): string {
  if (found.kind === "bad_path") return "(malformed path)";
  const method = req.method !== undefined && METHODS.has(req.method) ? req.method : "OTHER";
  const route = found.kind === "match" ? found.route : found.routes[0]!;
  return `${method} ${route.template.source}`;
}

function rawPathOf(url: string): string {
  const q = url.indexOf("?");
  return q < 0 ? url : url.slice(0, q);
}



function send(res: Res, status: number, body: string, headers: Record<string, string>): void {
  const bytes = Buffer.from(body, "utf8");
  res.writeHead(status, { "content-type": "application/json", "content-length": String(bytes.length), ...headers });
  res.end(bytes);
}
