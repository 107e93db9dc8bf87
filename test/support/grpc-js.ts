import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { join } from "node:path";

const PROTO_DIR = join(import.meta.dirname, "..", "..", "proto");

/**
 * LedgerService as @grpc/grpc-js sees it: loaded from the .proto text by
 * proto-loader (protobufjs), sharing no code with the server's protobuf-es.
 * google/protobuf/timestamp.proto is not on disk: protobufjs bundles the
 * well-known types and resolves that import itself, so only proto/ is an
 * include dir. longs: String keeps int64 exact (2^53+1 stays "…993").
 */
export function loadLedgerServiceForGrpcJs(): grpc.ServiceClientConstructor {
  const definition = protoLoader.loadSync("tally/ledger/v1/ledger.proto", {
    includeDirs: [PROTO_DIR],
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition);
  const ledger = ((pkg.tally as grpc.GrpcObject).ledger as grpc.GrpcObject).v1 as grpc.GrpcObject;
  return ledger.LedgerService as grpc.ServiceClientConstructor;
}

/** A grpc-js client for `http://host:port` (plaintext HTTP/2). */
export function grpcJsClient(ctor: grpc.ServiceClientConstructor, url: string): grpc.Client {
  return new ctor(new URL(url).host, grpc.credentials.createInsecure());
}

/** Metadata carrying `authorization: Bearer <key>`, or none when key is undefined. */
export function bearerMetadata(key: string | undefined): grpc.Metadata {
  const md = new grpc.Metadata();
  if (key !== undefined) md.set("authorization", `Bearer ${key}`);
  return md;
}

type UnaryMethod = (
  request: object,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, res: unknown) => void,
) => grpc.ClientUnaryCall;

type StreamMethod = (request: object, metadata: grpc.Metadata, options: grpc.CallOptions) => grpc.ClientReadableStream<unknown>;

/** Calls a unary method by its (lowerCamel) name; rejects with the grpc-js ServiceError. */
export function grpcJsUnary<T>(client: grpc.Client, method: string, request: object, metadata: grpc.Metadata, timeoutMs = 10_000): Promise<T> {
  const fn = (client as unknown as Record<string, UnaryMethod>)[method];
  if (typeof fn !== "function") throw new Error(`no method ${method}`);
  return new Promise<T>((resolve, reject) => {
    fn.call(client, request, metadata, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as T)));
  });
}

/** Opens a server stream by method name. */
export function grpcJsServerStream<T>(client: grpc.Client, method: string, request: object, metadata: grpc.Metadata, timeoutMs = 30_000): grpc.ClientReadableStream<T> {
  const fn = (client as unknown as Record<string, StreamMethod>)[method];
  if (typeof fn !== "function") throw new Error(`no method ${method}`);
  return fn.call(client, request, metadata, { deadline: Date.now() + timeoutMs }) as grpc.ClientReadableStream<T>;
}

/** Waits for a grpc-js call to fail and returns its error; fails the test if it succeeds. */
export async function grpcJsError(call: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await call;
  } catch (e) {
    return e as grpc.ServiceError;
  }
  throw new Error("expected the call to fail");
}

/** A decoded `grpc-status-details-bin` trailer (google.rpc.Status). */
export interface RpcStatus {
  readonly code: number;
  readonly message: string;
  readonly details: readonly { readonly typeUrl: string; readonly value: Uint8Array }[];
}

/**
 * Decodes google.rpc.Status from the `grpc-status-details-bin` trailer with a
 * plain wire reader (fields: 1 code, 2 message, 3 repeated Any{1 type_url, 2 value}),
 * so the check does not depend on how the server's library builds it.
 */
export function statusDetails(err: grpc.ServiceError): RpcStatus | undefined {
  const raw = err.metadata?.get("grpc-status-details-bin")[0];
  if (raw === undefined || typeof raw === "string") return undefined;
  const r = new BinaryReader(raw);
  let code = 0;
  let message = "";
  const details: { typeUrl: string; value: Uint8Array }[] = [];
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field === 1) code = r.int32();
    else if (field === 2) message = r.string();
    else if (field === 3) {
      const any = new BinaryReader(r.bytes());
      let typeUrl = "";
      let value: Uint8Array = new Uint8Array();
      while (any.pos < any.len) {
        const [f, wt] = any.tag();
        if (f === 1) typeUrl = any.string();
        else if (f === 2) value = any.bytes();
        else any.skip(wt);
      }
      details.push({ typeUrl, value });
    } else r.skip(wireType);
  }
  return { code, message, details };
}
