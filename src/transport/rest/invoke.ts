import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ContextValues } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { errorFromJsonBytes, endStreamFromJson } from "@connectrpc/connect/protocol-connect";

/** What an in-process call carries besides its message. */
export interface InvokeOptions {
  readonly signal: AbortSignal;
  readonly contextValues: ContextValues;
}

/**
 * Calls a Connect handler in-process with a Connect unary binary request, so
 * int64 stays exact and the interceptors (auth, errors, logs) run exactly as
 * for any other protocol. No second network hop.
 */
export async function invokeUnary<I extends DescMessage, O extends DescMessage>(
  handler: UniversalHandler,
  input: I,
  output: O,
  message: MessageShape<I>,
  opts: InvokeOptions,
): Promise<MessageShape<O>> {
  const res = await handler({
    httpVersion: "1.1",
    url: `http://in-process${handler.requestPath}`,
    method: "POST",
    header: new Headers({ "content-type": "application/proto", "connect-protocol-version": "1" }),
    body: once(toBinary(input, message)),
    signal: opts.signal,
    contextValues: opts.contextValues,
  });
  const body = await readAll(res.body);
  if (res.status !== 200) {
    throw errorFromJsonBytes(body, undefined, new ConnectError(`in-process call failed with HTTP ${res.status}`, Code.Internal));
  }
  return fromBinary(output, body);
}

/** Calls a server-streaming handler in-process (Connect streaming, binary) and yields its messages. */
export async function* invokeServerStream<I extends DescMessage, O extends DescMessage>(
  handler: UniversalHandler,
  input: I,
  output: O,
  message: MessageShape<I>,
  opts: InvokeOptions,
): AsyncGenerator<MessageShape<O>> {
  const res = await handler({
    httpVersion: "1.1",
    url: `http://in-process${handler.requestPath}`,
    method: "POST",
    header: new Headers({ "content-type": "application/connect+proto", "connect-protocol-version": "1" }),
    body: once(envelope(0, toBinary(input, message))),
    signal: opts.signal,
    contextValues: opts.contextValues,
  });
  if (res.status !== 200) {
    throw errorFromJsonBytes(await readAll(res.body), undefined, new ConnectError(`in-process call failed with HTTP ${res.status}`, Code.Internal));
  }
  let buffer: Uint8Array = new Uint8Array(0);
  for await (const chunk of res.body ?? []) {
    buffer = concat(buffer, chunk);
    while (buffer.length >= 5) {
      const flags = buffer[0]!;
      const len = new DataView(buffer.buffer, buffer.byteOffset + 1, 4).getUint32(0);
      if (buffer.length < 5 + len) break;
      const data = buffer.subarray(5, 5 + len);
      buffer = buffer.subarray(5 + len);
      if (flags & 0b10) {
        const end = endStreamFromJson(data);
        if (end.error) throw end.error;
        return;
      }
      yield fromBinary(output, data);
    }
  }
}

function envelope(flags: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + data.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.length);
  out.set(data, 5);
  return out;
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

async function readAll(body: AsyncIterable<Uint8Array> | undefined): Promise<Uint8Array> {
  let out: Uint8Array = new Uint8Array(0);
  for await (const chunk of body ?? []) out = concat(out, chunk);
  return out;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
