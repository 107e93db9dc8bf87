import { fromBinary } from "@bufbuild/protobuf";
import type { Message } from "@bufbuild/protobuf";
import type { ContextValues } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { compressionNegotiate } from "@connectrpc/connect/protocol";
import {
  contentTypeStreamJson,
  contentTypeStreamProto,
  createEndStreamSerialization,
  endStreamFlag,
  headerStreamAcceptEncoding,
  headerStreamEncoding,
  headerTimeout as connectTimeoutHeader,
  parseTimeout as parseConnectTimeout,
} from "@connectrpc/connect/protocol-connect";
import {
  contentTypeProto as grpcProto,
  headerAcceptEncoding as grpcAcceptEncodingHeader,
  headerEncoding as grpcEncodingHeader,
  headerTimeout as grpcTimeoutHeader,
  parseTimeout as parseGrpcTimeout,
  setTrailerStatus,
} from "@connectrpc/connect/protocol-grpc";
import { contentTypeProto as grpcWebProto, trailerFlag, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { Call } from "./call.js";
import { envelope, envelopeBytes, readEnvelopesOrError, singleMessage } from "./envelope.js";
import type { NotFast } from "./grpc.js";
import { header } from "./grpc.js";
import { nodeHeaderToWebHeader } from "./headers.js";
import { decodeJson } from "./message.js";
import type { StreamMethod, UnaryOptions } from "./method-table.js";
import { drained, nodeHeaders } from "./write.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** The protocol of a server stream on the lean path. */
export type StreamProtocol = "grpc" | "grpc-web" | "connect";

/**
 * Serves the common server-streaming call — one complete request envelope,
 * no or negotiated compression, a valid timeout; gRPC and gRPC-Web binary,
 * Connect binary or JSON — without connect's streaming pipeline: the request
 * is read and decoded once (strict JSON for Connect JSON), the interceptors
 * and the implementation run through a {@link Call}, and each message the
 * implementation yields is encoded once and written straight onto the
 * response, waiting for the client to drain when it reads slowly. The
 * outcome ends the stream as connect writes it: the status in HTTP
 * trailers (gRPC), in a trailer envelope (gRPC-Web), or in the end-stream
 * envelope (Connect). Response headers go out with the first message (or
 * with the outcome), so an implementation can still set them before it
 * yields.
 *
 * Anything else returns the bytes read, for connect's pipeline to answer
 * exactly as stock connect-node would. The caller has checked: POST, a
 * prepared server-streaming method, and the protocol's content type.
 */
export async function serveServerStream(
  req: Req,
  res: Res,
  m: StreamMethod,
  protocol: StreamProtocol,
  binary: boolean,
  opt: UnaryOptions,
  requestTimeoutMs: number,
  contextValues: ContextValues,
): Promise<NotFast | undefined> {
  const body = await readEnvelopesOrError(req, opt.readMaxBytes, requestTimeoutMs);
  if (!Buffer.isBuffer(body)) return body;
  const grpc = protocol !== "connect";
  // connect refuses a missing Connect-Protocol-Version in the stream itself; leave that to it.
  if (!grpc && opt.requireConnectProtocolHeader) return { raw: body };
  const timeout = grpc ? parseGrpcTimeout(header(req, GRPC_TIMEOUT), opt.maxTimeoutMs) : parseConnectTimeout(header(req, CONNECT_TIMEOUT), opt.maxTimeoutMs);
  if (timeout.error) return { raw: body };
  const compression = grpc
    ? compressionNegotiate(opt.acceptCompression, header(req, GRPC_ENCODING), header(req, GRPC_ACCEPT_ENCODING), grpcAcceptEncodingHeader)
    : compressionNegotiate(opt.acceptCompression, header(req, STREAM_ENCODING), header(req, STREAM_ACCEPT_ENCODING), headerStreamAcceptEncoding);
  if (compression.error) return { raw: body };
  const data = await singleMessage(body, opt.readMaxBytes, compression.request);
  if (data === undefined) return { raw: body };
  let input: Message;
  if (binary) {
    try {
      input = fromBinary(m.spec.method.input, data, opt.binaryOptions);
    } catch {
      return { raw: body };
    }
  } else {
    const decoded = decodeJson(data, m.spec.method.input, opt.jsonOptions);
    if (decoded instanceof ConnectError) return { raw: body };
    input = decoded;
  }

  const responseHeader = new Headers({
    "content-type": protocol === "grpc" ? grpcProto : protocol === "grpc-web" ? grpcWebProto : binary ? contentTypeStreamProto : contentTypeStreamJson,
  });
  if (compression.response) responseHeader.set(grpc ? grpcEncodingHeader : headerStreamEncoding, compression.response.name);
  const call = new Call({
    req,
    res,
    spec: m.spec,
    protocolName: protocol,
    requestMethod: "POST",
    requestHeader: nodeHeaderToWebHeader(req.headers),
    responseHeader,
    responseTrailer: grpc ? new Headers({ "grpc-status": "0" }) : new Headers(),
    contextValues,
    timeoutMs: timeout.timeoutMs,
    shutdownSignal: opt.shutdownSignal,
  });
  const ctx = call.context;
  const serialize = m.serialization.getO(binary);
  const out = new StreamWriter(res, () => nodeHeaders(ctx.responseHeader));
  let error: ConnectError | undefined;
  try {
    const messages = await call.invokeStream(input, opt.interceptors);
    try {
      for (let r = await messages.next(); r.done !== true; r = await messages.next()) {
        const bytes = compression.response === null ? plainEnvelope(serialize, r.value) : await envelope(serialize.serialize(r.value), compression.response, opt.compressMinBytes);
        // The client left: stop reading the implementation (its finally blocks run).
        if (!(await out.write(bytes))) break;
      }
    } finally {
      await messages.return?.();
    }
    call.streamEnded();
  } catch (e) {
    error = e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
  } finally {
    call.end();
  }
  if (out.gone()) return undefined;
  const trailer = ctx.responseTrailer;
  if (protocol === "grpc") {
    if (error !== undefined) setTrailerStatus(trailer, error);
    out.end(undefined, nodeHeaders(trailer));
  } else if (protocol === "grpc-web") {
    if (error !== undefined) setTrailerStatus(trailer, error);
    out.end(await envelope(trailerSerialize(trailer), compression.response, opt.compressMinBytes, trailerFlag));
  } else {
    const end = endStream(opt).serialize({ metadata: trailer, error });
    out.end(await envelope(end, compression.response, opt.compressMinBytes, endStreamFlag));
  }
  return undefined;
}

// connect spells header names capitalised; Node's are lower case.
const GRPC_TIMEOUT = grpcTimeoutHeader.toLowerCase();
const GRPC_ENCODING = grpcEncodingHeader.toLowerCase();
const GRPC_ACCEPT_ENCODING = grpcAcceptEncodingHeader.toLowerCase();
const CONNECT_TIMEOUT = connectTimeoutHeader.toLowerCase();
const STREAM_ENCODING = headerStreamEncoding.toLowerCase();
const STREAM_ACCEPT_ENCODING = headerStreamAcceptEncoding.toLowerCase();

type Serializer = StreamMethod["serialization"] extends { getO(binary: boolean): infer S } ? S : never;

/**
 * Uncompressed envelopes by message, per serializer: a message that many
 * streams send (one change fanned out to every watcher of an account) is
 * encoded once and the same bytes are written to each.
 */
const envelopes = new WeakMap<Serializer, WeakMap<Message, Uint8Array>>();
function plainEnvelope(serializer: Serializer, message: Message): Uint8Array {
  let bySerializer = envelopes.get(serializer);
  if (bySerializer === undefined) envelopes.set(serializer, (bySerializer = new WeakMap()));
  let bytes = bySerializer.get(message);
  if (bytes === undefined) {
    bytes = envelopeBytes(serializer.serialize(message));
    bySerializer.set(message, bytes);
  }
  return bytes;
}

const endStreams = new WeakMap<UnaryOptions, ReturnType<typeof createEndStreamSerialization>>();
/** connect's end-stream serializer for these options, made once. */
function endStream(opt: UnaryOptions): ReturnType<typeof createEndStreamSerialization> {
  let s = endStreams.get(opt);
  if (s === undefined) endStreams.set(opt, (s = createEndStreamSerialization(opt.jsonOptions)));
  return s;
}

/**
 * Writes one stream's response: the headers with the first chunk, each
 * chunk after the client drained the one before when it reads slowly, then
 * the last chunk and trailers. A client that went away ends nothing more.
 */
class StreamWriter {
  readonly #res: Res;
  readonly #headers: () => Record<string, string | string[]>;

  constructor(res: Res, headers: () => Record<string, string | string[]>) {
    this.#res = res;
    this.#headers = headers;
  }

  /** True once the client cannot be written to any more. */
  gone(): boolean {
    const res = this.#res;
    return res.destroyed || res.writableEnded || ("stream" in res && res.stream.destroyed);
  }

  /** Writes one chunk; resolves false when the client has gone, now or while waiting for it to drain. */
  async write(chunk: Uint8Array): Promise<boolean> {
    if (this.gone()) return false;
    this.#head();
    const res = this.#res as ServerResponse;
    if (res.write(chunk)) return true;
    await drained(res);
    return !this.gone();
  }

  /** Ends the response, with a last chunk or HTTP trailers. */
  end(last: Uint8Array | undefined, trailers?: Record<string, string | string[]>): void {
    this.#head();
    if (last !== undefined) (this.#res as ServerResponse).write(last);
    if (trailers !== undefined) this.#res.addTrailers(trailers);
    this.#res.end();
  }

  #head(): void {
    if (!this.#res.headersSent) this.#res.writeHead(200, this.#headers());
  }
}
