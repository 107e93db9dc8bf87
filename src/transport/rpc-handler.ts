import type { ConnectRouter, ContextValues } from "@connectrpc/connect";
import { Code, ConnectError, createConnectRouter, createContextValues } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import type { ConnectRouterOptions } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { LedgerError } from "../domain/errors.js";
import { parseStrictJson } from "./json-guard.js";
import type { Logger } from "./log.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** Options for {@link createRpcHandler}. */
export interface RpcHandlerOptions extends ConnectRouterOptions {
  readonly routes: (router: ConnectRouter) => void;
  /** Largest request body, in bytes; also the Connect readMaxBytes. */
  readonly readMaxBytes: number;
  readonly logger: Logger;
  /** Requests no RPC matched (the REST layer, or 404). */
  readonly fallback?: (req: Req, res: Res) => void;
}

/** A Node request handler plus the router's handlers, for in-process callers. */
export interface RpcHandler {
  readonly handle: (req: Req, res: Res) => void;
  readonly handlers: ReadonlyMap<string, UniversalHandler>;
}

/**
 * Serves a Connect router over Node's HTTP/1.1 and HTTP/2 requests, like
 * connectNodeAdapter, with one difference: unary Connect JSON bodies are
 * parsed by a strict, schema-aware parser before protobuf-es sees them.
 * protobuf-es reads JSON with JSON.parse (2^53+1 silently becomes 2^53) and
 * accepts "0x10", " 12" and 1e3 for int64 fields; for a ledger those must be
 * errors, not guesses.
 */
export function createRpcHandler(options: RpcHandlerOptions): RpcHandler {
  const router = createConnectRouter({
    acceptCompression: [compressionGzip, compressionBrotli],
    ...options,
  });
  options.routes(router);
  const handlers = new Map<string, UniversalHandler>();
  for (const h of router.handlers) handlers.set(h.requestPath, h);

  const handle = (req: Req, res: Res) => {
    const path = (req.url ?? "").split("?", 1)[0]!;
    const h = handlers.get(path);
    if (!h) {
      if (options.fallback) options.fallback(req, res);
      else notFound(res);
      return;
    }
    const run = async () => {
      const contextValues = createContextValues();
      let body: unknown;
      if (isUnaryJsonPost(req, h)) {
        body = await readJsonBody(req, h, options.readMaxBytes);
        if (body instanceof ConnectError) {
          writeConnectError(res, body);
          return;
        }
      }
      const uReq = universalRequestFromNodeRequest(req, res, body as never, contextValues as ContextValues);
      const uRes = await h(uReq);
      await universalResponseToNodeResponse(uRes, res);
    };
    run().catch((reason: unknown) => {
      if (ConnectError.from(reason).code === Code.Aborted) return;
      options.logger.error("rpc transport failed", { procedure: path, error: String(reason) });
      if (!res.headersSent) {
        res.writeHead(500);
        res.end();
      }
    });
  };
  return { handle, handlers };
}

function isUnaryJsonPost(req: Req, h: UniversalHandler): boolean {
  if (req.method !== "POST" || h.method.methodKind !== "unary") return false;
  const ct = (req.headers["content-type"] ?? "").toLowerCase();
  return /^application\/json(;|$)/.test(ct) && !req.headers["content-encoding"];
}

async function readJsonBody(req: Req, h: UniversalHandler, max: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) {
      req.destroy?.();
      return new ConnectError(`request body is larger than ${max} bytes`, Code.ResourceExhausted);
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  try {
    return parseStrictJson(text, h.method.input);
  } catch (e) {
    if (e instanceof LedgerError) return new ConnectError(e.message, Code.InvalidArgument);
    return new ConnectError("request body is not valid JSON", Code.InvalidArgument);
  }
}

/** Writes a Connect unary error the way connect-es does: JSON body, status from the code. */
function writeConnectError(res: Res, e: ConnectError): void {
  const status = e.code === Code.ResourceExhausted ? 429 : 400;
  const codeName = e.code === Code.ResourceExhausted ? "resource_exhausted" : "invalid_argument";
  const body = JSON.stringify({ code: codeName, message: e.rawMessage });
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function notFound(res: Res): void {
  res.writeHead(404, { "content-type": "application/json" });
  res.end(JSON.stringify({ code: "unimplemented", message: "no such procedure" }));
}
