import { fromBinary } from "@bufbuild/protobuf";
import type { ContextValues } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { compressionNegotiate } from "@connectrpc/connect/protocol";
import {
  contentTypeProto as grpcProto,
  headerAcceptEncoding,
  headerEncoding,
  headerTimeout,
  parseTimeout,
  setTrailerStatus,
} from "@connectrpc/connect/protocol-grpc";
import { contentTypeProto as grpcWebProto, trailerFlag, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { nodeHeaderToWebHeader } from "./headers.js";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { Call } from "./call.js";
import { envelope, readEnvelopesOrError, singleMessage } from "./envelope.js";
import type { UnaryMethod, UnaryOptions } from "./method-table.js";
import { writeResponse } from "./write.js";

/**
 * What a fast path hands back when a request is not the common case: the
 * bytes it read (all of the body, or, past the size limit, the start of it)
 * or why reading failed, for the general path to answer.
 */
export type NotFast = { readonly raw: Uint8Array } | { readonly error: unknown };

/**
 * Serves the common gRPC or gRPC-Web call — binary, unary, one complete
 * envelope, no or negotiated compression, a valid grpc-timeout — without
 * connect's streaming pipeline: the body is read once, decoded once (the
 * decode is the strict check), the interceptors and the implementation run
 * once through a lazily linked call (see Call), and the answer is
 * written as connect writes it: status, headers, one envelope, then the
 * status in HTTP trailers (gRPC) or in a trailer envelope (gRPC-Web).
 * Anything else returns the bytes read, for the general path to answer
 * exactly as stock connect-node would.
 *
 * The caller has checked: POST, a prepared unary method, a binary gRPC (on
 * HTTP/2) or binary gRPC-Web content type.
 */
export async function serveGrpcUnary(
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
  m: UnaryMethod,
  web: boolean,
  opt: UnaryOptions,
  requestTimeoutMs: number,
  contextValues: ContextValues,
): Promise<NotFast | undefined> {
  const body = await readEnvelopesOrError(req, opt.readMaxBytes, requestTimeoutMs);
  if (!Buffer.isBuffer(body)) return body;
  const timeout = parseTimeout(header(req, TIMEOUT), opt.maxTimeoutMs);
  if (timeout.error) return { raw: body };
  const compression = compressionNegotiate(opt.acceptCompression, header(req, ENCODING), header(req, ACCEPT_ENCODING), headerAcceptEncoding);
  if (compression.error) return { raw: body };
  const data = await singleMessage(body, opt.readMaxBytes, compression.request);
  if (data === undefined) return { raw: body };
  let input;
  try {
    input = fromBinary(m.spec.method.input, data, opt.binaryOptions);
  } catch {
    return { raw: body };
  }

  const responseHeader = new Headers({ "content-type": web ? grpcWebProto : grpcProto });
  if (compression.response) responseHeader.set(headerEncoding, compression.response.name);
  const call = new Call({
    req,
    res,
    spec: m.spec,
    protocolName: web ? "grpc-web" : "grpc",
    requestMethod: "POST",
    requestHeader: nodeHeaderToWebHeader(req.headers),
    responseHeader,
    responseTrailer: new Headers({ "grpc-status": "0" }),
    contextValues,
    timeoutMs: timeout.timeoutMs,
    shutdownSignal: opt.shutdownSignal,
  });
  const trailer = call.context.responseTrailer;
  const out: Uint8Array[] = [];
  try {
    const message = await call.invoke(input, m.chain);
    out.push(await envelope(m.serialization.getO(true).serialize(message), compression.response, opt.compressMinBytes));
  } catch (e) {
    setTrailerStatus(trailer, e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e));
  } finally {
    call.end();
  }
  if (!web) {
    writeResponse(res, 200, call.context.responseHeader, out, trailer);
    return undefined;
  }
  out.push(await envelope(trailerSerialize(trailer), compression.response, opt.compressMinBytes, trailerFlag));
  writeResponse(res, 200, call.context.responseHeader, out);
  return undefined;
}

// connect spells header names capitalised; Node's are lower case.
const TIMEOUT = headerTimeout.toLowerCase();
const ENCODING = headerEncoding.toLowerCase();
const ACCEPT_ENCODING = headerAcceptEncoding.toLowerCase();

/** A request header by its lower-case name, joined as Headers.get would. */
export function header(req: IncomingMessage | Http2ServerRequest, name: string): string | null {
  const v = req.headers[name];
  return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
}
