import { fromBinary, fromJson } from "@bufbuild/protobuf";
import type { BinaryReadOptions, DescMessage, JsonReadOptions, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { LedgerError } from "../../domain/errors.js";
import { toConnectError } from "../../services/errors.js";
import { parseStrictJson } from "../json-guard.js";
import { readBounded } from "../read-body.js";

/*
 * Reading and checking one request message. protobuf-es reads JSON with
 * JSON.parse (2^53+1 silently becomes 2^53) and accepts "0x10", " 12" and
 * 1e3 for integer fields of every width; for a ledger those are errors, not
 * guesses, so JSON goes through the strict, schema-aware parser of
 * json-guard.ts first (integers by the rule of canonical-int.ts).
 * connect reports an undecodable binary message as internal (HTTP 500, gRPC
 * 13), as if the server were at fault; here it is the client's
 * invalid_argument. For a binary message the check and the decode are one
 * step.
 */

/** Refuses a message over readMaxBytes in connect-es's own words, so that the answer is stock connect-node's. */
export function tooLarge(max: number, size?: number): ConnectError {
  const what = size === undefined ? "message size" : `message size ${size}`;
  return new ConnectError(`${what} is larger than configured readMaxBytes ${max}`, Code.ResourceExhausted);
}

/** Decompresses with the readMaxBytes bound; anything but "too large" is the client's bad data. */
export async function decompress(encoding: Compression, bytes: Uint8Array, max: number): Promise<Uint8Array> {
  try {
    return await encoding.decompress(bytes, max);
  } catch (e) {
    if (e instanceof ConnectError && e.code === Code.ResourceExhausted) throw e;
    // connect reports a truncated stream as "internal"; it is a malformed request, not a server fault.
    throw new ConnectError(`the ${encoding.name} data could not be decompressed`, Code.InvalidArgument);
  }
}

/**
 * Reads a whole unary body, bounded by readMaxBytes before and after
 * decompression, within the request timeout. A stalled body is answered
 * (deadline_exceeded); a client that left throws.
 */
export async function readUnaryBody(
  req: IncomingMessage | Http2ServerRequest,
  max: number,
  encoding: Compression | null,
  timeoutMs: number,
): Promise<Uint8Array | ConnectError> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > max) return tooLarge(max, declared);
  let raw: Buffer | undefined;
  try {
    raw = await readBounded(req, max, timeoutMs);
  } catch (e) {
    if (e instanceof ConnectError && e.code === Code.DeadlineExceeded) return e;
    throw e;
  }
  if (raw === undefined) return tooLarge(max);
  if (encoding === null) return raw;
  try {
    return await decompress(encoding, raw, max);
  } catch (e) {
    return e as ConnectError;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** UTF-8 JSON bytes to the strictly parsed value, or the refusal. */
export function checkJson(bytes: Uint8Array, schema: DescMessage): { value: ReturnType<typeof parseStrictJson> } | ConnectError {
  let text: string;
  try {
    // Fatal: invalid UTF-8 is refused rather than silently turned into U+FFFD.
    // ignoreBOM keeps a leading BOM in the text so that the parser can refuse it.
    text = utf8.decode(bytes);
  } catch {
    return new ConnectError("invalid JSON: the message is not valid UTF-8", Code.InvalidArgument);
  }
  try {
    return { value: parseStrictJson(text, schema) };
  } catch (e) {
    if (e instanceof LedgerError) return toConnectError(e);
    return new ConnectError("invalid JSON", Code.InvalidArgument);
  }
}

/** A JSON message, strictly checked, then read by protobuf-es from the checked value (as connect reads a parsed body). */
export function decodeJson<D extends DescMessage>(bytes: Uint8Array, schema: D, options?: Partial<JsonReadOptions>): MessageShape<D> | ConnectError {
  const checked = checkJson(bytes, schema);
  if (checked instanceof ConnectError) return checked;
  try {
    return fromJson(schema, checked.value, options);
  } catch (e) {
    return ConnectError.from(e, Code.InvalidArgument);
  }
}

/** A binary message, or the client's invalid_argument if protobuf-es cannot decode it. */
export function decodeBinary<D extends DescMessage>(bytes: Uint8Array, schema: D, options?: Partial<BinaryReadOptions>): MessageShape<D> | ConnectError {
  try {
    return fromBinary(schema, bytes, options);
  } catch (e) {
    const why = e instanceof Error ? `: ${e.message}` : "";
    return new ConnectError(`the message is not a valid ${schema.typeName}${why}`, Code.InvalidArgument);
  }
}
