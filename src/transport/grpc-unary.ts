import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage } from "@bufbuild/protobuf";
import type { ConnectRouter, ConnectRouterOptions, ContextValues, MethodImplSpec } from "@connectrpc/connect";
import { Code, ConnectError, createHandlerContext, createMethodImplSpec, createServiceImplSpec } from "@connectrpc/connect";
import { compressionNegotiate, createAsyncIterable, invokeUnaryImplementation, validateUniversalHandlerOptions } from "@connectrpc/connect/protocol";
import type { Compression } from "@connectrpc/connect/protocol";
import {
  contentTypeProto,
  headerAcceptEncoding,
  headerEncoding,
  headerTimeout,
  parseTimeout,
  setTrailerStatus,
} from "@connectrpc/connect/protocol-grpc";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { readBody } from "./read-body.js";

/** Why a finished call's signal is aborted: nobody listens by then, so one shared reason does. */
const CALL_DONE = new ConnectError("the call has ended", Code.Canceled);

/** A unary method's implementation, as connect holds it. */
export type UnarySpec = MethodImplSpec & { kind: "unary" };

/**
 * Wraps a router so that every unary method registered on it (without
 * per-service options, which could change its protocols) is also recorded in
 * `specs`, by request path, for {@link serveGrpcUnary}.
 */
export function recordUnarySpecs(router: ConnectRouter, specs: Map<string, UnarySpec>): ConnectRouter {
  const wrapped: ConnectRouter = {
    handlers: router.handlers,
    service(service, impl, opts) {
      router.service(service, impl, opts);
      if (opts === undefined) {
        for (const spec of Object.values(createServiceImplSpec(service, impl).methods)) {
          if (spec.kind === "unary") specs.set(`/${service.typeName}/${spec.method.name}`, spec);
        }
      }
      return wrapped;
    },
    rpc(method, impl, opts) {
      router.rpc(method, impl, opts);
      const spec = createMethodImplSpec(method, impl);
      if (opts === undefined && spec.kind === "unary") specs.set(`/${method.parent.typeName}/${method.name}`, spec);
      return wrapped;
    },
  };
  return wrapped;
}

/**
 * What the fast path hands back when a request is not the common case: the
 * bytes it read (all of the body, or, past the size limit, the start of it)
 * or why reading failed, for the general path to answer.
 */
export type NotFast = { readonly raw: Uint8Array } | { readonly error: unknown };

type ValidatedOptions = ReturnType<typeof validateUniversalHandlerOptions>;

/** The router options the fast path follows, validated once. */
export function grpcUnaryOptions(options: ConnectRouterOptions): ValidatedOptions {
  return validateUniversalHandlerOptions(options);
}

/**
 * Serves the common gRPC call — binary, unary, HTTP/2, one complete envelope,
 * no or negotiated compression, a valid grpc-timeout — without connect's
 * streaming pipeline: the body is read once, decoded once (the decode is the
 * strict check), the interceptors and the implementation run through
 * connect's own invokeUnaryImplementation, and the answer is written as
 * connect writes it (status, headers, one envelope, trailers). Anything else
 * returns the bytes read, for the general path to answer exactly as stock
 * connect-node would.
 *
 * The caller has checked: HTTP/2, POST, a unary method with a recorded spec,
 * a binary gRPC content type.
 */
export async function serveGrpcUnary(
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  spec: UnarySpec,
  opt: ValidatedOptions,
  requestTimeoutMs: number,
  contextValues: ContextValues,
): Promise<NotFast | undefined> {
  let body: Buffer;
  try {
    body = await readEnvelopes(req, opt.readMaxBytes, requestTimeoutMs);
  } catch (error) {
    return { error };
  }
  const timeout = parseTimeout(header(req, TIMEOUT), opt.maxTimeoutMs);
  if (timeout.error) return { raw: body };
  const compression = compressionNegotiate(opt.acceptCompression, header(req, ENCODING), header(req, ACCEPT_ENCODING), headerAcceptEncoding);
  if (compression.error) return { raw: body };
  // Exactly one complete envelope within the limit; anything else is connect's to refuse.
  if (body.length < 5) return { raw: body };
  const flags = body[0]!;
  const length = body.readUInt32BE(1);
  if (length > opt.readMaxBytes || body.length !== 5 + length || (flags & ~1) !== 0) return { raw: body };
  let data: Uint8Array = body.subarray(5);
  if (flags === 1) {
    if (compression.request === null) return { raw: body };
    try {
      data = await compression.request.decompress(data, opt.readMaxBytes);
    } catch {
      return { raw: body };
    }
  }
  let input;
  try {
    input = fromBinary(spec.method.input, data, opt.binaryOptions);
  } catch {
    return { raw: body };
  }

  const uReq = universalRequestFromNodeRequest(req, res, undefined, contextValues);
  const context = createHandlerContext({
    ...spec,
    service: spec.method.parent,
    requestMethod: "POST",
    protocolName: "grpc",
    ...(timeout.timeoutMs === undefined ? {} : { timeoutMs: timeout.timeoutMs }),
    ...(opt.shutdownSignal ? { shutdownSignal: opt.shutdownSignal } : {}),
    requestSignal: uReq.signal,
    requestHeader: uReq.header,
    url: uReq.url,
    responseHeader: { "content-type": contentTypeProto },
    responseTrailer: { "grpc-status": "0" },
    contextValues,
  });
  if (compression.response) context.responseHeader.set(headerEncoding, compression.response.name);
  let out: Uint8Array | undefined;
  try {
    const message = await invokeUnaryImplementation(spec, context, input, opt.interceptors);
    out = await envelope(toBinary(spec.method.output as DescMessage, message, opt.binaryOptions), compression.response, opt.compressMinBytes);
  } catch (e) {
    setTrailerStatus(context.responseTrailer, e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e));
    out = undefined;
  } finally {
    // Releases the call's linked signals. With a reason given, no AbortError
    // (a DOMException with a captured stack, ~10 % of a call's CPU) is built.
    context.abort(CALL_DONE);
  }
  await universalResponseToNodeResponse(
    { status: 200, header: context.responseHeader, trailer: context.responseTrailer, body: out === undefined ? undefined : createAsyncIterable([out]) },
    res,
  );
  return undefined;
}

/**
 * Reads a body of envelopes, stopping as soon as the first envelope announces
 * more than `max` bytes or the body grows past one envelope's worth: the
 * general path refuses that from the prefix, in connect's words.
 */
async function readEnvelopes(req: Http2ServerRequest, max: number, timeoutMs: number): Promise<Buffer> {
  let announced: number | undefined;
  const r = await readBody(req, timeoutMs, (size, chunks) => {
    if (announced === undefined && size >= 5) announced = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks as Buffer[], size)).readUInt32BE(1);
    return announced !== undefined && (announced > max || size > 5 + max);
  });
  return r.bytes;
}

// connect spells header names capitalised; Node's are lower case.
const TIMEOUT = headerTimeout.toLowerCase();
const ENCODING = headerEncoding.toLowerCase();
const ACCEPT_ENCODING = headerAcceptEncoding.toLowerCase();

/** A request header by its lower-case name, joined as Headers.get would. */
function header(req: Http2ServerRequest, name: string): string | null {
  const v = req.headers[name];
  return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
}

/** One envelope, compressed as connect compresses: only from compressMinBytes on. */
async function envelope(bytes: Uint8Array, compression: Compression | null, compressMinBytes: number): Promise<Uint8Array> {
  let flags = 0;
  let data = bytes;
  if (compression !== null && bytes.byteLength >= compressMinBytes) {
    data = await compression.compress(bytes);
    flags = 1;
  }
  const out = new Uint8Array(5 + data.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.byteLength);
  out.set(data, 5);
  return out;
}
