import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { buildDashboard } from "./dashboard-bundle.js";
import type { DashboardBundle, DashboardFile } from "./dashboard-bundle.js";
import type { Logger } from "./log.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** Where the dashboard is mounted. */
export const DASHBOARD_PATH = "/ui/";

/**
 * The dashboard's Content-Security-Policy. Only files of this origin run
 * (no inline script, no eval: the bundle needs neither), calls go only to
 * this origin, nothing may frame the page, and `form-action 'none'` means
 * that even with its script blocked, the login form can never be submitted
 * the browser's way, which would put the API key into a URL. Trusted Types
 * with no policy allowed: the page builds its DOM with textContent only, so
 * any HTML-string sink (innerHTML…) throws instead of parsing a value that
 * came from the ledger.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join("; ");

/** Headers on every dashboard response. */
const SECURITY_HEADERS: OutgoingHttpHeaders = {
  "content-security-policy": DASHBOARD_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

/** The hashed assets never change under their name. */
const IMMUTABLE = "public, max-age=31536000, immutable";
/** The page names the current assets: the browser must ask each time (a 304 when unchanged). */
const REVALIDATE = "no-cache";

/** Serves the dashboard under /ui/. */
export interface Dashboard {
  /** Whether the front door should hand this path here. */
  owns(path: string): boolean;
  serve(req: Req, res: Res, path: string): void;
}

/** Options of {@link createDashboard}. */
export interface DashboardOptions {
  readonly logger: Logger;
}

/**
 * The dashboard's HTTP side: GET and HEAD of `/ui/` (the page) and
 * `/ui/assets/<name>-<hash>.<ext>`, with content types, caching headers
 * (index no-cache with an ETag, hashed assets immutable), gzip when
 * accepted, and the CSP above.
 *
 * The bundle is built on the first request and kept: servers that never
 * serve the page (most test servers, API-only deployments) pay nothing, and
 * a failed build is retried on the next request instead of being kept.
 */
export function createDashboard(options: DashboardOptions): Dashboard {
  const { logger } = options;
  let bundle: Promise<DashboardBundle> | undefined;
  const load = (): Promise<DashboardBundle> => {
    bundle ??= buildDashboard().then(
      (b) => {
        logger.info("dashboard built", { build_ms: Math.round(b.buildMs), files: b.assets.size + 1, bytes: [...b.assets.values()].reduce((n, f) => n + f.body.length, b.index.body.length) });
        return b;
      },
      (e: unknown) => {
        bundle = undefined;
        throw e;
      },
    );
    return bundle;
  };
  return {
    owns: (path) => path === "/ui" || path.startsWith(DASHBOARD_PATH),
    serve(req, res, path) {
      const method = req.method ?? "GET";
      if (method !== "GET" && method !== "HEAD") {
        // The body is not read: on HTTP/1.1 the connection closes after the answer (as in the front door's 404).
        const unread = !req.readableEnded && req.httpVersionMajor === 1;
        return plain(res, 405, "method not allowed", { allow: "GET, HEAD", ...(unread ? { connection: "close" } : {}) });
      }
      if (path === "/ui") {
        // Relative asset URLs need the trailing slash; the query is kept (it may choose the transport).
        const url = req.url ?? "/ui";
        return plain(res, 308, "", { location: DASHBOARD_PATH + url.slice("/ui".length).replace(/^\/?/, "") });
      }
      load().then(
        (b) => {
          const rest = path.slice(DASHBOARD_PATH.length);
          if (rest === "" || rest === "index.html") return send(req, res, b.index, REVALIDATE);
          const asset = rest.startsWith("assets/") ? b.assets.get(rest.slice("assets/".length)) : undefined;
          if (asset === undefined) return plain(res, 404, "not found");
          send(req, res, asset, IMMUTABLE);
        },
        (e: unknown) => {
          logger.error("dashboard build failed", { error: e instanceof Error ? e.message : String(e) });
          plain(res, 500, "the dashboard could not be built; see the server log");
        },
      );
    },
  };
}

function send(req: Req, res: Res, file: DashboardFile, cacheControl: string): void {
  const gzip = acceptsGzip(req.headers["accept-encoding"]);
  // Two representations of one file: each gets its own strong validator.
  const etag = gzip ? file.etag.replace(/"$/, '-gz"') : file.etag;
  const headers: OutgoingHttpHeaders = { ...SECURITY_HEADERS, "cache-control": cacheControl, etag, vary: "accept-encoding" };
  if (matches(req.headers["if-none-match"], etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const body = gzip ? file.gzip : file.body;
  res.writeHead(200, {
    ...headers,
    "content-type": file.contentType,
    "content-length": String(body.length),
    ...(gzip ? { "content-encoding": "gzip" } : {}),
  });
  if (req.method === "HEAD") res.end();
  else res.end(body);
}

/** If-None-Match names this validator (or is `*`). */
function matches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(",").some((t) => {
    const tag = t.trim().replace(/^W\//, "");
    return tag === "*" || tag === etag;
  });
}

function plain(res: Res, status: number, text: string, extra: OutgoingHttpHeaders = {}): void {
  const body = Buffer.from(text);
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    ...extra,
    "cache-control": "no-store",
    "content-type": "text/plain; charset=utf-8",
    "content-length": String(body.length),
  });
  res.end(body);
}

/** gzip listed and not refused with q=0. */
function acceptsGzip(header: string | string[] | undefined): boolean {
  const value = Array.isArray(header) ? header.join(",") : (header ?? "");
  return value.split(",").some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(";");
    if (coding !== "gzip") return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}
