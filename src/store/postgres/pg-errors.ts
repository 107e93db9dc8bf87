import { LedgerError } from "../../domain/errors.js";

/**
 * SQLSTATEs after which re-running the whole write in a fresh transaction is
 * the right answer: the transaction was rolled back and nothing of it stays.
 * 23505 is here because a concurrent writer inserted the same key first; on
 * the re-run the domain sees that row and answers properly (a replay, or
 * already_exists).
 */
export const RETRYABLE_SQLSTATES: ReadonlySet<string> = new Set(["40001", "40P01", "23505"]);

/** The SQLSTATE (or Node errno code) an error carries, or "". */
export function errorCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "";
}

const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ECONNABORTED"]);

// Errors pg raises without a code when the socket is gone or never came up.
const CONNECTION_MESSAGES = /Connection terminated|not queryable|timeout exceeded when trying to connect|Connection ended|Client was closed/i;

/**
 * True when the connection itself is unusable afterwards: the client must be
 * released with the error so the pool discards it instead of reusing it.
 */
export function isConnectionBroken(e: unknown): boolean {
  const code = errorCode(e);
  if (NETWORK_CODES.has(code)) return true;
  if (code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03" || code === "53300") return true;
  return e instanceof Error && CONNECTION_MESSAGES.test(e.message);
}

/** Why the database could not serve the call, in plain words, or undefined when it is not an availability problem. */
function unavailableReason(e: unknown): string | undefined {
  const code = errorCode(e);
  if (code === "57014") return "the database did not answer in time";
  if (code === "53300") return "the database has too many connections";
  if (code === "57P01" || code === "57P02" || code === "57P03") return "the database is shutting down or restarting";
  if (code === "53100") return "the database disk is full";
  // Other insufficient-resource, system and read-only (a standby after failover) errors.
  if (code.startsWith("53") || code.startsWith("58") || code === "25006") return "the database is unavailable";
  if (e instanceof Error && /timeout exceeded when trying to connect/i.test(e.message)) return "no database connection became free in time";
  if (e instanceof Error && /after calling end on the pool/i.test(e.message)) return "the store is closed";
  if (isConnectionBroken(e)) return "the database connection failed";
  return undefined;
}

/** Where a failure happened, which decides what the error may promise. */
export type FailurePhase = "read" | "write" | "commit";

/**
 * Maps anything a PostgreSQL call threw to a client-safe LedgerError.
 * Availability problems become `unavailable` (retrying is safe: writes carry
 * idempotency keys); a connection lost during COMMIT leaves the outcome
 * unknown, and the message must not claim that nothing was written. Anything
 * else is a bug of ours: a generic `internal` with no internals in the message.
 */
export function storeError(e: unknown, phase: FailurePhase): LedgerError {
  if (e instanceof LedgerError) return e;
  const code = errorCode(e);
  const meta: Record<string, string> = code ? { pg_code: code } : {};
  const reason = unavailableReason(e);
  if (reason !== undefined) {
    if (reason === "the store is closed") return new LedgerError("unavailable", "store_closed", "the store is closed", meta);
    if (phase === "commit" && isConnectionBrokenOrTimeout(e)) {
      return new LedgerError(
        "unavailable",
        "store_unavailable",
        `${reason} while committing; the write may or may not have been applied, retry it with the same idempotency key`,
        meta,
      );
    }
    const tail = phase === "read" ? "the call may be retried" : "nothing was written, the call may be retried";
    return new LedgerError("unavailable", "store_unavailable", `${reason}; ${tail}`, meta);
  }
  // PostgreSQL text cannot hold NUL characters; SQLite can. Refuse such input
  // plainly rather than as an internal error.
  if (code === "22021" || code === "22P05") {
    return new LedgerError("invalid_argument", "invalid_text", "text must be valid UTF-8 without NUL characters", meta);
  }
  return new LedgerError("internal", "internal", "internal error", meta);
}

function isConnectionBrokenOrTimeout(e: unknown): boolean {
  return isConnectionBroken(e) || errorCode(e) === "57014";
}

/** The error after a write kept conflicting until the retries ran out. */
export function conflictError(code: string): LedgerError {
  return new LedgerError(
    "aborted",
    "write_conflict",
    "the write kept conflicting with concurrent writes; nothing was written, the call may be retried",
    { pg_code: code },
  );
}
