import type { DescFile, DescService, MessageInitShape } from "@bufbuild/protobuf";
import { create, createRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import {
  ServerReflection,
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflection as ServerReflectionV1Alpha,
  ServerReflectionRequestSchema as RequestV1AlphaSchema,
  ServerReflectionResponseSchema as ResponseV1AlphaSchema,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

type Response = MessageInitShape<typeof ServerReflectionResponseSchema>;

/**
 * gRPC server reflection, `grpc.reflection.v1` and its predecessor
 * `v1alpha` (same messages under another package, still what many tools
 * ask first), over the descriptors protobuf-es generated for the services
 * served: `buf curl`, `grpcurl` and Postman list the services and call them
 * without the .proto files. No authentication: it tells only the schema,
 * which is public (proto/ in this repository).
 *
 * Each file is sent once per stream, with the files it imports that the
 * stream has not had yet, as the reference implementations do.
 */
export function registerReflectionService(router: ConnectRouter, services: readonly DescService[]): void {
  const files = new Map<string, DescFile>();
  const add = (f: DescFile) => {
    if (files.has(f.proto.name)) return;
    files.set(f.proto.name, f);
    for (const d of f.dependencies) add(d);
  };
  for (const s of services) add(s.file);
  const registry = createRegistry(...files.values());
  const names = [...new Set(services.map((s) => s.typeName))].sort();

  /** The file that defines a symbol: a service, method, message, enum or extension, by full name. */
  const fileOfSymbol = (symbol: string): DescFile | undefined => {
    const found = registry.get(symbol);
    if (found) return found.file;
    // A method: Service.Method.
    const dot = symbol.lastIndexOf(".");
    const service = dot > 0 ? registry.getService(symbol.slice(0, dot)) : undefined;
    return service?.methods.some((m) => m.name === symbol.slice(dot + 1)) ? service.file : undefined;
  };

  const answer = (req: ServerReflectionRequest, sent: Set<string>): Response => {
    const base = { validHost: req.host, originalRequest: req };
    const error = (code: Code, message: string): Response => ({ ...base, messageResponse: { case: "errorResponse", value: { errorCode: code, errorMessage: message } } });
    const filesOf = (file: DescFile | undefined, what: string): Response => {
      if (!file) return error(Code.NotFound, `${what} not found`);
      const out: Uint8Array[] = [];
      const visit = (f: DescFile, top: boolean) => {
        if (sent.has(f.proto.name) && !top) return;
        sent.add(f.proto.name);
        out.push(toBinary(FileDescriptorProtoSchema, f.proto));
        for (const d of f.dependencies) visit(d, false);
      };
      visit(file, true);
      return { ...base, messageResponse: { case: "fileDescriptorResponse", value: { fileDescriptorProto: out } } };
    };
    const r = req.messageRequest;
    switch (r.case) {
      case "listServices":
        return { ...base, messageResponse: { case: "listServicesResponse", value: { service: names.map((name) => ({ name })) } } };
      case "fileByFilename":
        return filesOf(files.get(r.value), `file "${r.value}"`);
      case "fileContainingSymbol":
        return filesOf(fileOfSymbol(r.value), `symbol "${r.value}"`);
      case "fileContainingExtension": {
        const message = registry.getMessage(r.value.containingType);
        const ext = message === undefined ? undefined : registry.getExtensionFor(message, r.value.extensionNumber);
        return filesOf(ext?.file, `extension ${r.value.extensionNumber} of "${r.value.containingType}"`);
      }
      case "allExtensionNumbersOfType": {
        const message = registry.getMessage(r.value);
        if (!message) return error(Code.NotFound, `type "${r.value}" not found`);
        const numbers: number[] = [];
        for (const t of registry) if (t.kind === "extension" && t.extendee.typeName === message.typeName) numbers.push(t.number);
        return {
          ...base,
          messageResponse: { case: "allExtensionNumbersResponse", value: { baseTypeName: message.typeName, extensionNumber: numbers.sort((a, b) => a - b) } },
        };
      }
      default:
        return error(Code.InvalidArgument, "the request names no message_request");
    }
  };

  router.service(ServerReflection, {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const req of requests) yield answer(req, sent);
    },
  });
  // v1alpha has the same messages field for field: each is carried across in binary.
  router.service(ServerReflectionV1Alpha, {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const req of requests) {
        const v1 = fromBinary(ServerReflectionRequestSchema, toBinary(RequestV1AlphaSchema, req));
        const out = create(ServerReflectionResponseSchema, answer(v1, sent));
        yield fromBinary(ResponseV1AlphaSchema, toBinary(ServerReflectionResponseSchema, out));
      }
    },
  });
}
