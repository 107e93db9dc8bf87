import { fromBinary } from "@bufbuild/protobuf";
import type { JsonValue } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { base64Decode } from "@bufbuild/protobuf/wire";
import type { ConnectRouter, ContextValues } from "@connectrpc/connect";
import { Code, ConnectError, createConnectRouter, createContextValues } from "@connectrpc/connect";
import { createAsyncIterable } from "@connectrpc/connect/protocol";
import type { Compression, UniversalHandler } from "@connectrpc/connect/protocol";
import type { ConnectRouterOptions } from "@connectrpc/connect";
import {
  codeToHttpStatus,
  codeToString as codeName,
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
import { constants as http2constants } from "node:http2";
import { LedgerError } from "../domain/errors.js";
import { toConnectError } from "../services/errors.js";
import { grpcUnaryOptions, recordUnarySpecs, serveGrpcUnary } from "./grpc-unary.js";
import type { UnarySpec } from "./grpc-unary.js";
import { readBounded, untilDeadline } from "./read-body.js";
import { parseStrictJson } from "./json-guard.js";
import type { Logger } from "./log.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** Options for {@link createRpcHandler}. */
export interface RpcHandlerOptions extends ConnectRouterOptions {
  readonly routes: (router: ConnectRouter) => void;
  /** Largest request body, in bytes; also the Connect readMaxBytes. */
  readonly readMaxBytes: number;
  readonly logger: Logger;
  /**
   * Time a client has to send its whole request, in ms (60 s). A request
   * still unsent then is answered deadline_exceeded in its protocol.
   */
  readonly requestTimeoutMs?: number;
  /** Requests no RPC matched (the REST layer, or 404). */
  readonly fallback?: (req: Req, res: Res) => void;
}

/** A Node request handler plus the router's handlers, for in-process callers. */
export interface RpcHandler {
  readonly handle: (req: Req, res: Res) => void;
  readonly handlers: ReadonlyMap<string, UniversalHandler>;
}

/**
 * Serves a Connect router over Node's HTTP/1.1 and HTTP/2 requests, like
 * connectNodeAdapter, with one difference: every request message is checked
 * before protobuf-es decodes it. JSON goes through a strict, schema-aware
 * parser (see json-guard.ts): protobuf-es reads JSON with JSON.parse (2^53+1
 * silently becomes 2^53) and accepts "0x10", " 12" and 1e3 for int64 fields,
 * and for a ledger those must be errors, not guesses. Binary messages are
 * test-decoded, because connect reports an undecodable one as an internal
 * error (HTTP 500, gRPC 13) instead of the client's invalid_argument. The paths:
 *
 * - Connect unary POST (`application/json`, `application/proto`): the body is
 *   read here (bounded by readMaxBytes), decompressed here when it has a
 *   Content-Encoding, and checked. JSON is handed to connect already parsed;
 *   binary as the bytes read, which connect decodes again. Decompressing here
 *   rather than leaving it to connect is what keeps a gzip body from skipping
 *   the check; the decompressed size is bounded by readMaxBytes as in connect.
 * - Connect unary GET (`?encoding=json|proto&message=…`, optionally
 *   `base64=1` and `compression=`): the query message is decoded and checked
 *   the same way, then connect decodes it again from the URL.
 * - Enveloped messages (gRPC, gRPC-Web, Connect streams, JSON or binary): each
 *   envelope is checked as it passes through to connect, and a refusal is
 *   raised inside connect's pipeline so that it reaches the client in that
 *   protocol's own form (trailers, or an end-stream message).
 *
 * Refusals are invalid_argument (HTTP 400), or resource_exhausted (HTTP 429)
 * for a body or decompressed message larger than readMaxBytes, written as
 * connect-es writes them.
 */
export function createRpcHandler(options: RpcHandlerOptions): RpcHandler {
  const acceptCompression: readonly Compression[] = options.acceptCompression ?? [compressionGzip, compressionBrotli];
  const routerOptions = { ...options, acceptCompression: [...acceptCompression] };
  const router = createConnectRouter(routerOptions);
  const unarySpecs = new Map<string, UnarySpec>();
  options.routes(recordUnarySpecs(router, unarySpecs));
  const fastOptions = grpcUnaryOptions(routerOptions);
  const handlers = new Map<string, UniversalHandler>();
  for (const h of router.handlers) handlers.set(h.requestPath, h);
  const servicePrefixes = new Set(router.handlers.map((h) => `/${h.service.typeName}/`));
  const max = options.readMaxBytes;
  const requestTimeoutMs = options.requestTimeoutMs ?? 60_000;

  const handle = (req: Req, res: Res) => {
    const path = (req.url ?? "").split("?", 1)[0]!;
    const h = handlers.get(path);
    if (!h) {
      // An unknown method of a served service gets stock connect-node's bare 404,
      // which every RPC client reads as unimplemented; other paths may be REST routes.
      const slash = path.indexOf("/", 1);
      if (slash > 0 && servicePrefixes.has(path.slice(0, slash + 1))) {
        res.writeHead(404);
        res.end();
      } else if (options.fallback) options.fallback(req, res);
      else notFound(res);
      return;
    }
    const refuse = (e: ConnectError, start: number) => {
      // Only an oversized body is left unread (a GET has none to read).
      writeConnectError(req, res, e, req.method === "POST" && !req.readableEnded, options.jsonOptions);
      options.logger.info("rpc", {
        procedure: path,
        protocol: "connect",
        code: codeName(e.code),
        duration_ms: Math.round((performance.now() - start) * 100) / 100,
      });
    };
    const run = async () => {
      const start = performance.now();
      const contextValues = createContextValues();
      const spec = unarySpecs.get(path);
      if (spec !== undefined && "stream" in req && req.method === "POST" && parseGrpcContentType(req.headers["content-type"] ?? null)?.binary === true) {
        const notFast = await serveGrpcUnary(req, res as Http2ServerResponse, spec, fastOptions, requestTimeoutMs, contextValues);
        if (notFast === undefined) return;
        // Not the common case: connect answers, from the bytes already read, exactly as before.
        const source = "raw" in notFast ? createAsyncIterable([notFast.raw]) : failing(notFast.error);
        const check = envelopeCheck(req, h, acceptCompression);
        const uReq = universalRequestFromNodeRequest(req, res, undefined, contextValues as ContextValues);
        await universalResponseToNodeResponse(await h({ ...uReq, body: check === undefined ? source : checkEnvelopes(source, h, max, check) }), res);
        return;
      }
      let body: JsonValue | undefined;
      let rawBody: Uint8Array | undefined;
      let envelopes: EnvelopeCheck | undefined;
      const unary = unaryPostFormat(req, h);
      if (unary !== undefined) {
        const encoding = requestEncoding(req.headers["content-encoding"], acceptCompression);
        // An encoding connect does not accept is refused by connect (unimplemented) before it reads anything.
        if (encoding !== undefined) {
          const read = await readUnaryBody(req, h, max, encoding, unary, requestTimeoutMs);
          if (read instanceof ConnectError) {
            refuse(read, start);
            return;
          }
          if ("value" in read) body = read.value;
          else rawBody = read.raw;
        }
      } else if (isUnaryGet(req, h)) {
        const problem = await checkGetRequest(req, h, max, acceptCompression);
        if (problem !== undefined) {
          refuse(problem, start);
          return;
        }
      } else {
        envelopes = envelopeCheck(req, h, acceptCompression);
      }
      let uReq = universalRequestFromNodeRequest(req, res, body as never, contextValues as ContextValues);
      if (rawBody !== undefined) {
        // Already read from the socket: connect gets the same bytes and decodes them itself.
        uReq = { ...uReq, body: createAsyncIterable([rawBody]) };
      } else if (unary === undefined && req.method !== "GET") {
        const source = uReq.body as AsyncIterable<Uint8Array>;
        const checked = envelopes === undefined ? source : checkEnvelopes(source, h, max, envelopes);
        uReq = { ...uReq, body: untilDeadline(checked, requestTimeoutMs) };
      }
      const uRes = await h(uReq);
      await universalResponseToNodeResponse(uRes, res);
    };
    run().catch((reason: unknown) => {
      if (ConnectError.from(reason).code === Code.Aborted) return;
      // The client hung up while we were writing (EPIPE, reset): its doing, not a server fault.
      if ((res.destroyed || req.destroyed || res.socket?.destroyed !== false) && /EPIPE|ECONNRESET|ERR_STREAM_PREMATURE_CLOSE|ERR_STREAM_DESTROYED/.test(String(reason))) return;
      options.logger.error("rpc transport failed", { procedure: path, error: String(reason) });
      if (!res.headersSent) {
        res.writeHead(500);
        res.end();
      }
    });
  };
  return { handle, handlers };
}

/** A body that fails with `error` when read: connect reports it in the call's protocol. */
async function* failing(error: unknown): AsyncGenerator<Uint8Array> {
  yield* [];
  throw error;
}

// ---- Connect unary POST ------------------------------------------------------

/** "json" or "binary" for a Connect unary POST, undefined for anything else. */
function unaryPostFormat(req: Req, h: UniversalHandler): "json" | "binary" | undefined {
  if (req.method !== "POST" || h.method.methodKind !== "unary") return undefined;
  // The same test connect uses to pick its unary codec, so nothing it would parse slips past.
  const type = parseConnectContentType(req.headers["content-type"] ?? null);
  if (type === undefined || type.stream) return undefined;
  return type.binary ? "binary" : "json";
}

/**
 * The compression a request names: null for none, undefined for one connect
 * will refuse on its own.
 */
function requestEncoding(name: string | undefined, accepted: readonly Compression[]): Compression | null | undefined {
  if (name === undefined || name === "" || name === "identity") return null;
  return accepted.find((c) => c.name === name);
}

/**
 * Reads a unary body (bounded by readMaxBytes, before and after
 * decompression) and checks its message: strictly parsed JSON, or binary that
 * protobuf-es can decode. Binary comes back as the bytes read, for connect to
 * decode again; JSON as the parsed value.
 */
async function readUnaryBody(
  req: Req,
  h: UniversalHandler,
  max: number,
  encoding: Compression | null,
  format: "json" | "binary",
  timeoutMs: number,
): Promise<{ value: JsonValue } | { raw: Uint8Array } | ConnectError> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > max) return tooLarge(max, declared);
  let raw: Buffer | undefined;
  try {
    raw = await readBounded(req, max, timeoutMs);
  } catch (e) {
    // A stalled body is answered (deadline_exceeded); a client that left is not.
    if (e instanceof ConnectError && e.code === Code.DeadlineExceeded) return e;
    throw e;
  }
  if (raw === undefined) return tooLarge(max);
  let bytes: Uint8Array = raw;
  if (encoding !== null) {
    try {
      bytes = await decompress(encoding, bytes, max);
    } catch (e) {
      return e as ConnectError;
    }
  }
  if (format === "json") return checkJson(bytes, h);
  const problem = checkBinary(bytes, h);
  return problem ?? { raw };
}

/** Refuses a message over readMaxBytes in connect-es's own words, so that the answer is stock connect-node's. */
function tooLarge(max: number, size?: number): ConnectError {
  const what = size === undefined ? "message size" : `message size ${size}`;
  return new ConnectError(`${what} is larger than configured readMaxBytes ${max}`, Code.ResourceExhausted);
}

/** Decompresses with the readMaxBytes bound; anything but "too large" is the client's bad data. */
async function decompress(encoding: Compression, bytes: Uint8Array, max: number): Promise<Uint8Array> {
  try {
    return await encoding.decompress(bytes, max);
  } catch (e) {
    if (e instanceof ConnectError && e.code === Code.ResourceExhausted) throw e;
    // connect reports a truncated stream as "internal"; it is a malformed request, not a server fault.
    throw new ConnectError(`the ${encoding.name} data could not be decompressed`, Code.InvalidArgument);
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** UTF-8 JSON bytes to the checked value, or the refusal. */
function checkJson(bytes: Uint8Array, h: UniversalHandler): { value: JsonValue } | ConnectError {
  let text: string;
  try {
    // Fatal: invalid UTF-8 is refused rather than silently turned into U+FFFD.
    // ignoreBOM keeps a leading BOM in the text so that the parser can refuse it.
    text = utf8.decode(bytes);
  } catch {
    return new ConnectError("invalid JSON: the message is not valid UTF-8", Code.InvalidArgument);
  }
  try {
    return { value: parseStrictJson(text, h.method.input) };
  } catch (e) {
    if (e instanceof LedgerError) return toConnectError(e);
    return new ConnectError("invalid JSON", Code.InvalidArgument);
  }
}

/**
 * Refuses a binary message protobuf-es cannot decode. connect reports those as
 * "internal" (HTTP 500, gRPC status 13), as if the server were at fault.
 */
function checkBinary(bytes: Uint8Array, h: UniversalHandler): ConnectError | undefined {
  try {
    fromBinary(h.method.input, bytes);
    return undefined;
  } catch (e) {
    const why = e instanceof Error ? `: ${e.message}` : "";
    return new ConnectError(`the message is not a valid ${h.method.input.typeName}${why}`, Code.InvalidArgument);
  }
}

// ---- Connect unary GET -------------------------------------------------------

function isUnaryGet(req: Req, h: UniversalHandler): boolean {
  if (req.method !== "GET" || h.method.methodKind !== "unary") return false;
  // connect serves GET only for side-effect-free methods; others get its 405.
  if (h.method.idempotency !== MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS) return false;
  // A GET reaches connect's handler with no Content-Type or a unary one; others get its 415.
  const ct = req.headers["content-type"] ?? "";
  return ct === "" || contentTypeUnaryRegExp.test(ct);
}

/**
 * Checks a Connect GET request's message the way connect will read it:
 * `message` from the query, base64 when `base64=1`, decompressed when
 * `compression` names an accepted encoding, then strict JSON when
 * `encoding=json`. Undecodable base64, compressed data or binary messages are
 * refused here too, as invalid_argument: connect would answer them with a 500.
 * GETs are small (the URL is bounded by the header limit), so decoding twice
 * costs little.
 */
async function checkGetRequest(
  req: Req,
  h: UniversalHandler,
  max: number,
  accepted: readonly Compression[],
): Promise<ConnectError | undefined> {
  const query = new URL(req.url ?? "", "http://localhost").searchParams;
  const encoding = query.get("encoding");
  if (encoding !== "json" && encoding !== "proto") return undefined;
  const compression = requestEncoding(query.get("compression") ?? undefined, accepted);
  if (compression === undefined) return undefined;
  const message = query.get("message") ?? "";
  let bytes: Uint8Array;
  if (query.get("base64") === "1") {
    try {
      bytes = base64Decode(message);
    } catch {
      return new ConnectError("the message query parameter is not valid base64", Code.InvalidArgument);
    }
  } else {
    bytes = new TextEncoder().encode(message);
  }
  if (compression !== null) {
    try {
      bytes = await decompress(compression, bytes, max);
    } catch (e) {
      return e as ConnectError;
    }
  }
  if (encoding === "proto") return checkBinary(bytes, h);
  const checked = checkJson(bytes, h);
  return checked instanceof ConnectError ? checked : undefined;
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
    const problem = checkBinary(data, h);
    if (problem !== undefined) throw problem;
    return;
  }
  const checked = checkJson(data, h);
  if (checked instanceof ConnectError) throw checked;
}

// ---- Writing errors ----------------------------------------------------------

/**
 * Writes a Connect unary error exactly as connect-es does (its own JSON
 * serializer and code-to-status table: invalid_argument is 400,
 * resource_exhausted 429, details included). When the body was left unread,
 * the rest of it is never read: an HTTP/1.1 answer carries `Connection: close`
 * and Node closes the socket once it is written; on HTTP/2 only this stream
 * is ended.
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
  if (unreadBody && "stream" in req) {
    // HTTP/2 can end one stream without touching the connection: RST_STREAM
    // NO_ERROR after a complete answer tells the client to stop sending (RFC 9113 §8.1).
    const stream = req.stream;
    res.once("finish", () => stream.close(http2constants.NGHTTP2_NO_ERROR));
  }
}


function notFound(res: Res): void {
  res.writeHead(404, { "content-type": "application/json" });
  res.end(JSON.stringify({ code: "unimplemented", message: "no such procedure" }));
}
