import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ContextValues } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";

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
