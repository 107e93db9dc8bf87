import { randomBytes } from "node:crypto";

/** Longest `x-request-id` taken from a client; a longer one is replaced. */
export const MAX_REQUEST_ID_LENGTH = 128;

/**
 * What a client's id may hold: the characters of UUIDs, ULIDs, hex and
 * base64url ids and the usual separators. Nothing that could break a log
 * line, a header or a shell (no space, quote, backslash or control).
 */
const ID = /^[A-Za-z0-9._:/+=@-]{1,128}$/;

/** The request id of the request header, or undefined when it is missing or unusable (then one is generated). */
export function acceptedRequestId(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const v = typeof header === "string" ? header : header[0];
  return v !== undefined && v.length <= MAX_REQUEST_ID_LENGTH && ID.test(v) ? v : undefined;
}

/**
 * Generates request ids: a random per-process prefix and a counter, e.g.
 * `t5f2kq9w1c-1a2b`. Unique within the process, and across processes with
 * overwhelming likelihood (50 random bits each); costs a counter increment
 * and a short string, not a UUID (random bytes) per request. Not secret:
 * request ids are for correlating logs and traces, never for authorising.
 */
export class RequestIds {
  readonly #prefix = `${randomBytes(8).readBigUInt64BE().toString(36).slice(0, 10)}-`;
  #next = 0;

  next(): string {
    return this.#prefix + (++this.#next).toString(36);
  }
}
