import * as http2 from "node:http2";
import { Code } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";

/*
 * One JSON request message sent raw over each RPC protocol a server speaks,
 * and what came back flattened to one shape, so that a test can send the
 * same JSON text on every input path and compare the answers. Raw bytes, not
 * a client library: a client would re-encode the message and hide exactly
 * the non-canonical text under test.
 */

/** The first response message as JSON, or the error the call ended with (Connect code names). */
export type WireOutcome =
  | { readonly ok: true; readonly message: Record<string, unknown> }
  | { readonly ok: false; readonly code: string; readonly message: string };

/** A 5-byte-prefixed message (gRPC, gRPC-Web, Connect streaming). */
export function envelope(data: string | Uint8Array, flags = 0): Buffer {
  const payload = Buffer.from(data);
  const out = Buffer.alloc(5 + payload.length);
  out[0] = flags;
  out.writeUInt32BE(payload.length, 1);
  payload.copy(out, 5);
  return out;
}

/** The envelopes of a body, in order; a trailing partial one is dropped. */
export function envelopes(body: Buffer): { readonly flags: number; readonly data: Buffer }[] {
  const out: { flags: number; data: Buffer }[] = [];
  for (let i = 0; i + 5 <= body.length; ) {
    const len = body.readUInt32BE(i + 1);
    if (i + 5 + len > body.length) break;
    out.push({ flags: body[i]!, data: body.subarray(i + 5, i + 5 + len) });
    i += 5 + len;
  }
  return out;
}

function parse(text: string): Record<string, unknown> {
  return JSON.parse(text) as Record<string, unknown>;
}

function grpcOutcome(status: string | undefined, message: string | undefined, frames: readonly Buffer[]): WireOutcome {
  if (status === "0" && frames.length > 0) return { ok: true, message: parse(frames[0]!.toString()) };
  const code = Number(status ?? Code.Unknown) as Code;
  return { ok: false, code: codeToString(code), message: decodeURIComponent(message ?? "") };
}

/** A Connect unary POST with a JSON body. */
export async function connectPost(baseUrl: string, procedure: string, json: string, headers: Record<string, string> = {}): Promise<WireOutcome> {
  const res = await fetch(baseUrl + procedure, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: json });
  const body = parse(await res.text());
  if (res.status === 200) return { ok: true, message: body };
  return { ok: false, code: String(body.code), message: String(body.message) };
}

/** A Connect unary GET, the JSON message in the query (for NO_SIDE_EFFECTS methods). */
export async function connectGet(baseUrl: string, procedure: string, json: string, headers: Record<string, string> = {}): Promise<WireOutcome> {
  const res = await fetch(`${baseUrl}${procedure}?connect=v1&encoding=json&message=${encodeURIComponent(json)}`, { headers });
  const body = parse(await res.text());
  if (res.status === 200) return { ok: true, message: body };
  return { ok: false, code: String(body.code), message: String(body.message) };
}

/** A Connect server-streaming call with one JSON request: its first message, or its end-stream error. */
export async function connectStream(baseUrl: string, procedure: string, json: string, headers: Record<string, string> = {}): Promise<WireOutcome> {
  const res = await fetch(baseUrl + procedure, {
    method: "POST",
    headers: { "content-type": "application/connect+json", ...headers },
    body: envelope(json),
  });
  const frames = envelopes(Buffer.from(await res.arrayBuffer()));
  const first = frames[0];
  if (res.status !== 200 || first === undefined) return { ok: false, code: `http ${res.status}`, message: "" };
  if ((first.flags & 0x02) === 0) return { ok: true, message: parse(first.data.toString()) };
  const end = parse(first.data.toString()) as { error?: { code: string; message: string } };
  return { ok: false, code: end.error?.code ?? "ok", message: end.error?.message ?? "" };
}

/** A gRPC-Web call (HTTP/1.1) with one JSON request: its first message, or the status of its trailers. */
export async function grpcWebJson(baseUrl: string, procedure: string, json: string, headers: Record<string, string> = {}): Promise<WireOutcome> {
  const res = await fetch(baseUrl + procedure, {
    method: "POST",
    headers: { "content-type": "application/grpc-web+json", ...headers },
    body: envelope(json),
  });
  const frames = envelopes(Buffer.from(await res.arrayBuffer()));
  let status = res.headers.get("grpc-status") ?? undefined;
  let message = res.headers.get("grpc-message") ?? undefined;
  for (const f of frames) {
    if ((f.flags & 0x80) === 0) continue;
    const trailer = f.data.toString();
    status = /grpc-status:\s*(\d+)/i.exec(trailer)?.[1] ?? status;
    message = /grpc-message:\s*(.*?)\r?$/im.exec(trailer)?.[1] ?? message;
  }
  return grpcOutcome(status, message, frames.filter((f) => (f.flags & 0x80) === 0).map((f) => f.data));
}

/** gRPC with JSON messages (`application/grpc+json`) over one HTTP/2 connection, many calls. */
export class GrpcJsonSession {
  private readonly session: http2.ClientHttp2Session;

  constructor(baseUrl: string) {
    this.session = http2.connect(baseUrl);
    // A failed call is reported by its stream; the session's errors would only repeat it.
    this.session.on("error", () => {});
  }

  /** One call with one JSON request: its first message, or the status of its trailers. */
  call(procedure: string, json: string, headers: Record<string, string> = {}): Promise<WireOutcome> {
    return new Promise((resolve, reject) => {
      const stream = this.session.request({ ":method": "POST", ":path": procedure, "content-type": "application/grpc+json", te: "trailers", ...headers });
      let head: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on("response", (h) => (head = h));
      stream.on("trailers", (t) => (trailers = t));
      stream.on("data", (d: Buffer) => chunks.push(d));
      stream.on("error", reject);
      stream.on("close", () => {
        const status = (trailers["grpc-status"] ?? head["grpc-status"]) as string | undefined;
        const message = (trailers["grpc-message"] ?? head["grpc-message"]) as string | undefined;
        resolve(grpcOutcome(status, message, envelopes(Buffer.concat(chunks)).map((f) => f.data)));
      });
      stream.end(envelope(json));
    });
  }

  close(): void {
    this.session.close();
  }
}
