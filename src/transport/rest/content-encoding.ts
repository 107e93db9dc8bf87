import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { decompress } from "../lean/message.js";

/**
 * The request content-codings REST routes decode, by the name a
 * `Content-Encoding` header gives them (case-insensitive, RFC 9110 §8.4.1;
 * `x-gzip` is gzip, §8.4.1.3). They are connect-node's own codecs, the ones
 * the RPC routes accept: one implementation, one set of bounds.
 */
const CODINGS = new Map<string, Compression>([
  ["gzip", compressionGzip],
  ["x-gzip", compressionGzip],
  ["br", compressionBrotli],
]);

/** What a 415 answer names, and what its `Accept-Encoding` header lists (RFC 9110 §12.5.3). */
export const SUPPORTED_ENCODINGS = "gzip, br, identity";

/**
 * The coding a REST request's body is in: null for none (`identity`, or no
 * header), or the refusal (unimplemented; the REST layer answers it 415) of
 * anything else: an unknown coding, or more than one.
 */
export function requestCoding(header: string | string[] | undefined): Compression | null | ConnectError {
  const names = (Array.isArray(header) ? header.join(",") : (header ?? ""))
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "" && s !== "identity");
  if (names.length === 0) return null;
  const coding = names.length === 1 ? CODINGS.get(names[0]!) : undefined;
  if (coding !== undefined) return coding;
  const what = names.length === 1 ? `content-encoding "${names[0]}" is not supported` : `content-encoding "${names.join(", ")}" applies more than one coding`;
  return new ConnectError(`${what}: supported encodings are ${SUPPORTED_ENCODINGS}`, Code.Unimplemented);
}

/**
 * A body in `coding`, decoded, with its decoded size bounded by `max` as a
 * plain body's size is: zlib inflates in chunks and stops just past the
 * bound, so a small bomb is never inflated whole. Rejects with
 * resource_exhausted past `max`, invalid_argument for data that does not
 * decode (corrupt or truncated).
 */
export async function decodeBody(raw: Buffer, coding: Compression | null, max: number): Promise<Buffer> {
  if (coding === null) return raw;
  let decoded: Uint8Array;
  try {
    decoded = await decompress(coding, raw, max);
  } catch (e) {
    if (e instanceof ConnectError && e.code === Code.ResourceExhausted) {
      throw new ConnectError(`request body is larger than ${max} bytes once decoded`, Code.ResourceExhausted);
    }
    throw e;
  }
  return Buffer.from(decoded.buffer, decoded.byteOffset, decoded.byteLength);
}
