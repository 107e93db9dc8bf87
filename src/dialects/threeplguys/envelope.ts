import { STATUS_CODES } from "node:http";
import { Code } from "@connectrpc/connect";
import type { ConnectError } from "@connectrpc/connect";
import type { ErrorEnvelopeWriter } from "../dialect.js";
import { ErrorDetailSchema } from "../../../gen/tally/ledger/v1/ledger_pb.js";

/** The envelope's registered name, as the proto's JSON profile refers to it. */
export const THREEPLGUYS_ENVELOPE = "3plguys";

/** The 401 text when no credentials were sent. */
export const MISSING_TOKEN = "Missing bearer token";
/** The 401 text for every other authentication failure (unknown, malformed, wrong secret, revoked): one answer, no oracle. */
export const INVALID_TOKEN = "Invalid or revoked API key";
/** The 500 text; internals stay in the server log. */
export const INTERNAL = "Internal server error";

/**
 * `{"message": "...", "error": "<HTTP reason phrase>", "statusCode": <status>}`.
 * The vendor documents no error body; this is the shape of a NestJS
 * HttpException (the framework its `skip`/`take` paging idiom suggests), so a
 * client reading `message` or `statusCode` works either way.
 */
export const threeplguysEnvelope: ErrorEnvelopeWriter = (e, ctx) => {
  const status = ctx.status;
  const body = JSON.stringify({ message: messageOf(e, status), error: STATUS_CODES[status] ?? "Error", statusCode: status });
  return { status, body };
};

function messageOf(e: ConnectError, status: number): string {
  if (status >= 500 && e.code !== Code.Unavailable) return INTERNAL;
  if (e.code === Code.Unauthenticated) {
    const reason = e.findDetails(ErrorDetailSchema)[0]?.reason;
    return reason === "missing_credentials" ? MISSING_TOKEN : INVALID_TOKEN;
  }
  // Every other domain and transport message is written to be client-safe.
  return e.rawMessage;
}
