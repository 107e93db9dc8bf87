import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { Logger } from "../log.js";
import { requestFields, requestInfoOf } from "../observe/request-context.js";
import type { CorsHeaderLists } from "./headers.js";
import { allowedOrigin } from "./origins.js";
import type { CorsOrigins } from "./origins.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** Options for {@link createCors}. */
export interface CorsOptions {
  /** Who may call (see {@link CorsOrigins}, which also says what credentials mean here). */
  readonly origins: CorsOrigins;
  readonly headers: CorsHeaderLists;
  /**
   * How long a browser may reuse a preflight's answer, in seconds (7200:
   * Chromium's own cap; Firefox would keep it for a day).
   */
  readonly maxAgeSeconds?: number;
  /** Preflights are logged here, one line each, as calls are. */
  readonly logger: Logger;
}

/** Cross-origin access for browsers, as the front door applies it to each request. */
export interface Cors {
  /** What a preflight for an RPC path is told of: connect-es's methods. */
  readonly rpcMethods: readonly string[];
  /** An `OPTIONS` request with `Origin` and `Access-Control-Request-Method`: a browser asking before the real call. */
  isPreflight(req: Req): boolean;
  /**
   * Answers a preflight: 204 with the allowed methods and headers and a
   * max-age when the origin is allowed and the path is served (`methods`:
   * what it is served under); 404 when it is not; 403 with no CORS header
   * at all when the origin is not allowed.
   */
  preflight(req: Req, res: Res, path: string, methods: readonly string[] | undefined): void;
  /**
   * Sets the CORS headers of an actual response on `res` before any handler
   * writes it, so that every answer (errors of the router, the guards and
   * authentication included) carries them for an allowed origin, and none for
   * another.
   */
  decorate(req: Req, res: Res): void;
}

/** Longest Origin logged: the header is the client's to fill. */
const MAX_LOGGED_ORIGIN = 256;

/** Builds the CORS behaviour of a server. */
export function createCors(options: CorsOptions): Cors {
  const { origins, logger } = options;
  const list = origins.kind === "list";
  const allowHeaders = options.headers.allowedHeaders.join(", ");
  const exposeHeaders = options.headers.exposedHeaders.join(", ");
  const maxAge = String(options.maxAgeSeconds ?? 7200);

  /** The headers every answer to an allowed origin carries. */
  const originHeaders = (allowed: string): Record<string, string> =>
    list
      ? // The answer depends on Origin: caches must keep one per origin.
        { "access-control-allow-origin": allowed, "access-control-allow-credentials": "true", vary: "Origin" }
      : { "access-control-allow-origin": allowed };

  const preflight = (req: Req, res: Res, path: string, methods: readonly string[] | undefined) => {
    const start = performance.now();
    const origin = req.headers.origin;
    const allowed = allowedOrigin(origins, origin);
    let status: number;
    let headers: Record<string, string>;
    if (allowed === undefined) {
      status = 403;
      headers = list ? { vary: "Origin" } : {};
    } else if (methods === undefined) {
      status = 404;
      headers = originHeaders(allowed);
    } else {
      status = 204;
      headers = {
        ...originHeaders(allowed),
        "access-control-allow-methods": methods.join(", "),
        "access-control-allow-headers": allowHeaders,
        "access-control-max-age": maxAge,
      };
    }
    if (status !== 204) headers["content-length"] = "0";
    // A preflight has no body; one that says it has is not read, so its HTTP/1.1 connection cannot be reused.
    if (req.httpVersionMajor === 1 && (req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined)) {
      headers["connection"] = "close";
    }
    res.writeHead(status, headers);
    res.end();
    if (logger.infoEnabled !== false) {
      logger.info("preflight", {
        protocol: "cors",
        http_method: "OPTIONS",
        path,
        origin: origin?.slice(0, MAX_LOGGED_ORIGIN),
        request_method: String(req.headers["access-control-request-method"]).slice(0, 32),
        status,
        duration_ms: Math.round((performance.now() - start) * 100) / 100,
        ...requestFields(requestInfoOf(req)),
      });
    }
  };

  const decorate = (req: Req, res: Res) => {
    const allowed = allowedOrigin(origins, req.headers.origin);
    // An answer that would carry CORS headers for another Origin must say so to caches.
    if (list) res.setHeader("vary", "Origin");
    if (allowed === undefined) return;
    res.setHeader("access-control-allow-origin", allowed);
    if (list) res.setHeader("access-control-allow-credentials", "true");
    res.setHeader("access-control-expose-headers", exposeHeaders);
  };

  return {
    rpcMethods: options.headers.rpcMethods,
    isPreflight: (req) => req.method === "OPTIONS" && req.headers.origin !== undefined && req.headers["access-control-request-method"] !== undefined,
    preflight,
    decorate,
  };
}
