import type { DescMessage, Message } from "@bufbuild/protobuf";
import { ScalarType } from "@bufbuild/protobuf";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { EventStreamFormat, ProfileJson } from "../../dialects/dialect.js";
import { drained } from "../lean/write.js";
import type { InProcessStream } from "../rpc-handler.js";

type Res = ServerResponse | Http2ServerResponse;

const INT64_MAX = 9223372036854775807n;
const UINT64_MAX = 18446744073709551615n;

/** Sets a stream request's resume field from a request's `Last-Event-ID` header. */
export type LastEventIdSetter = (input: Message, req: IncomingMessage | Http2ServerRequest) => void;

/**
 * Prepares, once per route, how a reconnecting client's `Last-Event-ID`
 * sets the request field the format names (undefined when it names none).
 * Only a canonical non-negative integer of the field's range is taken;
 * anything else is ignored, since EventSource sends back whatever id it last
 * saw and a fresh start is always a correct baseline. A format naming a
 * field the request lacks, or one that is not a 64-bit integer, is a
 * dialect bug, refused when the server is built.
 */
export function lastEventIdSetter(schema: DescMessage, format: EventStreamFormat): LastEventIdSetter | undefined {
  const name = format.lastEventIdField;
  if (name === undefined) return undefined;
  const field = schema.fields.find((f) => f.localName === name);
  const scalar = field?.fieldKind === "scalar" ? field.scalar : undefined;
  const max = scalar === undefined ? undefined : SIGNED.has(scalar) ? INT64_MAX : UNSIGNED.has(scalar) ? UINT64_MAX : undefined;
  if (max === undefined) throw new Error(`${schema.typeName}.${name} is not a 64-bit integer field, so Last-Event-ID cannot set it`);
  return (input, req) => {
    const raw = req.headers["last-event-id"];
    const text = (Array.isArray(raw) ? raw[0] : raw)?.trim();
    if (text === undefined || !/^(0|[1-9][0-9]{0,19})$/.test(text)) return;
    const n = BigInt(text);
    if (n <= max) (input as unknown as Record<string, unknown>)[name] = n;
  };
}

const SIGNED = new Set([ScalarType.INT64, ScalarType.SINT64, ScalarType.SFIXED64]);
const UNSIGNED = new Set([ScalarType.UINT64, ScalarType.FIXED64]);

/**
 * Answers a server stream as text/event-stream: the first message is read
 * before the headers go out (so a stream that fails to start, unauthenticated
 * or over the tenant's stream cap, is still an ordinary error response,
 * thrown to the caller); then one frame per message, a `:` comment every
 * keepAliveMs so that proxies keep the connection, and, when the client
 * reads slowly, a pause until it drains (which pauses the stream's reads
 * too, instead of buffering frames without bound). After the first frame an
 * error only ends the stream: SSE has no way to say more, and the client
 * resumes with Last-Event-ID. The call is ended in every case.
 */
export async function serveEventStream(res: Res, stream: InProcessStream, format: EventStreamFormat, json: ProfileJson): Promise<void> {
  const { messages } = stream;
  let timer: NodeJS.Timeout | undefined;
  try {
    let r = await messages.next();
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    });
    const out = res as ServerResponse;
    timer = setInterval(() => {
      if (!gone(res)) out.write(":\n\n");
    }, format.keepAliveMs);
    timer.unref();
    try {
      for (; r.done !== true; r = await messages.next()) {
        const text = format.frame(r.value, json);
        if (text === "") continue;
        if (gone(res)) break;
        if (!out.write(text)) await drained(res);
      }
    } catch {
      // Ended after the first frame: the connection closes, the client reconnects.
    }
    if (!gone(res)) res.end();
  } finally {
    if (timer) clearInterval(timer);
    await messages.return?.().catch(() => undefined);
    stream.end();
  }
}

function gone(res: Res): boolean {
  return res.destroyed || res.writableEnded;
}
