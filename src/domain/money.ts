import { LedgerError, invalidArgument } from "./errors.js";

/** Largest value of a signed 64-bit integer. */
export const INT64_MAX = 9223372036854775807n;
/** Smallest value of a signed 64-bit integer. */
export const INT64_MIN = -9223372036854775808n;

/** True when `v` fits in a signed 64-bit integer. */
export function isInt64(v: bigint): boolean {
  return v >= INT64_MIN && v <= INT64_MAX;
}

/**
 * a + b, refusing to leave int64. SQLite would store an overflowing sum as a
 * REAL (or refuse it in a STRICT table), so overflow is caught before any write.
 */
export function checkedAdd(a: bigint, b: bigint, what: string): bigint {
  const sum = a + b;
  if (!isInt64(sum)) {
    throw new LedgerError("out_of_range", "int64_overflow", `${what} would overflow int64`, { field: what });
  }
  return sum;
}

/** a - b, refusing to leave int64. */
export function checkedSub(a: bigint, b: bigint, what: string): bigint {
  return checkedAdd(a, -b, what);
}

/** Refuses amounts that are not strictly positive int64 values. */
export function requirePositiveAmount(v: bigint, field: string): bigint {
  if (!isInt64(v)) throw invalidArgument("invalid_amount", `${field} is outside the int64 range`, { field });
  if (v <= 0n) throw invalidArgument("invalid_amount", `${field} must be greater than zero`, { field });
  return v;
}
