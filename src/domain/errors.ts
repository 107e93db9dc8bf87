/**
 * Error codes the domain raises. They mirror the Connect/gRPC codes so the RPC
 * boundary can map them one to one, without the domain importing Connect.
 */
export type LedgerErrorCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "out_of_range"
  | "permission_denied"
  | "unauthenticated"
  | "resource_exhausted"
  | "aborted"
  | "unavailable"
  | "internal";

/**
 * A typed, client-safe error: its message is meant for the wire, and `reason`
 * is a stable machine-readable tag such as `balance_locked`.
 */
export class LedgerError extends Error {
  override readonly name = "LedgerError";
  /**
   * For an unauthenticated refusal: the id of the key or credential the
   * caller presented (never its secret), for the server's log only; it is
   * not sent to the client.
   */
  credentialId: string | undefined;
  constructor(
    readonly code: LedgerErrorCode,
    readonly reason: string,
    message: string,
    readonly metadata: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/** A client sent something malformed; nothing was written. */
export function invalidArgument(reason: string, message: string, metadata?: Record<string, string>): LedgerError {
  return new LedgerError("invalid_argument", reason, message, metadata);
}

/** The object does not exist for this caller (or belongs to someone else). */
export function notFound(what: string, id: string): LedgerError {
  return new LedgerError("not_found", `${what}_not_found`, `${what} "${id}" not found`);
}

/** The request is well-formed but the ledger's state forbids it. */
export function failedPrecondition(reason: string, message: string, metadata?: Record<string, string>): LedgerError {
  return new LedgerError("failed_precondition", reason, message, metadata);
}

/** Notes on an unauthenticated refusal which key or credential id was presented (for the server's log, not the client). */
export function withCredentialId(e: LedgerError, credentialId: string | undefined): LedgerError {
  e.credentialId = credentialId;
  return e;
}
