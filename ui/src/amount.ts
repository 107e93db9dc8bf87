/** The largest int64: every Tally amount fits. */
const INT64_MAX = 2n ** 63n - 1n;

/**
 * An amount in an asset's smallest unit, written with `scale` decimals:
 * 9007199254740993n at scale 6 is "9007199254.740993". Exact for every
 * int64: only bigint arithmetic, never Number.
 */
export function formatAmount(units: bigint, scale: number): string {
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString();
  if (scale === 0) return (negative ? "-" : "") + digits;
  const padded = digits.padStart(scale + 1, "0");
  const whole = padded.slice(0, padded.length - scale);
  return `${negative ? "-" : ""}${whole}.${padded.slice(padded.length - scale)}`;
}

/**
 * Reads a positive decimal typed by a person ("12", "12.5", "0.000001") as a
 * count of the asset's smallest unit. Refuses more decimals than the scale
 * (no silent rounding of money), signs, exponents and anything beyond int64.
 */
export function parseAmount(text: string, scale: number): bigint {
  const m = /^(\d+)(?:\.(\d*))?$/.exec(text.trim());
  if (m === null) throw new Error(`"${text}" is not a decimal amount`);
  const fraction = m[2] ?? "";
  if (fraction.length > scale) throw new Error(`at most ${scale} decimal places for this asset`);
  const units = BigInt(m[1]! + fraction.padEnd(scale, "0"));
  if (units > INT64_MAX) throw new Error("amount too large");
  return units;
}
