import type { ConnectRouter, ConnectRouterOptions, MethodImplSpec } from "@connectrpc/connect";
import type { UniversalHandlerOptions } from "@connectrpc/connect/protocol";
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
  /**
   * The options this method is served with: the router's, with the JSON and
   * binary options its registration gave over them (as connect-es merges a
   * service's options into its handlers).
   */
  readonly options: UnaryOptions;
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
  /** As {@link UnaryMethod.options}. */
  readonly options: UnaryOptions;
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
 * Registration options the lean path honours: the message codecs' options.
 * A registration with any other option (protocols switched off, its own
 * limits or interceptors) is left to connect's handlers alone.
 */
const CODEC_OPTIONS: ReadonlySet<string> = new Set<keyof UniversalHandlerOptions>(["jsonOptions", "binaryOptions"]);

/**
 * The options a registration serves its methods with on the lean path, or
 * undefined when it sets one the lean path does not follow. Each option it
 * sets replaces the router's whole, as connect-es's router merges them.
 */
function registrationOptions(opt: UnaryOptions, opts: Partial<UniversalHandlerOptions> | undefined): UnaryOptions | undefined {
  if (opts === undefined) return opt;
  // Any other key, even set to undefined, changes what connect serves (Object.assign copies it).
  if (!Object.keys(opts).every((k) => CODEC_OPTIONS.has(k))) return undefined;
  return { ...opt, ...opts };
}

/**
 * Wraps a router so that every unary and server-streaming method registered
 * on it is also prepared in `methods`, by request path, for the lean path,
 * with the codec options of its registration (a service may speak JSON its
 * own way: field names, defaults). A registration with other options, which
 * could change its protocols, is served by connect's handlers only.
 */
export function recordMethods(router: ConnectRouter, methods: LeanMethods, opt: UnaryOptions): ConnectRouter {
  const add = (spec: MethodImplSpec, options: UnaryOptions) => {
    const path = `/${spec.method.parent.typeName}/${spec.method.name}`;
    const serialization = createMethodSerializationLookup(spec.method, options.binaryOptions, options.jsonOptions, options);
    if (spec.kind === "unary") {
      methods.unary.set(path, {
        spec,
        options,
        serialization,
        noSideEffects: spec.method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS,
        chain: Call.unaryChain(options.interceptors),
      });
    } else if (spec.kind === "server_streaming") {
      methods.serverStreams.set(path, { spec, options, serialization });
    }
  };
  const wrapped: ConnectRouter = {
    handlers: router.handlers,
    service(service, impl, opts) {
      router.service(service, impl, opts);
      const options = registrationOptions(opt, opts);
      if (options !== undefined) for (const spec of Object.values(createServiceImplSpec(service, impl).methods)) add(spec, options);
      return wrapped;
    },
    rpc(method, impl, opts) {
      router.rpc(method, impl, opts);
      const options = registrationOptions(opt, opts);
      if (options !== undefined) add(createMethodImplSpec(method, impl), options);
      return wrapped;
    },
  };
  return wrapped;
}
