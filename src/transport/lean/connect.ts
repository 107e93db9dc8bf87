import type { ContextValues } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { compressionNegotiate } from "@connectrpc/connect/protocol";
import type { Compression } from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  contentTypeUnaryJson,
  contentTypeUnaryProto,
  errorToJsonBytes,
  headerTimeout,
  headerUnaryAcceptEncoding,
  headerUnaryContentLength,
  headerUnaryEncoding,
  parseTimeout,
  protocolVersion,
  trailerMux,
} from "@connectrpc/connect/protocol-connect";
import { base64Decode } from "@bufbuild/protobuf/wire";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { Call } from "./call.js";
import { header } from "./grpc.js";
import { nodeHeaderToWebHeader } from "./headers.js";
import { decodeBinary, decodeJson, decompress, readUnaryBody } from "./message.js";
import type { UnaryMethod, UnaryOptions } from "./method-table.js";
import { writeResponse } from "./write.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** How a refusal made before the call ran is written and logged (rpc-handler's writer). */
export type Refuse = (e: ConnectError) => void;

/**
 * Serves a Connect unary call, POST or GET, as connect-es's Connect handler
 * does, without its pipeline: protocol version, timeout and compression are
 * checked first (before the body is read, in connect's order), the message
 * is read once (bounded), checked and decoded in one step, the
 * interceptors and implementation run once, and the answer (message, or
 * error JSON with connect's status table) is encoded once and written with
 * its trailers muxed into `trailer-` headers.
 *
 * The caller has checked: a prepared unary method; for POST a unary Connect
 * content type, for GET a side-effect-free method, an empty or unary Connect
 * content type and an `encoding` connect reads (see connectGetFormat).
 */
export async function serveConnectUnary(
  req: Req,
  res: Res,
  m: UnaryMethod,
  format: ConnectFormat,
  opt: UnaryOptions,
  requestTimeoutMs: number,
  contextValues: ContextValues,
  refuse: Refuse,
): Promise<void> {
  const { binary, query } = format;
  if (opt.requireConnectProtocolHeader) {
    const problem = query === undefined ? versionHeaderProblem(header(req, "connect-protocol-version")) : versionParamProblem(query.get("connect"));
    if (problem) return refuse(problem);
  }
  const compression = compressionNegotiate(
    opt.acceptCompression,
    query === undefined ? header(req, ENCODING) : query.get("compression"),
    header(req, ACCEPT_ENCODING),
    headerUnaryAcceptEncoding,
  );
  if (compression.error) return refuse(compression.error);
  const timeout = parseTimeout(header(req, TIMEOUT), opt.maxTimeoutMs);
  if (timeout.error) return refuse(timeout.error);

  const bytes = query === undefined ? await readUnaryBody(req, opt.readMaxBytes, compression.request, requestTimeoutMs) : await queryMessage(query, compression.request, opt.readMaxBytes);
  if (bytes instanceof ConnectError) return refuse(bytes);
  const schema = m.spec.method.input;
  const input = binary ? decodeBinary(bytes, schema, opt.binaryOptions) : decodeJson(bytes, schema, opt.jsonOptions);
  if (input instanceof ConnectError) return refuse(input);

  const call = new Call({
    req,
    res,
    spec: m.spec,
    protocolName: "connect",
    requestMethod: query === undefined ? "POST" : "GET",
    requestHeader: nodeHeaderToWebHeader(req.headers),
    responseHeader: new Headers({ "content-type": binary ? contentTypeUnaryProto : contentTypeUnaryJson }),
    responseTrailer: new Headers(),
    contextValues,
    timeoutMs: timeout.timeoutMs,
    shutdownSignal: opt.shutdownSignal,
  });
  const ctx = call.context;
  let status = 200;
  let body: Uint8Array;
  try {
    body = m.serialization.getO(binary).serialize(await call.invoke(input, m.chain));
  } catch (e) {
    const error = e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
    status = codeToHttpStatus(error.code);
    ctx.responseHeader.set("content-type", contentTypeUnaryJson);
    error.metadata.forEach((value, key) => ctx.responseHeader.set(key, value));
    body = errorToJsonBytes(error, opt.jsonOptions);
  } finally {
    call.end();
  }
  if (compression.response && body.byteLength >= opt.compressMinBytes) {
    body = await compression.response.compress(body);
    ctx.responseHeader.set(headerUnaryEncoding, compression.response.name);
  }
  // trailerMux copies the headers; without trailers the copy would equal them.
  let empty = true;
  ctx.responseTrailer.forEach(() => (empty = false));
  const out = empty ? ctx.responseHeader : trailerMux(ctx.responseHeader, ctx.responseTrailer);
  out.set(headerUnaryContentLength, String(body.byteLength));
  writeResponse(res, status, out, [body]);
}

const ENCODING = headerUnaryEncoding.toLowerCase();
const ACCEPT_ENCODING = headerUnaryAcceptEncoding.toLowerCase();
const TIMEOUT = headerTimeout.toLowerCase();

/** The format of a Connect unary call: from a POST's content type, or a GET's `encoding` parameter and its query. */
export interface ConnectFormat {
  readonly binary: boolean;
  /** A GET's query parameters; undefined for a POST. */
  readonly query?: URLSearchParams | undefined;
}

/**
 * A Connect GET's format, when its `encoding` parameter is one connect reads
 * (undefined otherwise: connect answers 415 itself).
 */
export function connectGetFormat(url: string): ConnectFormat | undefined {
  const q = url.indexOf("?");
  const query = new URLSearchParams(q < 0 ? "" : url.slice(q + 1));
  const encoding = query.get("encoding");
  if (encoding !== "json" && encoding !== "proto") return undefined;
  return { binary: encoding === "proto", query };
}

/** A GET's message from its query: base64 when `base64=1`, decompressed when `compression` names one. */
async function queryMessage(query: URLSearchParams, compression: Compression | null, max: number): Promise<Uint8Array | ConnectError> {
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
  if (compression === null) return bytes;
  try {
    return await decompress(compression, bytes, max);
  } catch (e) {
    return e as ConnectError;
  }
}

// connect's requireProtocolVersionHeader / requireProtocolVersionParam, which it does not export.
function versionHeaderProblem(v: string | null): ConnectError | undefined {
  if (v === null) return new ConnectError(`missing required header: set Connect-Protocol-Version to "${protocolVersion}"`, Code.InvalidArgument);
  if (v !== protocolVersion) return new ConnectError(`Connect-Protocol-Version must be "${protocolVersion}": got "${v}"`, Code.InvalidArgument);
  return undefined;
}
function versionParamProblem(v: string | null): ConnectError | undefined {
  if (v === null) return new ConnectError(`missing required parameter: set connect to "v${protocolVersion}"`, Code.InvalidArgument);
  if (v !== `v${protocolVersion}`) return new ConnectError(`connect must be "v${protocolVersion}": got "${v}"`, Code.InvalidArgument);
  return undefined;
}
