import { LedgerError } from "../../domain/errors.js";
import { isInt64 } from "../../domain/money.js";

/**
 * USD amounts in the ledger's unit (10^-scale dollars; scale 6 by default)
 * become cents by one rule: a running balance of B units is
 * floor(B / 10^(scale-2)) cents, and a posted entry is worth the change it
 * makes to that converted running balance. So the balance equals the sum of
 * the entries exactly (the sum telescopes), an entry of whole cents is exact
 * whatever the balance around it, and the sub-cent remainder is carried
 * instead of being lost or double counted. Flooring (not truncating toward
 * zero) means the balance shown never exceeds what is actually held, and every
 * cent-wide bucket is the same width on both sides of zero. For scale <= 2 the
 * conversion is an exact multiplication.
 */
export function unitsToCents(units: bigint, scale: number): bigint {
  if (scale >= 2) return floorDiv(units, 10n ** BigInt(scale - 2));
  const cents = units * 10n ** BigInt(2 - scale);
  // Only a tenant that defined USD with scale 0 or 1 and holds near-int64 balances gets here.
  if (!isInt64(cents)) throw new LedgerError("internal", "cents_overflow", "the balance in cents does not fit in int64");
  return cents;
}

/** The cents of one posted entry: the change it made to the converted running balance. */
export function entryCents(postedAfter: bigint, amount: bigint, scale: number): bigint {
  return unitsToCents(postedAfter, scale) - unitsToCents(postedAfter - amount, scale);
}

/** Division rounding toward negative infinity (bigint `/` truncates toward zero). */
function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}
