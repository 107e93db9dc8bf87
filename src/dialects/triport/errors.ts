import { Code } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../../../gen/tally/ledger/v1/ledger_pb.js";
import type { Principal } from "../../domain/access.js";
import { LedgerError } from "../../domain/errors.js";
import type { ErrorEnvelopeWriter } from "../dialect.js";
import { SESSION_KEY_KIND } from "./session.js";

/** 401: no valid session (the vendor's exact message). */
export function authRequired(): LedgerError {
  return new LedgerError("unauthenticated", "auth_required", "auth required");
}

/** 503: no tenant has a session key, so no session can be resolved. */
export function resolverNotConfigured(): LedgerError {
  return new LedgerError("unavailable", "session_resolver_not_configured", "session resolver not configured");
}

/** The user a principal acts for: a Triport session, or a Tally account-scoped key. */
export function userOf(p: Principal | undefined): { tenantId: string; accountId: string } {
  if (!p || p.accountId === null) throw authRequired();
  // Another dialect's credential never names a Triport user.
  if (p.credential && p.credential.kind !== SESSION_KEY_KIND) throw authRequired();
  return { tenantId: p.tenantId, accountId: p.accountId };
}

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
