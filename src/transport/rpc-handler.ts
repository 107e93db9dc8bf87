import type { Message } from "@bufbuild/protobuf";
import type { ConnectRouter, ContextValues } from "@connectrpc/connect";
import { Code, ConnectError, createConnectRouter, createContextValues } from "@connectrpc/connect";
import { createAsyncIterable } from "@connectrpc/connect/protocol";
import type { Compression, UniversalHandler } from "@connectrpc/connect/protocol";
import type { ConnectRouterOptions } from "@connectrpc/connect";
import {
  codeFromHttpStatus,
  codeToHttpStatus,
  contentTypeUnaryRegExp,
  errorToJsonBytes,
  parseContentType as parseConnectContentType,
} from "@connectrpc/connect/protocol-connect";
import { parseContentType as parseGrpcContentType } from "@connectrpc/connect/protocol-grpc";
import { parseContentType as parseGrpcWebContentType } from "@connectrpc/connect/protocol-grpc-web";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { untilDeadline } from "./read-body.js";
import { DEFAULT_REQUEST_TIMEOUT_MS } from "./server.js";
import type { Logger } from "./log.js";
import { connectGetFormat, serveConnectUnary } from "./lean/connect.js";
import { serveGrpcUnary } from "./lean/grpc.js";
import { checkJson, decodeBinary, decompress, tooLarge } from "./lean/message.js";
import { recordMethods, unaryOptions } from "./lean/method-table.js";
import { serveServerStream } from "./lean/server-stream.js";
import type { StreamProtocol } from "./lean/server-stream.js";
import { Call } from "./lean/call.js";
import { nodeHeaderToWebHeader } from "./lean/headers.js";
import type { LeanMethods, ServerStreamSpec, UnarySpec } from "./lean/method-table.js";
import type { Observer } from "./observe/observer.js";
import { protocolOfContentType } from "./observe/observer.js";
import { requestInfoKey, requestInfoOf } from "./observe/request-context.js";
import type { RequestInfo } from "./observe/request-context.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** Options for {@link createRpcHandler}. */
export interface RpcHandlerOptions extends ConnectRouterOptions {
  readonly routes: (router: ConnectRouter) => void;
  /** Largest request body, in bytes; also the Connect readMaxBytes. */
  readonly readMaxBytes: number;
  readonly logger: Logger;
  /** Logs and measures calls refused before the interceptors ran; its interceptors are in `interceptors`. */
  readonly observer?: Observer | undefined;
  /**
   * Time a client has to send its whole request, in ms (60 s). A request
   * still unsent then is answered deadline_exceeded in its protocol.
   */
  readonly requestTimeoutMs?: number;
}

/** The RPC procedures of a router, served over Node's HTTP/1.1 and HTTP/2 requests. */
export interface RpcHandler {
  /** Serves a request for one of `paths`. */
  readonly handle: (req: Req, res: Res) => void;
  /** Every procedure path served (`/package.Service/Method`). */
  readonly paths: ReadonlySet<string>;
  /** `/package.Service/` of every service served: an unknown method of one is a bare 404. */
  readonly servicePrefixes: ReadonlySet<string>;
  /**
   * Runs a unary procedure in-process for a request that another layer has
   * already decoded (the REST transcoder): the same interceptors and handler,
   * no codec, errors thrown as ConnectError.
   */
  readonly invokeUnary: (path: string, input: Message, call: InProcessCall) => Promise<Message>;
  /**
   * Starts a server-streaming procedure in-process for a decoded request
   * (the REST layer's server-sent events): the same interceptors and
   * handler; the caller reads the messages and ends the call.
   */
  readonly invokeServerStream: (path: string, input: Message, call: InProcessCall) => Promise<InProcessStream>;
}

/** A server stream started in-process. */
export interface InProcessStream {
  readonly messages: AsyncIterator<Message>;
  /** Ends the call (its signal aborts, if anyone holds it); call once the messages are read or abandoned. */
  end(): void;
}

/** The HTTP request an in-process call answers. */
export interface InProcessCall {
  readonly req: Req;
  readonly res: Res;
  readonly contextValues: ContextValues;
}

/**
 * Serves a Connect router over Node's HTTP/1.1 and HTTP/2 requests with stock
 * connect-node's protocol semantics, on two paths:
 *
 * - Unary calls in the common forms (gRPC binary on HTTP/2, gRPC-Web binary,
 *   Connect POST and GET, JSON or binary) take a lean path (src/transport/
 *   unary/): the body is read once within its bounds, the message checked
 *   and decoded in one step (strict JSON; binary that protobuf-es can
 *   decode), the interceptors and the implementation run once, the answer is
 *   encoded once and written straight onto the response. No async
 *   iterables, and no AbortController unless the call's signal is read.
 * - Everything else (server streams, gRPC-Web text, JSON envelopes, and
 *   enveloped unary bodies that are not one well-formed message) goes
 *   through connect's own pipeline, each enveloped message checked as it
 *   passes, so that a refusal reaches the client in that protocol's form.
 *
 * A service registered with its own codec options (`router.service(desc,
 * impl, { jsonOptions })`: proto field names, say) is served with them on
 * both paths, for every JSON message in and out; binary is unaffected by
 * JSON options.
 *
 * Refusals are invalid_argument (HTTP 400), or resource_exhausted (HTTP 429)
 * for a body or decompressed message larger than readMaxBytes, written as
 * connect-es writes them.
 */
export function createRpcHandler(options: RpcHandlerOptions): RpcHandler {
  const acceptCompression: readonly Compression[] = options.acceptCompression ?? [compressionGzip, compressionBrotli];
  const routerOptions = { ...options, acceptCompression: [...acceptCompression] };
  const router = createConnectRouter(routerOptions);
  const opt = unaryOptions(routerOptions);
  const lean: LeanMethods = { unary: new Map(), serverStreams: new Map() };
  const { unary, serverStreams } = lean;
  options.routes(recordMethods(router, lean, opt));
  const handlers = new Map<string, UniversalHandler>();
  for (const h of router.handlers) handlers.set(h.requestPath, h);
  const max = options.readMaxBytes;
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const observer = options.observer;

  const handle = (req: Req, res: Res) => {
    const path = (req.url ?? "").split("?", 1)[0]!;
    const h = handlers.get(path)!;
    const m = unary.get(path);
    const info = requestInfoOf(req);
    const refuse = (e: ConnectError) => {
      // Only a body left unread is never read (a GET has none to read).
      // The method's own JSON options, as connect's handler for it would use.
      writeConnectError(req, res, e, req.method === "POST" && !req.readableEnded, (m?.options ?? opt).jsonOptions);
      observer?.refused(req, path, "connect", e);
    };
    const run = async () => {
      const contextValues = createContextValues();
      if (info !== undefined) contextValues.set(requestInfoKey, info);
      let notFast: { readonly raw: Uint8Array } | { readonly error: unknown } | undefined;
      const s = m === undefined ? serverStreams.get(path) : undefined;
      const lean = req.method === "POST" && (m !== undefined || s !== undefined) ? leanProtocol(req) : undefined;
      if (m !== undefined && lean !== undefined) {
        if (lean.protocol !== "connect") {
          notFast = await serveGrpcUnary(req, res, m, lean.protocol === "grpc-web", m.options, requestTimeoutMs, contextValues);
          if (notFast === undefined) return;
        } else if (!lean.stream) {
          return serveConnectUnary(req, res, m, { binary: lean.binary }, m.options, requestTimeoutMs, contextValues, refuse);
        }
      } else if (s !== undefined && lean !== undefined && (lean.protocol !== "connect" || lean.stream)) {
        notFast = await serveServerStream(req, res, s, lean.protocol, lean.binary, s.options, requestTimeoutMs, contextValues);
        if (notFast === undefined) return;
      } else if (m !== undefined && req.method === "GET" && m.noSideEffects) {
        // connect answers a GET with any other Content-Type 415, and an unknown encoding too.
        const ct = req.headers["content-type"] ?? "";
        const format = ct === "" || contentTypeUnaryRegExp.test(ct) ? connectGetFormat(req.url ?? "") : undefined;
        if (format !== undefined) return serveConnectUnary(req, res, m, format, m.options, requestTimeoutMs, contextValues, refuse);
      }
      // connect's own pipeline, each enveloped message checked on its way in.
      const uReq = universalRequestFromNodeRequest(req, res, undefined, contextValues as ContextValues);
      const check = envelopeCheck(req, h, acceptCompression);
      let body = uReq.body as AsyncIterable<Uint8Array>;
      // A fast path that gave up hands over the bytes it read (or why it could not).
      if (notFast !== undefined) body = "raw" in notFast ? createAsyncIterable([notFast.raw]) : failing(notFast.error);
      else if (req.method !== "GET") body = untilDeadline(unreadOnReturn(req), requestTimeoutMs);
      if (check !== undefined) body = checkEnvelopes(body, h, max, check);
      const answer = await h({ ...uReq, body });
      // connect answered without running the interceptors (an unsupported content type: 415; a
      // malformed envelope; an unknown encoding): the call still gets its line and its count. An
      // HTTP error is known now (its body may never be read); a gRPC status once the trailers are out.
      const unseen = () => observer !== undefined && info !== undefined && !info.observed;
      if (answer.status !== 200 && unseen()) unobserved(observer!, info!, path, answer);
      await universalResponseToNodeResponse(answer, res);
      if (answer.status === 200 && unseen()) unobserved(observer!, info!, path, answer);
    };
    run().catch((reason: unknown) => {
      if (ConnectError.from(reason).code === Code.Aborted) return;
      // The client hung up while we were writing (EPIPE, reset): its doing, not a server fault.
      if ((res.destroyed || req.destroyed || res.socket?.destroyed !== false) && /EPIPE|ECONNRESET|ECANCELED|ERR_STREAM_PREMATURE_CLOSE|ERR_STREAM_DESTROYED/.test(String(reason))) return;
      options.logger.error("rpc transport failed", { procedure: path, error: String(reason), ...observer?.fields(req) });
      if (!res.headersSent) {
        res.writeHead(500);
        res.end();
      }
    });
  };
  const inProcess = (spec: UnarySpec | ServerStreamSpec, c: InProcessCall) =>
    new Call({
      req: c.req,
      res: c.res,
      spec,
      protocolName: "rest",
      requestMethod: c.req.method ?? "GET",
      requestHeader: nodeHeaderToWebHeader(c.req.headers),
      responseHeader: new Headers(),
      responseTrailer: new Headers(),
      contextValues: c.contextValues,
      timeoutMs: undefined,
      shutdownSignal: opt.shutdownSignal,
    });
  const invokeUnary = async (path: string, input: Message, c: InProcessCall): Promise<Message> => {
    const m = unary.get(path);
    if (m === undefined) throw new ConnectError(`${path} is not a unary procedure`, Code.Unimplemented);
    const call = inProcess(m.spec, c);
    try {
      return await call.invoke(input, m.chain);
    } finally {
      call.end();
    }
  };
  const invokeServerStream = async (path: string, input: Message, c: InProcessCall): Promise<InProcessStream> => {
    const s = serverStreams.get(path);
    if (s === undefined) throw new ConnectError(`${path} is not a server-streaming procedure`, Code.Unimplemented);
    const call = inProcess(s.spec, c);
    try {
      return { messages: await call.invokeStream(input, opt.interceptors), end: () => call.end() };
    } catch (e) {
      call.end();
      throw e;
    }
  };
  return {
    handle,
    paths: new Set(handlers.keys()),
    servicePrefixes: new Set(router.handlers.map((x) => `/${x.service.typeName}/`)),
    invokeUnary,
    invokeServerStream,
  };
}

/** Records a call connect's pipeline answered on its own, with the code it answered. */
function unobserved(observer: Observer, info: RequestInfo, path: string, answer: { status: number; header?: Headers; trailer?: Headers }): void {
  const grpcStatus = answer.trailer?.get("grpc-status") ?? answer.header?.get("grpc-status") ?? null;
  let code = grpcStatus !== null ? Number(grpcStatus) : answer.status === 200 ? 0 : codeFromHttpStatus(answer.status);
  if (code === 0) return;
  if (!Number.isInteger(code) || code < 0 || code > 16) code = Code.Unknown;
  const ct = info.req.headers["content-type"];
  observer.refused(info.req, path, protocolOfContentType(ct), new ConnectError("", code as Code), { http_status: answer.status });
}

/**
 * The protocol of a POST the lean paths serve — gRPC binary over HTTP/2,
 * gRPC-Web binary, or Connect (unary or streaming content type) — and
 * undefined for the rest, which connect's pipeline answers.
 */
function leanProtocol(req: Req): { readonly protocol: StreamProtocol; readonly binary: boolean; readonly stream: boolean } | undefined {
  const ct = req.headers["content-type"] ?? null;
  // gRPC needs HTTP/2 trailers; over HTTP/1.1 connect answers it in its own way.
  const grpc = "stream" in req ? parseGrpcContentType(ct) : undefined;
  if (grpc !== undefined) return grpc.binary ? { protocol: "grpc", binary: true, stream: true } : undefined;
  const web = parseGrpcWebContentType(ct);
  if (web !== undefined) return web.binary && !web.text ? { protocol: "grpc-web", binary: true, stream: true } : undefined;
  const connect = parseConnectContentType(ct);
  return connect === undefined ? undefined : { protocol: "connect", binary: connect.binary, stream: connect.stream };
}

/**
 * The request body as connect-node reads it, except that a reader that stops
 * early (an envelope announcing more than readMaxBytes) leaves the request
 * paused instead of destroying it. Destroyed, it would take the HTTP/1.1
 * socket with it while the client is still sending (the client sees EPIPE,
 * not the answer); left as it is, the answer goes out and the guards end the
 * exchange (h1-guard's lingering close, RST_STREAM NO_ERROR on HTTP/2).
 */
function unreadOnReturn(req: Req): AsyncIterable<Uint8Array> {
  return { [Symbol.asyncIterator]: () => req.iterator({ destroyOnReturn: false }) as AsyncIterator<Uint8Array> };
}

/** A body that fails with `error` when read: connect reports it in the call's protocol. */
async function* failing(error: unknown): AsyncGenerator<Uint8Array> {
  yield* [];
  throw error;
}

/**
 * The compression a request names: null for none, undefined for one connect
 * will refuse on its own.
 */
function requestEncoding(name: string | undefined, accepted: readonly Compression[]): Compression | null | undefined {
  if (name === undefined || name === "" || name === "identity") return null;
  return accepted.find((c) => c.name === name);
}

// ---- Enveloped messages (gRPC, gRPC-Web, Connect streams) --------------------

interface EnvelopeCheck {
  readonly binary: boolean;
  /** The negotiated request compression; null for none. */
  readonly compression: Compression | null;
  /** Flag of envelopes connect skips instead of parsing (gRPC-Web trailers, Connect end-stream). */
  readonly skipFlag: number | undefined;
}

/** When the request carries enveloped messages, how to check them. */
function envelopeCheck(req: Req, h: UniversalHandler, accepted: readonly Compression[]): EnvelopeCheck | undefined {
  if (req.method !== "POST") return undefined;
  const ct = req.headers["content-type"] ?? null;
  let encodingHeader: string;
  let skipFlag: number | undefined;
  let binary: boolean;
  const grpc = parseGrpcContentType(ct);
  const grpcWeb = parseGrpcWebContentType(ct);
  const connect = parseConnectContentType(ct);
  if (grpc !== undefined) {
    binary = grpc.binary;
    encodingHeader = "grpc-encoding";
  } else if (grpcWeb !== undefined && !grpcWeb.text) {
    binary = grpcWeb.binary;
    encodingHeader = "grpc-encoding";
    skipFlag = 0x80;
  } else if (connect !== undefined && connect.stream && h.method.methodKind !== "unary") {
    binary = connect.binary;
    encodingHeader = "connect-content-encoding";
    skipFlag = 0x02;
  } else {
    // gRPC-Web text, and content types connect answers with 415.
    return undefined;
  }
  const raw = req.headers[encodingHeader];
  const compression = requestEncoding(Array.isArray(raw) ? raw[0] : raw, accepted);
  // An unknown encoding is refused by connect before it reads a message.
  if (compression === undefined) return undefined;
  return { binary, compression, skipFlag };
}

/**
 * Passes the request body through, holding back each enveloped message until
 * it is checked (strict JSON, or decodable binary). A refusal is thrown into
 * connect's reading pipeline, which reports it in the protocol's own format.
 */
async function* checkEnvelopes(
  source: AsyncIterable<Uint8Array>,
  h: UniversalHandler,
  max: number,
  check: EnvelopeCheck,
): AsyncGenerator<Uint8Array> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  // The next envelope's size once its 5-byte prefix is in. Chunks are joined
  // only when that many bytes are there, so a large message is copied once.
  let size: number | undefined;
  for await (const chunk of source) {
    pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    pendingBytes += chunk.byteLength;
    while (pendingBytes >= (size ?? 5)) {
      const buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      pending = [buf];
      if (size === undefined) {
        const length = buf.readUInt32BE(1);
        // connect would refuse it too, but only after this loop had buffered it.
        if (length > max) throw tooLarge(max, length);
        size = 5 + length;
        continue;
      }
      const envelope = buf.subarray(0, size);
      await checkEnvelope(envelope, h, max, check);
      yield envelope;
      const rest = buf.subarray(size);
      pending = rest.length > 0 ? [rest] : [];
      pendingBytes = rest.length;
      size = undefined;
    }
  }
  // An incomplete envelope: connect reports it.
  if (pendingBytes > 0) yield Buffer.concat(pending, pendingBytes);
}

async function checkEnvelope(envelope: Buffer, h: UniversalHandler, max: number, check: EnvelopeCheck): Promise<void> {
  const flags = envelope[0]!;
  if (check.skipFlag !== undefined && (flags & check.skipFlag) === check.skipFlag) return;
  let data: Uint8Array = envelope.subarray(5);
  if ((flags & 0x01) === 0x01) {
    if (check.compression === null) {
      throw new ConnectError("received a compressed message without a message encoding", Code.InvalidArgument);
    }
    data = await decompress(check.compression, data, max);
  }
  if (check.binary) {
    const decoded = decodeBinary(data, h.method.input);
    if (decoded instanceof ConnectError) throw decoded;
    return;
  }
  const checked = checkJson(data, h.method.input);
  if (checked instanceof ConnectError) throw checked;
}

// ---- Writing errors ----------------------------------------------------------

/**
 * Writes a Connect unary error exactly as connect-es does (its own JSON
 * serializer and code-to-status table: invalid_argument is 400,
 * resource_exhausted 429, details included). When the body was left unread,
 * an HTTP/1.1 answer carries `Connection: close`: the connection closes once
 * the rest of the body is drained (h1-guard.ts); on HTTP/2 only this stream
 * is ended, with RST_STREAM NO_ERROR after the answer (h2-session-guard.ts).
 */
function writeConnectError(req: Req, res: Res, e: ConnectError, unreadBody: boolean, jsonOptions: ConnectRouterOptions["jsonOptions"]): void {
  const body = errorToJsonBytes(e, jsonOptions);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "content-length": String(body.byteLength),
  };
  e.metadata.forEach((value, key) => {
    headers[key] = value;
  });
  if (unreadBody && !("stream" in req)) headers.connection = "close";
  res.writeHead(codeToHttpStatus(e.code), headers);
  res.end(body);
}

