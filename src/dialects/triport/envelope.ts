import { Code } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../../../gen/tally/ledger/v1/ledger_pb.js";
import type { ErrorEnvelopeWriter } from "../dialect.js";

/** Domain reasons → the vendor's status and `error` string. */
const BY_REASON: Readonly<Record<string, readonly [number, string]>> = {
  session_resolver_not_configured: [503, "session resolver not configured"],
  invoice_not_found: [404, "invoice not found"],
  not_owner: [403, "not_owner"],
  balance_locked: [409, "balance_locked"],
  insufficient_funds: [402, "insufficient_balance"],
  too_many_streams: [429, "too many streams"],
};

/**
 * `{"error": "<message>"}`. Every unauthenticated failure is the same
 * `auth required` (no hint at why a session failed); server faults are
 * `internal: ...` with the sanitized message only.
 */
export const triportEnvelope: ErrorEnvelopeWriter = (e, ctx) => {
  const body = (status: number, message: string) => ({ status, body: JSON.stringify({ error: message }) });
  if (e.code === Code.Unauthenticated) return body(401, "auth required");
  const reason = e.findDetails(ErrorDetailSchema)[0]?.reason ?? "";
  const mapped = BY_REASON[reason];
  if (mapped) return body(mapped[0], mapped[1]);
  if (e.code === Code.Internal || e.code === Code.Unknown || e.code === Code.DataLoss) return body(500, `internal: ${e.rawMessage}`);
  return body(ctx.status, e.rawMessage);
};
