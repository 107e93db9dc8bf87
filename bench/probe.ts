import * as http from "node:http";
import * as http2 from "node:http2";

/** One HTTP/2 exchange, seen from the wire. */
export interface ProbeResult {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly trailers: Readonly<Record<string, string>>;
  /** The whole response body (DATA payload), as h2load counts it. */
  readonly body: Buffer;
}

/**
 * Sends exactly what h2load will send (same body bytes, same headers) once,
 * over h2c, and returns the response. The bench checks this answer before
 * loading a target: h2load counts any 2xx as success, and a gRPC error is a
 * 200 with grpc-status in the trailers, so without this check a bench could
 * happily measure a server that answers every call with an error.
 */
export async function probe(url: string, headers: Readonly<Record<string, string>>, body: Uint8Array, timeoutMs = 10_000): Promise<ProbeResult> {
  const u = new URL(url);
  const session = http2.connect(u.origin);
  try {
    return await new Promise<ProbeResult>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`probe of ${url} timed out`)), timeoutMs);
      session.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      const req = session.request({ ":method": "POST", ":path": u.pathname, ...headers });
      let status = 0;
      const resHeaders: Record<string, string> = {};
      const trailers: Record<string, string> = {};
      const chunks: Buffer[] = [];
      req.on("response", (h) => {
        status = Number(h[":status"]);
        for (const [k, v] of Object.entries(h)) if (!k.startsWith(":")) resHeaders[k] = String(v);
      });
      req.on("trailers", (t) => {
        for (const [k, v] of Object.entries(t)) trailers[k] = String(v);
      });
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        clearTimeout(timer);
        resolve({ status, headers: resHeaders, trailers, body: Buffer.concat(chunks) });
      });
      req.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      req.end(body);
    });
  } finally {
    session.close();
  }
}

/** Throws unless the probe is a successful unary answer for the given protocol. */
export function requireSuccess(name: string, protocol: "grpc" | "connect", r: ProbeResult): void {
  if (protocol === "grpc") {
    const code = r.trailers["grpc-status"] ?? r.headers["grpc-status"];
    if (r.status !== 200 || code !== "0" || r.body.length < 5) {
      throw new Error(
        `${name}: probe failed: HTTP ${r.status}, grpc-status ${code}, grpc-message ${r.trailers["grpc-message"] ?? r.headers["grpc-message"]}`,
      );
    }
  } else if (r.status !== 200 || r.body.length === 0) {
    throw new Error(`${name}: probe failed: HTTP ${r.status}: ${r.body.toString("utf8").slice(0, 300)}`);
  }
}

/** The same check over HTTP/1.1, for the REST and HTTP/1.1 targets: a GET without a body, else a POST. */
export function probeH1(url: string, headers: Readonly<Record<string, string>>, body: Uint8Array | undefined, timeoutMs = 10_000): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: body === undefined ? "GET" : "POST", headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const h: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h[k] = Array.isArray(v) ? v.join(", ") : v;
        resolve({ status: res.statusCode ?? 0, headers: h, trailers: {}, body: Buffer.concat(chunks) });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}
