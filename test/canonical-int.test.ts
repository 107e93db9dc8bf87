import { fromJson } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EchoIntsRequestSchema } from "../gen/tally/testing/v1/transcoding_pb.js";
import { LedgerError } from "../src/domain/errors.js";
import { ENUM_NUMBER, INT32, INT64, UINT32, UINT64, checkIntegerNumber, checkIntegerText, isCanonicalInteger } from "../src/transport/canonical-int.js";
import type { IntegerKind } from "../src/transport/canonical-int.js";
import { parseStrictJson } from "../src/transport/json-guard.js";

/*
 * The canonical integer rule on its own (src/transport/canonical-int.ts), and
 * through the strict JSON parser on every 32-bit shape of a message. The same
 * rule over real sockets, on every input path: test/strict-ints.test.ts.
 */

/** The LedgerError `f` throws, or fails the test. */
function refusal(f: () => unknown): LedgerError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(LedgerError);
    expect((e as LedgerError).code).toBe("invalid_argument");
    return e as LedgerError;
  }
  throw new Error("expected a refusal");
}

const MALFORMED = ["-0", "+2", "06", "00", "-01", "0x6", "0X6", "0b11", "0o7", "1e1", "1E1", "1e0", "3.0", "6.5", ".5", "5.", "-", "", " 6", "6 ", "\t6", "1_000", "1,000", "Infinity", "-Infinity", "NaN", "\u0663", "\uff16", "6n", "true", "null"];

describe("the canonical form", () => {
  it("is an optional '-', then 0 or digits without a leading zero, and never -0", () => {
    for (const ok of ["0", "7", "-7", "10", "2147483647", "-2147483648", "18446744073709551615", "123456789012345678901234567890"]) expect(isCanonicalInteger(ok), ok).toBe(true);
    for (const bad of MALFORMED) expect(isCanonicalInteger(bad), JSON.stringify(bad)).toBe(false);
  });

  it("refuses every malformed text for every kind, as a string and (where it is JSON) as a number, naming the field", () => {
    for (const kind of [INT32, UINT32, INT64, UINT64, ENUM_NUMBER]) {
      for (const t of MALFORMED) {
        const s = refusal(() => checkIntegerText(t, kind, "a.b", JSON.stringify(t)));
        expect(s.reason).toBe(kind.reason);
        expect(s.metadata).toEqual({ field: "a.b", type: kind.name });
        expect(s.message.startsWith(`a.b: `), s.message).toBe(true);
        expect(s.message).toContain(`got ${JSON.stringify(t)}`);
        const n = refusal(() => checkIntegerNumber(t, kind, "a.b"));
        expect(n.reason).toBe(kind.reason);
      }
    }
  });

  it("says what the form is in each kind's words", () => {
    expect(refusal(() => checkIntegerText("0x6", UINT32, "scale", '"0x6"')).message).toBe(
      'scale: 32-bit integers must be decimal integers such as 6 or "6" (no fraction, exponent, "+", leading zero or -0), got "0x6"',
    );
    expect(refusal(() => checkIntegerNumber("1e3", INT32, "page_size")).message).toBe(
      'page_size: 32-bit integers must be decimal integers such as 6 or "6" (no fraction, exponent, "+", leading zero or -0), got 1e3',
    );
    expect(refusal(() => checkIntegerNumber("2.0", ENUM_NUMBER, "scope")).message).toBe(
      'scope: enum values must be names or decimal integers such as 2 (no fraction, exponent, "+", leading zero or -0), got 2.0',
    );
    expect(refusal(() => checkIntegerNumber("1e3", INT64, "amount")).message).toBe("amount: 64-bit integers must be decimal strings (or JSON integers up to 2^53-1), got 1e3");
  });
});

describe("ranges", () => {
  const table: [IntegerKind, string[], string[]][] = [
    [INT32, ["-2147483648", "2147483647", "0", "-1"], ["-2147483649", "2147483648", "9999999999", "-99999999999999999999999"]],
    [UINT32, ["0", "4294967295", "1"], ["-1", "4294967296", "-2147483648", "99999999999999999999999"]],
    [ENUM_NUMBER, ["-2147483648", "2147483647", "7"], ["2147483648", "-2147483649", "4294967295"]],
    [UINT64, ["0", "18446744073709551615"], ["-1", "18446744073709551616"]],
    [INT64, ["-9223372036854775808", "9223372036854775807"], ["9223372036854775808", "-9223372036854775809"]],
  ];

  it("accepts the ends of each range and refuses one past them, naming the field and the type", () => {
    for (const [kind, inside, outside] of table) {
      for (const t of inside) expect(() => checkIntegerText(t, kind, "f"), `${kind.name} ${t}`).not.toThrow();
      for (const t of outside) {
        const e = refusal(() => checkIntegerText(t, kind, "f"));
        expect(e.message).toBe(`f: ${t} is outside the range of ${kind.name}`);
        expect(e.reason).toBe(kind.reason);
        expect(e.metadata).toEqual({ field: "f", type: kind.name });
      }
    }
  });

  it("as JSON numbers, takes 32-bit values at full range but 64-bit ones only up to 2^53-1", () => {
    expect(() => checkIntegerNumber("4294967295", UINT32, "f")).not.toThrow();
    expect(refusal(() => checkIntegerNumber("-1", UINT32, "f")).message).toBe("f: -1 is outside the range of uint32");
    expect(refusal(() => checkIntegerNumber("4294967296", UINT32, "f")).message).toBe("f: 4294967296 is outside the range of uint32");
    expect(() => checkIntegerNumber("9007199254740991", INT64, "f")).not.toThrow();
    expect(refusal(() => checkIntegerNumber("9007199254740992", INT64, "f")).message).toMatch(/^f: 64-bit integers must be decimal strings/);
  });

  it("refuses a megabyte of digits as out of range, showing only its start", () => {
    const digits = "9".repeat(1 << 20);
    expect(refusal(() => checkIntegerText(digits, UINT32, "f")).message).toMatch(/^f: 9{45}\.\.\. is outside the range of uint32$/);
    expect(refusal(() => checkIntegerNumber(`-${digits}`, INT32, "f")).message).toMatch(/^f: -9{44}\.\.\. is outside the range of int32$/);
  });

  it("keeps exactly the values inside each 32-bit range, in both JSON forms (property)", () => {
    const kinds: [IntegerKind, string][] = [
      [INT32, "i32"],
      [UINT32, "u32"],
      [INT32, "s32"],
      [UINT32, "f32"],
      [INT32, "sf32"],
    ];
    fc.assert(
      fc.property(fc.constantFrom(...kinds), fc.bigInt({ min: -(2n ** 33n), max: 2n ** 33n }), fc.boolean(), ([kind, field], v, asString) => {
        const text = v.toString();
        const json = `{"${field}":${asString ? JSON.stringify(text) : text}}`;
        const inside = v >= kind.min && v <= kind.max;
        if (inside) {
          const msg = fromJson(EchoIntsRequestSchema, parseStrictJson(json, EchoIntsRequestSchema)) as unknown as Record<string, number>;
          expect(msg[field]).toBe(Number(v));
        } else {
          expect(refusal(() => parseStrictJson(json, EchoIntsRequestSchema)).message).toBe(`${field}: ${text} is outside the range of ${kind.name}`);
        }
      }),
      { numRuns: 400 },
    );
  });

  it("refuses every non-canonical spelling of an in-range value (property)", () => {
    const spellings = (t: string): string[] => {
      const neg = t.startsWith("-");
      const digits = neg ? t.slice(1) : t;
      const sign = neg ? "-" : "";
      return [`${sign}0${digits}`, neg ? `-+${digits}` : `+${digits}`, `${t}.0`, `${t}e0`, `${t}E0`, ` ${t}`, `${t} `, `${sign}0x${Number(digits).toString(16)}`];
    };
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), (v) => {
        for (const s of spellings(String(v))) {
          expect(refusal(() => parseStrictJson(`{"i32":${JSON.stringify(s)}}`, EchoIntsRequestSchema)).reason).toBe("invalid_int32");
          // As a bare token: refused by the rule when it is JSON, by the JSON grammar when it is not
          // (around a bare token, spaces are JSON whitespace, not part of the number).
          if (s.trim() !== s) continue;
          const e = refusal(() => parseStrictJson(`{"i32":${s}}`, EchoIntsRequestSchema));
          expect(["invalid_int32", "invalid_json"]).toContain(e.reason);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("every 32-bit shape of a message, through the strict JSON parser", () => {
  /** Each shape: the JSON with `V` where the value goes, the path a refusal names, and the range. */
  const shapes: [string, string, IntegerKind][] = [
    ['{"i32":V}', "i32", INT32],
    ['{"u32":V}', "u32", UINT32],
    ['{"s32":V}', "s32", INT32],
    ['{"f32":V}', "f32", UINT32],
    ['{"sf32":V}', "sf32", INT32],
    ['{"list":[1,V]}', "list[1]", INT32],
    ['{"wrapped":V}', "wrapped", INT32],
    ['{"uwrapped":V}', "uwrapped", UINT32],
    ['{"values":{"a":V}}', 'values["a"]', INT32],
    ['{"maybe":V}', "maybe", UINT32],
    ['{"nested":{"u32":V}}', "nested.u32", UINT32],
    ['{"nested":{"sf32":V}}', "nested.sf32", INT32],
    // JSON names and proto names alike.
    ['{"by_u32":{},"uwrapped":V}', "uwrapped", UINT32],
  ];

  it("accepts canonical numbers and strings and hands protobuf-es the same value", () => {
    for (const [shape, , kind] of shapes) {
      for (const t of ["0", "7", kind.max.toString(), kind.min.toString()]) {
        for (const v of [t, JSON.stringify(t)]) {
          const text = shape.replace("V", v);
          expect(() => fromJson(EchoIntsRequestSchema, parseStrictJson(text, EchoIntsRequestSchema)), text).not.toThrow();
        }
      }
    }
    const msg = fromJson(EchoIntsRequestSchema, parseStrictJson('{"u32":"4294967295","list":[-2147483648,"7"],"maybe":0,"nested":{"f32":"6"}}', EchoIntsRequestSchema));
    expect(msg.u32).toBe(4294967295);
    expect(msg.list).toEqual([-2147483648, 7]);
    expect(msg.maybe).toBe(0);
    expect(msg.nested?.f32).toBe(6);
  });

  it("refuses non-canonical and out-of-range values at every shape, naming the path", () => {
    for (const [shape, path, kind] of shapes) {
      for (const v of ['"0x6"', '"0b11"', '"0o7"', '"1e1"', "1e1", '"+2"', '"06"', "3.0", '"3.0"', "-0", '"-0"', '" 6"', '""', "true", "{}", "[]"]) {
        const e = refusal(() => parseStrictJson(shape.replace("V", v), EchoIntsRequestSchema));
        expect(e.reason, `${shape} ${v}`).toBe("invalid_int32");
        expect(e.message, `${shape} ${v}`).toMatch(new RegExp(`^${path.replace(/[[\]".]/g, "\\$&")}: 32-bit integers must be decimal integers`));
      }
      const over = (kind.max + 1n).toString();
      expect(refusal(() => parseStrictJson(shape.replace("V", over), EchoIntsRequestSchema)).message).toBe(`${path}: ${over} is outside the range of ${kind.name}`);
      const under = (kind.min - 1n).toString();
      expect(refusal(() => parseStrictJson(shape.replace("V", JSON.stringify(under)), EchoIntsRequestSchema)).message).toBe(`${path}: ${under} is outside the range of ${kind.name}`);
    }
  });

  it("holds map keys to the rule of their type", () => {
    const msg = fromJson(EchoIntsRequestSchema, parseStrictJson('{"byI32":{"-5":"a","0":"b"},"byU32":{"4294967295":"c"}}', EchoIntsRequestSchema));
    expect(msg.byI32).toEqual({ "-5": "a", 0: "b" });
    expect(msg.byU32).toEqual({ 4294967295: "c" });
    for (const key of ["0x6", "06", "+1", "1e1", "-0", " 1", ""]) {
      const e = refusal(() => parseStrictJson(`{"byI32":{${JSON.stringify(key)}:"a"}}`, EchoIntsRequestSchema));
      expect(e.message).toBe(`by_i32 key: 32-bit integers must be decimal integers such as 6 or "6" (no fraction, exponent, "+", leading zero or -0), got ${JSON.stringify(key)}`);
    }
    expect(refusal(() => parseStrictJson('{"byU32":{"-1":"a"}}', EchoIntsRequestSchema)).message).toBe("by_u32 key: -1 is outside the range of uint32");
  });

  it("takes enum names as protobuf-es does, and enum numbers only in canonical form within int32", () => {
    const msg = fromJson(EchoIntsRequestSchema, parseStrictJson('{"mode":2,"modes":["MODE_FAST",0,7],"nested":{"mode":-3}}', EchoIntsRequestSchema));
    expect(msg.mode).toBe(2);
    expect(msg.modes).toEqual([1, 0, 7]);
    expect(msg.nested?.mode).toBe(-3);
    for (const [text, path] of [
      ['{"mode":2.0}', "mode"],
      ['{"mode":1e0}', "mode"],
      ['{"mode":-0}', "mode"],
      ['{"modes":[1,2.5]}', "modes[1]"],
      ['{"nested":{"mode":2E0}}', "nested.mode"],
    ] as const) {
      const e = refusal(() => parseStrictJson(text, EchoIntsRequestSchema));
      expect(e.reason, text).toBe("invalid_enum");
      expect(e.message, text).toMatch(new RegExp(`^${path.replace(/[[\].]/g, "\\$&")}: enum values must be names or decimal integers`));
    }
    expect(refusal(() => parseStrictJson('{"mode":2147483648}', EchoIntsRequestSchema)).message).toBe("mode: 2147483648 is outside the range of enum");
    // A digit string is not a name; protobuf-es refuses it after the guard.
    expect(() => fromJson(EchoIntsRequestSchema, parseStrictJson('{"mode":"2"}', EchoIntsRequestSchema))).toThrow(/cannot decode/);
  });
});
