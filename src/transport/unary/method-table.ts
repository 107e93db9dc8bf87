import type { ConnectRouter, ConnectRouterOptions, MethodImplSpec } from "@connectrpc/connect";
import { createMethodImplSpec, createServiceImplSpec } from "@connectrpc/connect";
import { createMethodSerializationLookup, validateUniversalHandlerOptions } from "@connectrpc/connect/protocol";
import type { MethodSerializationLookup } from "@connectrpc/connect/protocol";
import type { DescMessage } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";

/** A unary method's implementation, as connect holds it. */
export type UnarySpec = MethodImplSpec & { kind: "unary" };

/** The router options the fast paths follow, validated once (connect's defaults filled in). */
export type UnaryOptions = ReturnType<typeof validateUniversalHandlerOptions>;

/** Everything a fast path needs about one unary method, prepared once per server instead of per call. */
export interface UnaryMethod {
  readonly spec: UnarySpec;
  /** connect's own parse/serialize pair for each format, with its size limits. */
  readonly serialization: MethodSerializationLookup<DescMessage, DescMessage>;
  /** Connect serves GET for it. */
  readonly noSideEffects: boolean;
}

/** Validates the router options the way connect does for its handlers. */
export function unaryOptions(options: ConnectRouterOptions): UnaryOptions {
  return validateUniversalHandlerOptions(options);
}

/**
 * Wraps a router so that every unary method registered on it (without
 * per-service options, which could change its protocols) is also prepared
 * in `methods`, by request path, for the fast paths.
 */
export function recordUnaryMethods(router: ConnectRouter, methods: Map<string, UnaryMethod>, opt: UnaryOptions): ConnectRouter {
  const add = (spec: MethodImplSpec) => {
    if (spec.kind !== "unary") return;
    methods.set(`/${spec.method.parent.typeName}/${spec.method.name}`, {
      spec,
      serialization: createMethodSerializationLookup(spec.method, opt.binaryOptions, opt.jsonOptions, opt),
      noSideEffects: spec.method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS,
    });
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
