import * as http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { Metrics } from "./metrics.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/**
 * `GET /metrics`: the registry in Prometheus text format (0.0.4), never
 * cached, no authentication (like /healthz); HEAD for the headers alone,
 * 405 with Allow for other methods.
 */
export function metricsEndpoint(metrics: Metrics): (req: Req, res: Res) => void {
  return (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-length": "0" });
      res.end();
      return;
    }
    metrics.registry.metrics().then(
      (text) => {
        const body = Buffer.from(text);
        res.writeHead(200, { "content-type": metrics.registry.contentType, "content-length": String(body.length), "cache-control": "no-store" });
        if (req.method === "HEAD") res.end();
        else res.end(body);
      },
      (e: unknown) => {
        const body = Buffer.from(`metrics failed: ${e instanceof Error ? e.message : String(e)}\n`);
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8", "content-length": String(body.length) });
        res.end(body);
      },
    );
  };
}

/** A separate plain-HTTP listener for /metrics (`--metrics-port`), so that the API port need not expose it. */
export interface MetricsListener {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/** Serves /metrics alone on its own port (404 for any other path). */
export async function listenMetrics(metrics: Metrics, host: string, port: number): Promise<MetricsListener> {
  const serve = metricsEndpoint(metrics);
  const server = http.createServer({ maxHeaderSize: 16384 }, (req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0];
    if (path === "/metrics") return serve(req, res);
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8", "content-length": "10" });
    res.end("not found\n");
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const urlHost = host.includes(":") ? `[${host}]` : host;
  return {
    port: bound,
    url: `http://${urlHost}:${bound}/metrics`,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
