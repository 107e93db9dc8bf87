import type { Compression } from "@connectrpc/connect/protocol";
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { readBody } from "../read-body.js";

/**
 * Reads a body of envelopes, stopping as soon as the first envelope announces
 * more than `max` bytes or the body grows past one envelope's worth: the
 * general path refuses that from the prefix, in connect's words.
 */
export async function readEnvelopes(req: IncomingMessage | Http2ServerRequest, max: number, timeoutMs: number): Promise<Buffer> {
  let announced: number | undefined;
  const r = await readBody(req, timeoutMs, (size, chunks) => {
    if (announced === undefined && size >= 5) announced = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks as Buffer[], size)).readUInt32BE(1);
    return announced !== undefined && (announced > max || size > 5 + max);
  });
  return r.bytes;
}

/** {@link readEnvelopes} for a lean path: the bytes, or why reading failed, for the general path to answer. */
export async function readEnvelopesOrError(req: IncomingMessage | Http2ServerRequest, max: number, timeoutMs: number): Promise<Buffer | { readonly error: unknown }> {
  try {
    return await readEnvelopes(req, max, timeoutMs);
  } catch (error) {
    return { error };
  }
}

/**
 * The message of a body that is exactly one complete envelope within `max`
 * bytes, decompressed; undefined for anything else (none, two, truncated,
 * unknown flags, compressed without an encoding, undecompressable), which is
 * connect's to refuse in its own words.
 */
export async function singleMessage(body: Buffer, max: number, compression: Compression | null): Promise<Uint8Array | undefined> {
  if (body.length < 5) return undefined;
  const flags = body[0]!;
  const length = body.readUInt32BE(1);
  if (length > max || body.length !== 5 + length || (flags & ~1) !== 0) return undefined;
  const data = body.subarray(5);
  if (flags === 0) return data;
  if (compression === null) return undefined;
  try {
    return await compression.decompress(data, max);
  } catch {
    return undefined;
  }
}

/** One envelope, compressed as connect compresses: only from compressMinBytes on. */
export async function envelope(bytes: Uint8Array, compression: Compression | null, compressMinBytes: number, flags = 0): Promise<Uint8Array> {
  let data = bytes;
  if (compression !== null && bytes.byteLength >= compressMinBytes) {
    data = await compression.compress(bytes);
    flags |= 1;
  }
  return envelopeBytes(data, flags);
}

/** One envelope of `data` as it is: the flags byte, the 4-byte length, the data. */
export function envelopeBytes(data: Uint8Array, flags = 0): Uint8Array {
  const out = new Uint8Array(5 + data.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.byteLength);
  out.set(data, 5);
  return out;
}
