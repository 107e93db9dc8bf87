import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { Dashboard } from "./dashboard.js";
import type { RestHandler } from "./rest/rest-handler.js";
import type { RpcHandler } from "./rpc-handler.js";
import type { Cors } from "./cors/cors.js";
import type { HttpEndpoints } from "./probes.js";
import type { Observer } from "./observe/observer.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** What the front door dispatches to. */
export interface FrontDoorOptions {
  readonly rpc: RpcHandler;
  /** The REST routes, when any dialect or annotated service has some. */
  readonly rest?: RestHandler | undefined;
  /** The dashboard under /ui/, unless switched off (--no-ui). */
  readonly ui?: Dashboard | undefined;
  /** Cross-origin access for browsers (off when undefined): preflights, and the headers of every answer. */
  readonly cors?: Cors | undefined;
  /** Plain HTTP endpoints by exact path (`/healthz`, `/readyz`), served before the RPC and REST routes. */
  readonly endpoints?: HttpEndpoints | undefined;
  /** Request ids, trace context and the log lines of what the front door answers itself (see observe/observer.ts). */
  readonly observer?: Observer | undefined;
}

/**
 * The one Node request handler of a Tally server. It dispatches by exact
 * path, once:
 *
 * - an RPC procedure (`/package.Service/Method`) goes to the protocol codecs;
 * - a plain HTTP endpoint (`/healthz`, `/readyz`) answers itself;
 * - an unknown method of a served service gets stock connect-node's bare
 *   404, which every RPC client reads as unimplemented;
 * - `/ui` and `/ui/…` go to the dashboard (dashboard.ts), when it is on;
 * - a path with a REST route goes to the transcoder (which answers 405 with
 *   Allow for a path served only under other methods, in the dialect's
 *   envelope, and 400 for a malformed percent-escape);
 * - anything else is 404 with the Connect error envelope:
 *   `{"code":"not_found","message":"no route for GET /path"}`.
 *
 * With CORS on, a browser's preflight is answered here, before any of that,
 * for every RPC path (and unknown methods of served services) and every REST
 * path; every other request gets its CORS headers set on the response first,
 * so that whatever answers it (a handler, a guard, a 404) carries them.
 * Before all of that the observer gives the request its id (`x-request-id`
 * on every answer) and reads its trace context.
 */
export function createFrontDoor(options: FrontDoorOptions): (req: Req, res: Res) => void {
  const { rpc, rest, cors, ui, endpoints, observer } = options;
  const isServicePath = (path: string) => {
    const slash = path.indexOf("/", 1);
    return slash > 0 && rpc.servicePrefixes.has(path.slice(0, slash + 1));
  };
  /** The methods a preflight for this path may be told of; undefined when nothing serves it. */
  const methodsOf = (path: string, rpcMethods: readonly string[]): readonly string[] | undefined => {
    if (rpc.paths.has(path) || isServicePath(path)) return rpcMethods;
    const match = rest?.match("OPTIONS", path);
    if (match?.kind === "method_not_allowed") return match.allow;
    return match?.kind === "match" ? [match.route.httpMethod] : undefined;
  };
  return (req, res) => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    observer?.begin(req, res);
    if (cors !== undefined) {
      if (cors.isPreflight(req)) return cors.preflight(req, res, path, methodsOf(path, cors.rpcMethods));
      cors.decorate(req, res);
    }
    if (rpc.paths.has(path)) return rpc.handle(req, res);
    const endpoint = endpoints?.get(path);
    if (endpoint !== undefined) {
      observer?.http(req, res, "endpoint", path);
      return endpoint(req, res);
    }
    if (isServicePath(path)) {
      observer?.http(req, res, "unknown_method", path);
      res.writeHead(404);
      res.end();
      return;
    }
    if (ui?.owns(path)) {
      observer?.http(req, res, "ui", path);
      return ui.serve(req, res, path);
    }
    const match = rest?.match(req.method ?? "GET", path);
    if (match !== undefined) return rest!.serve(req, res, match);
    observer?.http(req, res, "not_found", path);
    notFound(req, res, path);
  };
}

function notFound(req: Req, res: Res, path: string): void {
  const body = Buffer.from(JSON.stringify({ code: "not_found", message: `no route for ${req.method} ${path}` }));
  // The body of a request nobody serves is not read: on HTTP/1.1 the connection closes after the answer.
  const unread = req.method !== "GET" && req.method !== "HEAD" && !req.readableEnded && req.httpVersionMajor === 1;
  res.writeHead(404, { "content-type": "application/json", "content-length": String(body.length), ...(unread ? { connection: "close" } : {}) });
  res.end(body);
}
