import { ScalarType } from "@bufbuild/protobuf";
import { invalidArgument } from "../domain/errors.js";

/*
 * The one rule for integers on the wire, whatever the field's width and
 * whatever carried it (a Connect/gRPC JSON message, a REST body, a query
 * parameter, a path variable). protobuf-es's own JSON reader takes "0x6",
 * "0b11", "1e1", "+2", "06", 3.0 and "-0" for a 32-bit field; an asset scale
 * or a page size that was guessed is as wrong as a guessed amount, so every
 * integer kind is held to the same canonical form as int64:
 *
 *   -?(0|[1-9][0-9]*), and not "-0"
 *
 * as a JSON string or a JSON number alike: no sign on zero, no "+", no
 * leading zeros, no fraction (not even ".0"), no exponent, no radix prefix, no
 * whitespace. A JSON number for a 64-bit field must also be at most 2^53-1 in
 * magnitude, the most a double carries exactly (larger values go as strings).
 * An enum given as a number is an int32 under the same rule; its string form
 * is a value name, which protobuf-es checks. A value outside the kind's range
 * is refused naming the field and the range, never wrapped or clamped.
 */

/** A range class of integers and how its refusals are reported. */
export interface IntegerKind {
  /** What messages call it: int32, uint32, int64, uint64 or enum. */
  readonly name: string;
  readonly min: bigint;
  readonly max: bigint;
  /** Whether JSON numbers are limited to ±(2^53-1) (64-bit kinds). */
  readonly wide: boolean;
  /** The ErrorDetail reason of a refusal. */
  readonly reason: "invalid_int32" | "invalid_int64" | "invalid_enum";
}

/** int32, sint32 and sfixed32. */
export const INT32: IntegerKind = { name: "int32", min: -(2n ** 31n), max: 2n ** 31n - 1n, wide: false, reason: "invalid_int32" };
/** uint32 and fixed32. */
export const UINT32: IntegerKind = { name: "uint32", min: 0n, max: 2n ** 32n - 1n, wide: false, reason: "invalid_int32" };
/** int64, sint64 and sfixed64. */
export const INT64: IntegerKind = { name: "int64", min: -(2n ** 63n), max: 2n ** 63n - 1n, wide: true, reason: "invalid_int64" };
/** uint64 and fixed64. */
export const UINT64: IntegerKind = { name: "uint64", min: 0n, max: 2n ** 64n - 1n, wide: true, reason: "invalid_int64" };
/** An enum value given by number: proto enums are int32. */
export const ENUM_NUMBER: IntegerKind = { name: "enum", min: INT32.min, max: INT32.max, wide: false, reason: "invalid_enum" };

/** The range class of an integer scalar type; undefined for every other scalar. */
export function integerKindOf(scalar: ScalarType): IntegerKind | undefined {
  switch (scalar) {
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return INT32;
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return UINT32;
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return INT64;
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return UINT64;
    default:
      return undefined;
  }
}

/** The range class of an integer wrapper message (google.protobuf.Int32Value, ...); undefined for any other type. */
export function wrapperKindOf(typeName: string): IntegerKind | undefined {
  switch (typeName) {
    case "google.protobuf.Int32Value":
      return INT32;
    case "google.protobuf.UInt32Value":
      return UINT32;
    case "google.protobuf.Int64Value":
      return INT64;
    case "google.protobuf.UInt64Value":
      return UINT64;
    default:
      return undefined;
  }
}

const CANONICAL = /^-?(0|[1-9][0-9]*)$/;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
/** 2^64 has 20 digits: anything longer is out of every range, and BigInt is not asked to read a megabyte of digits. */
const MAX_DIGITS = 20;

/** True for text in the canonical form: an optional "-", then 0 or digits without a leading zero; never "-0". */
export function isCanonicalInteger(text: string): boolean {
  return CANONICAL.test(text) && text !== "-0";
}

/** How a value looks in an error message: cut short. */
function show(text: string): string {
  return text.length > 48 ? `${text.slice(0, 45)}...` : text;
}

/** The refusal of a value that is not in the kind's canonical form. */
export function malformedInteger(path: string, kind: IntegerKind, got: string): never {
  throw invalidArgument(kind.reason, `${path}: ${formOf(kind)}, got ${show(got)}`, { field: path, type: kind.name });
}

const NOT = 'no fraction, exponent, "+", leading zero or -0';

function formOf(kind: IntegerKind): string {
  if (kind.wide) return "64-bit integers must be decimal strings (or JSON integers up to 2^53-1)";
  if (kind === ENUM_NUMBER) return `enum values must be names or decimal integers such as 2 (${NOT})`;
  return `32-bit integers must be decimal integers such as 6 or "6" (${NOT})`;
}

/** The refusal of a canonical value outside the kind's range. */
export function outOfRange(path: string, kind: IntegerKind, text: string): never {
  throw invalidArgument(kind.reason, `${path}: ${show(text)} is outside the range of ${kind.name}`, { field: path, type: kind.name });
}

function checkRange(text: string, kind: IntegerKind, path: string): void {
  const digits = text.startsWith("-") ? text.length - 1 : text.length;
  if (digits > MAX_DIGITS) outOfRange(path, kind, text);
  const v = BigInt(text);
  if (v < kind.min || v > kind.max) outOfRange(path, kind, text);
}

/**
 * An integer given as text: a JSON string's contents, a query parameter, a
 * path variable, a map key. `got` is how the value is shown when refused
 * (a JSON string with its quotes, say).
 *
 * @throws LedgerError (`invalid_argument`, the kind's reason) naming `path`.
 */
export function checkIntegerText(text: string, kind: IntegerKind, path: string, got = text): void {
  if (!isCanonicalInteger(text)) malformedInteger(path, kind, got);
  checkRange(text, kind, path);
}

/**
 * An integer given as a JSON number token, exactly as it appears in the
 * source (JSON.parse would already have turned 3.0 into 3 and 1e1 into 10).
 *
 * @throws LedgerError (`invalid_argument`, the kind's reason) naming `path`.
 */
export function checkIntegerNumber(token: string, kind: IntegerKind, path: string): void {
  if (!isCanonicalInteger(token)) malformedInteger(path, kind, token);
  if (kind.wide) {
    // A double holds integers exactly only up to 2^53-1: a larger JSON number may already be another number.
    if (token.length > 17) malformedInteger(path, kind, token);
    const v = BigInt(token);
    if (v > MAX_SAFE || v < -MAX_SAFE) malformedInteger(path, kind, token);
  }
  checkRange(token, kind, path);
}
