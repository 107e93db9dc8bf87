import { invalidArgument } from "./errors.js";

/** An asset: a code and the number of decimal places of its smallest unit. */
export interface Asset {
  readonly code: string;
  readonly scale: number;
}

/** Scales above 18 cannot express even one whole unit in int64. */
export const MAX_SCALE = 18;

const ASSET_CODE = /^[A-Z][A-Z0-9_]{0,31}$/;

/** Asset codes are upper-case so that "usd" and "USD" cannot become two assets. */
export function validateAssetCode(code: string): string {
  if (!ASSET_CODE.test(code)) {
    throw invalidArgument("invalid_asset", `asset must be 1-32 characters of [A-Z0-9_] starting with a letter, got ${JSON.stringify(code)}`);
  }
  return code;
}

/** Refuses scales that int64 cannot hold. */
export function validateScale(scale: number): number {
  if (!Number.isInteger(scale) || scale < 0 || scale > MAX_SCALE) {
    throw invalidArgument("invalid_scale", `scale must be an integer in 0..${MAX_SCALE}`);
  }
  return scale;
}

/**
 * The scale an asset gets when it is first used without being defined:
 * `VC` (virtual credits) counts whole units; three-letter ISO-4217-style codes
 * count micro-units (6), finer than any fiat's minor unit so that usage pricing
 * never has to round; anything else counts whole units.
 */
export function defaultScale(code: string): number {
  if (code === "VC") return 0;
  if (/^[A-Z]{3}$/.test(code)) return 6;
  return 0;
}
