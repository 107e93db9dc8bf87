import * as http from "node:http";
import * as http2 from "node:http2";

/** One HTTP request as a test sends it, byte for byte. */
export interface RawRequest {
  readonly method: "GET" | "POST" | "OPTIONS";
  /** Path and query. */
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: Buffer;
  /**
   * "end" reads the whole response; "first-envelope" stops (cancels) once
   * one complete enveloped message (5-byte prefix + data) has arrived.
   */
  readonly until?: "end" | "first-envelope";
}

/** What came back: status, headers and trailers (lower-case names, joined values), and the body. */
export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly trailers: Record<string, string>;
  readonly body: Buffer;
}

function plain(h: http.IncomingHttpHeaders | http2.IncomingHttpHeaders | NodeJS.Dict<string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (k.startsWith(":") || v === undefined) continue;
    out[k] = Array.isArray(v) ? v.join(", ") : String(v);
  }
  return out;
}

/** True when `body` holds at least one complete envelope. */
function hasEnvelope(body: Buffer): boolean {
  return body.length >= 5 && body.length >= 5 + body.readUInt32BE(1);
}

/** Sends one request over HTTP/2 without TLS (prior knowledge) on a connection of its own. */
export function h2Exchange(baseUrl: string, req: RawRequest): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl);
    session.on("error", reject);
    const stream = session.request({ ":method": req.method, ":path": req.path, ...req.headers }, { endStream: req.body === undefined });
    let status = 0;
    let headers: Record<string, string> = {};
    let trailers: Record<string, string> = {};
    const chunks: Buffer[] = [];
    const done = () => {
      resolve({ status, headers, trailers, body: Buffer.concat(chunks) });
      session.destroy();
    };
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      headers = plain(h);
    });
    stream.on("trailers", (t) => (trailers = plain(t)));
    stream.on("data", (d: Buffer) => {
      chunks.push(d);
      if (req.until === "first-envelope" && hasEnvelope(Buffer.concat(chunks))) {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        done();
      }
    });
    stream.on("end", done);
    stream.on("close", done);
    stream.on("error", () => done());
    if (req.body !== undefined) stream.end(req.body);
  });
}

/** Sends one request over HTTP/1.1 on a connection of its own. */
export function h1Exchange(baseUrl: string, req: RawRequest): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const u = new URL(req.path, baseUrl);
    const r = http.request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, method: req.method, headers: req.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        let settled = false;
        const done = () => {
          if (settled) return;
          settled = true;
          resolve({ status: res.statusCode ?? 0, headers: plain(res.headers), trailers: plain(res.trailers), body: Buffer.concat(chunks) });
        };
        res.on("data", (d: Buffer) => {
          chunks.push(d);
          if (req.until === "first-envelope" && hasEnvelope(Buffer.concat(chunks))) {
            done();
            r.destroy();
          }
        });
        res.on("end", done);
        res.on("close", done);
        res.on("error", done);
      },
    );
    r.on("error", reject);
    r.end(req.body);
  });
}
