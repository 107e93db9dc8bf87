import type { ConnectRouter, ConnectRouterOptions, MethodImplSpec } from "@connectrpc/connect";
import { createMethodImplSpec, createServiceImplSpec } from "@connectrpc/connect";
import { createMethodSerializationLookup, validateUniversalHandlerOptions } from "@connectrpc/connect/protocol";
import type { MethodSerializationLookup } from "@connectrpc/connect/protocol";
import type { DescMessage } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Call } from "./call.js";
import type { UnaryChain } from "./call.js";

/** A unary method's implementation, as connect holds it. */
export type UnarySpec = MethodImplSpec & { kind: "unary" };

/** A server-streaming method's implementation, as connect holds it. */
export type ServerStreamSpec = MethodImplSpec & { kind: "server_streaming" };

/** The router options the fast paths follow, validated once (connect's defaults filled in). */
export type UnaryOptions = ReturnType<typeof validateUniversalHandlerOptions>;

/** Everything a fast path needs about one unary method, prepared once per server instead of per call. */
export interface UnaryMethod {
  readonly spec: UnarySpec;
  /** connect's own parse/serialize pair for each format, with its size limits. */
  readonly serialization: MethodSerializationLookup<DescMessage, DescMessage>;
  /** Connect serves GET for it. */
  readonly noSideEffects: boolean;
  /** Its interceptors and implementation, chained once. */
  readonly chain: UnaryChain;
}

/** Everything the lean path needs about one server-streaming method, prepared once per server. */
export interface StreamMethod {
  readonly spec: ServerStreamSpec;
  readonly serialization: MethodSerializationLookup<DescMessage, DescMessage>;
}

/** The methods the lean path serves, by request path (`/package.Service/Method`). */
export interface LeanMethods {
  readonly unary: Map<string, UnaryMethod>;
  readonly serverStreams: Map<string, StreamMethod>;
}

/** Validates the router options the way connect does for its handlers. */
export function unaryOptions(options: ConnectRouterOptions): UnaryOptions {
  return validateUniversalHandlerOptions(options);
}

/**
 * Wraps a router so that every unary and server-streaming method registered
 * on it (without per-service options, which could change its protocols) is
 * also prepared in `methods`, by request path, for the lean path.
 */
export function recordMethods(router: ConnectRouter, methods: LeanMethods, opt: UnaryOptions): ConnectRouter {
  const add = (spec: MethodImplSpec) => {
    const path = `/${spec.method.parent.typeName}/${spec.method.name}`;
    const serialization = createMethodSerializationLookup(spec.method, opt.binaryOptions, opt.jsonOptions, opt);
    if (spec.kind === "unary") {
      methods.unary.set(path, {
        spec,
        serialization,
        noSideEffects: spec.method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS,
        chain: Call.unaryChain(opt.interceptors),
      });
    } else if (spec.kind === "server_streaming") {
      methods.serverStreams.set(path, { spec, serialization });
    }
  };
  const wrapped: ConnectRouter = {
    handlers: router.handlers,
    service(service, impl, opts) {
      router.service(service, impl, opts);
      if (opts === undefined) for (const spec of Object.values(createServiceImplSpec(service, impl).methods)) add(spec);
      return wrapped;
    },
    rpc(method, impl, opts) {
      router.rpc(method, impl, opts);
      if (opts === undefined) add(createMethodImplSpec(method, impl));
      return wrapped;
    },
  };
  return wrapped;
}
