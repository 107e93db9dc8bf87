import { create } from "@bufbuild/protobuf";
import type { DescMessage, DescService, Message } from "@bufbuild/protobuf";
import type { ContextValues, HandlerContext, Interceptor, StreamRequest, StreamResponse, UnaryRequest, UnaryResponse } from "@connectrpc/connect";
import { Code, ConnectError, createContextKey } from "@connectrpc/connect";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { constants as h2 } from "node:http2";
import type { ServerStreamSpec, UnarySpec } from "./method-table.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** A unary method's interceptors and implementation, prepared once (see Call.unaryChain). */
export type UnaryChain = (req: UnaryRequest) => Promise<UnaryResponse>;

/** Where a unary call puts itself for the prepared chain's implementation to find. */
const CALL_KEY = createContextKey<Call | undefined>(undefined, { description: "the lean path's call" });

/** Why a finished call's signal is aborted: nobody listens by then, so one shared reason does. */
const CALL_DONE = new ConnectError("the call has ended", Code.Canceled);

/** What a call is made of, as the protocol read it from the request. */
export interface CallInit {
  readonly req: Req;
  readonly res: Res;
  readonly spec: UnarySpec | ServerStreamSpec;
  readonly protocolName: string;
  readonly requestMethod: string;
  readonly requestHeader: Headers;
  readonly responseHeader: Headers;
  readonly responseTrailer: Headers;
  readonly contextValues: ContextValues;
  /** The client's deadline, in ms from now; undefined for none. */
  readonly timeoutMs: number | undefined;
  readonly shutdownSignal: AbortSignal | undefined;
}

/**
 * One call's state (unary or server stream): the HandlerContext its
 * implementation gets and the request its interceptors get, with the same
 * meaning as connect's createHandlerContext, but built lazily. Connect links three AbortSignals
 * (deadline, client gone, shutdown) and arms a timer for every call; here the
 * signal, and the listeners and timer that feed it, exist only once someone
 * reads it. A unary implementation that never looks at its signal, the
 * common case, costs no AbortController, no DOMException and no timer. When
 * it is read, it is already aborted for a passed deadline, a client that has
 * gone or a server that is stopping, with connect's own reasons.
 */
export class Call {
  readonly #init: CallInit;
  readonly #deadline: number | undefined;
  #controller: AbortController | undefined;
  #unlink: (() => void) | undefined;
  #url: string | undefined;
  /** The HandlerContext of this call. */
  readonly context: HandlerContext;

  constructor(init: CallInit) {
    this.#init = init;
    this.#deadline = init.timeoutMs === undefined ? undefined : Date.now() + init.timeoutMs;
    // An object literal with accessors: a spread copy ({...ctx}) still sees
    // the signal and the URL, where prototype getters would be lost.
    const call = this;
    this.context = {
      method: init.spec.method,
      service: init.spec.method.parent,
      protocolName: init.protocolName,
      requestMethod: init.requestMethod,
      requestHeader: init.requestHeader,
      responseHeader: init.responseHeader,
      responseTrailer: init.responseTrailer,
      values: init.contextValues,
      get signal() {
        return call.signal;
      },
      get url() {
        return call.url;
      },
      timeoutMs: () => (this.#deadline === undefined ? undefined : this.#deadline - Date.now()),
    };
  }

  /** The call's signal, created (and linked) on first use. */
  get signal(): AbortSignal {
    return (this.#controller ??= this.#link()).signal;
  }

  /** The request URL as connect gives it to handlers (scheme://authority/path). */
  get url(): string {
    if (this.#url === undefined) {
      const req = this.#init.req;
      const encrypted = "encrypted" in req.socket && (req.socket as { encrypted?: boolean }).encrypted === true;
      const authority = "authority" in req ? req.authority : req.headers.host;
      this.#url = new URL(req.url ?? "", `${encrypted ? "https" : "http"}://${authority ?? "localhost"}`).toString();
    }
    return this.#url;
  }

  /** Ends the call: removes what the signal was linked to, and aborts it if it exists. */
  end(): void {
    this.#unlink?.();
    this.#controller?.abort(CALL_DONE);
  }

  /**
   * A unary method's interceptor chain, built once per method instead of
   * once per call (connect applies the interceptors anew for every call):
   * the implementation at its end finds the call it serves in the request's
   * context values, which interceptors pass on even when they replace the
   * request.
   */
  static unaryChain(interceptors: readonly Interceptor[]): UnaryChain {
    return withInterceptors((req: UnaryRequest): Promise<UnaryResponse> => {
      const call = req.contextValues.get(CALL_KEY);
      if (call === undefined) throw new ConnectError("an interceptor dropped the call's context values", Code.Internal);
      return call.#runUnary(req);
    }, interceptors);
  }

  /** Runs a prepared chain (see {@link Call.unaryChain}) and the implementation, as connect's invokeUnaryImplementation does. */
  async invoke(input: Message, chain: UnaryChain): Promise<Message> {
    const ctx = this.context;
    this.#first = this.#request(input) as UnaryRequest;
    this.#init.contextValues.set(CALL_KEY, this);
    const res = await chain(this.#first);
    copyHeaders(res.header, ctx.responseHeader);
    copyHeaders(res.trailer, ctx.responseTrailer);
    return res.message as Message;
  }

  #first: UnaryRequest | undefined;

  async #runUnary(req: UnaryRequest): Promise<UnaryResponse> {
    const spec = this.#init.spec as UnarySpec;
    const out = await spec.impl(req.message as never, req === this.#first ? this.context : this.#merged(req));
    return this.#response(false, create(spec.method.output as DescMessage, out as never)) as UnaryResponse;
  }

  /**
   * Runs the interceptors and a server-streaming implementation, as connect's
   * invokeStreamImplementation does: the response headers are final once
   * this resolves, the trailers once the returned messages have all been
   * read (see {@link Call.streamEnded}). Each message is a complete message of
   * the output type (connect normalizes the implementation's partial ones).
   */
  async invokeStream(input: Message, interceptors: readonly Interceptor[]): Promise<AsyncIterator<Message>> {
    const spec = this.#init.spec as ServerStreamSpec;
    const ctx = this.context;
    const single = singleInput(input);
    const first = this.#request(single, true) as StreamRequest;
    const impl = async (req: StreamRequest): Promise<StreamResponse> => {
      const message = req.message === single ? input : await ensureSingle(req.message);
      const out = spec.impl(message as never, req === first ? ctx : this.#merged(req));
      return this.#response(true, normalized(spec.method.output, out)) as StreamResponse;
    };
    const next = withInterceptors(impl, interceptors);
    const res = await next(first);
    copyHeaders(res.header, ctx.responseHeader);
    this.#streamTrailer = res.trailer;
    return (res.message as AsyncIterable<Message>)[Symbol.asyncIterator]();
  }

  /** After a stream's last message: the trailers its interceptors returned become the call's. */
  streamEnded(): void {
    if (this.#streamTrailer !== undefined) copyHeaders(this.#streamTrailer, this.context.responseTrailer);
  }

  #streamTrailer: Headers | undefined;

  /**
   * The context an implementation gets when an interceptor passed on a new
   * request instead of the one it got: connect's merge of it into the context.
   */
  #merged(req: UnaryRequest | StreamRequest): HandlerContext {
    return { ...this.context, service: req.service, requestHeader: req.header, signal: req.signal, values: req.contextValues };
  }

  /** The response the implementation's answer makes, with the call's header and trailer. */
  #response(stream: boolean, message: unknown): UnaryResponse | StreamResponse {
    const method = this.#init.spec.method;
    const ctx = this.context;
    return { stream, message, method, service: method.parent, header: ctx.responseHeader, trailer: ctx.responseTrailer } as UnaryResponse | StreamResponse;
  }

  #request(message: unknown, stream = false): UnaryRequest | StreamRequest {
    const call = this;
    const init = this.#init;
    return {
      stream,
      message,
      method: init.spec.method,
      service: init.spec.method.parent as DescService,
      requestMethod: init.requestMethod,
      header: init.requestHeader,
      contextValues: init.contextValues,
      get url() {
        return call.url;
      },
      get signal() {
        return call.signal;
      },
    } as UnaryRequest | StreamRequest;
  }

  /** The AbortController connect would have linked: deadline, client gone, shutdown. */
  #link(): AbortController {
    const c = new AbortController();
    const { req, res, shutdownSignal } = this.#init;
    const cleanups: (() => void)[] = [];
    this.#unlink = () => {
      for (const f of cleanups) f();
      cleanups.length = 0;
    };
    const abort = (reason?: unknown) => {
      if (c.signal.aborted) return;
      this.#unlink?.();
      c.abort(reason);
    };
    if (this.#deadline !== undefined) {
      const left = this.#deadline - Date.now();
      const timedOut = () => abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
      if (left <= 0) timedOut();
      else {
        const t = setTimeout(timedOut, left);
        cleanups.push(() => clearTimeout(t));
      }
    }
    if (shutdownSignal !== undefined) {
      if (shutdownSignal.aborted) abort(shutdownSignal.reason);
      else {
        const onShutdown = () => abort(shutdownSignal.reason);
        shutdownSignal.addEventListener("abort", onShutdown);
        cleanups.push(() => shutdownSignal.removeEventListener("abort", onShutdown));
      }
    }
    // The client going away, as connect-node reads it: the stream's reset code
    // on HTTP/2, the response closing early on HTTP/1.1.
    const gone = "stream" in req ? () => abort(resetReason(req.stream.rstCode)) : () => abort(req.errored ?? undefined);
    const closer = "stream" in req ? req : res;
    // Read late, after the client left: no close event is coming, so look.
    const left = "stream" in req ? req.stream.closed || req.stream.destroyed : res.socket === null || res.socket.destroyed;
    // (writableEnded, not writableFinished: Node marks a reset HTTP/2 response finished.)
    if (left && !res.writableEnded) gone();
    else if (!c.signal.aborted) {
      closer.once("close", gone);
      cleanups.push(() => closer.off("close", gone));
    }
    return c;
  }
}

/** Wraps the implementation in the interceptors, the first one outermost, as connect's applyInterceptors. */
function withInterceptors<Q, R>(impl: (req: Q) => Promise<R>, interceptors: readonly Interceptor[]): (req: Q) => Promise<R> {
  let next = impl;
  for (let i = interceptors.length - 1; i >= 0; i--) next = interceptors[i]!(next as never) as never;
  return next;
}

/** The one request message of a server stream, as the iterable connect's interceptors see. */
function singleInput(input: Message): AsyncIterable<Message> {
  return {
    [Symbol.asyncIterator]() {
      let done = false;
      return {
        next: () => {
          const r: IteratorResult<Message> = done ? { done: true, value: undefined } : { done: false, value: input };
          done = true;
          return Promise.resolve(r);
        },
      };
    },
  };
}

/** connect's ensureSingle: an interceptor that replaced the input must still send exactly one message. */
async function ensureSingle(iterable: AsyncIterable<unknown>): Promise<unknown> {
  const it = iterable[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done === true) throw new ConnectError("protocol error: missing input message for server-streaming method", Code.Unimplemented);
  const second = await it.next();
  if (second.done !== true) throw new ConnectError("protocol error: received extra input message for server-streaming method", Code.Unimplemented);
  return first.value;
}

/**
 * The implementation's messages as complete messages of `schema`, as
 * connect's normalizeIterable gives them, through one small iterator object
 * instead of another async generator per stream.
 */
function normalized(schema: DescMessage, source: AsyncIterable<unknown>): AsyncIterable<Message> {
  return {
    [Symbol.asyncIterator]() {
      const it = source[Symbol.asyncIterator]();
      return {
        // A promise reaction, not a suspended async function, while the stream is idle.
        next: () => it.next().then((r) => (r.done === true ? r : { done: false, value: create(schema, r.value as never) as Message })),
        return: async (value?: unknown) => {
          await it.return?.(value);
          return { done: true, value: undefined };
        },
        throw: (e?: unknown) => (it.throw === undefined ? Promise.reject(e) : (it.throw(e) as Promise<IteratorResult<Message>>)),
      };
    },
  };
}

function copyHeaders(from: Headers, to: Headers): void {
  if (from === to) return;
  for (const k of [...to.keys()]) to.delete(k);
  from.forEach((v, k) => to.set(k, v));
}

/** connect-node's reading of an HTTP/2 reset code; undefined (an AbortError) for the others. */
function resetReason(rstCode: number): ConnectError | undefined {
  const known = RESET_CODES.get(rstCode);
  if (known === undefined) return undefined;
  return new ConnectError(`http/2 stream closed with error code ${known[1]} (0x${rstCode.toString(16)})`, known[0]);
}

const RESET_CODES = new Map<number, readonly [Code, string]>([
  [h2.NGHTTP2_PROTOCOL_ERROR, [Code.Internal, "PROTOCOL_ERROR"]],
  [h2.NGHTTP2_INTERNAL_ERROR, [Code.Internal, "INTERNAL_ERROR"]],
  [h2.NGHTTP2_FLOW_CONTROL_ERROR, [Code.Internal, "FLOW_CONTROL_ERROR"]],
  [h2.NGHTTP2_SETTINGS_TIMEOUT, [Code.Internal, "SETTINGS_TIMEOUT"]],
  [h2.NGHTTP2_FRAME_SIZE_ERROR, [Code.Internal, "FRAME_SIZE_ERROR"]],
  [h2.NGHTTP2_COMPRESSION_ERROR, [Code.Internal, "COMPRESSION_ERROR"]],
  [h2.NGHTTP2_CONNECT_ERROR, [Code.Internal, "CONNECT_ERROR"]],
  [h2.NGHTTP2_REFUSED_STREAM, [Code.Unavailable, "REFUSED_STREAM"]],
  [h2.NGHTTP2_CANCEL, [Code.Canceled, "CANCEL"]],
  [h2.NGHTTP2_ENHANCE_YOUR_CALM, [Code.ResourceExhausted, "ENHANCE_YOUR_CALM"]],
  [h2.NGHTTP2_INADEQUATE_SECURITY, [Code.PermissionDenied, "INADEQUATE_SECURITY"]],
  [h2.NGHTTP2_HTTP_1_1_REQUIRED, [Code.PermissionDenied, "HTTP_1_1_REQUIRED"]],
]);
