import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** Plain HTTP endpoints for load balancers and orchestrators, by path. */
export type HttpEndpoints = ReadonlyMap<string, (req: Req, res: Res) => void>;

/**
 * `/healthz` (the process is up and answering: always 200) and `/readyz`
 * (200 while the store answers and the server is not draining, else 503),
 * both `text/plain`, never cached, no authentication. A load balancer that
 * cannot speak gRPC health uses these. Methods other than GET and HEAD get
 * 405 with Allow.
 */
export function probeEndpoints(ready: () => { readonly ok: boolean; readonly detail: string }): HttpEndpoints {
  const answer = (req: Req, res: Res, status: number, text: string) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-length": "0" });
      res.end();
      return;
    }
    const body = Buffer.from(text + "\n");
    res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": String(body.length), "cache-control": "no-store" });
    if (req.method === "HEAD") res.end();
    else res.end(body);
  };
  return new Map([
    ["/healthz", (req: Req, res: Res) => answer(req, res, 200, "ok")],
    [
      "/readyz",
      (req: Req, res: Res) => {
        const r = ready();
        answer(req, res, r.ok ? 200 : 503, r.ok ? "ok" : r.detail);
      },
    ],
  ]);
}
