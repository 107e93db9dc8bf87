import { create, createFileRegistry, fromJson } from "@bufbuild/protobuf";
import type { DescMessage, JsonValue } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
} from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  GetBalanceRequestSchema,
  PostTransferRequestSchema,
  PostTransfersRequestSchema,
  WatchBalanceRequestSchema,
} from "../gen/tally/ledger/v1/ledger_pb.js";
import { LedgerError } from "../src/domain/errors.js";
import { MAX_JSON_DEPTH, parseStrictJson } from "../src/transport/json-guard.js";

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** The LedgerError parseStrictJson throws for `text`, or fails the test. */
function refusal(text: string, schema: DescMessage = PostTransferRequestSchema): LedgerError {
  try {
    parseStrictJson(text, schema);
  } catch (e) {
    expect(e).toBeInstanceOf(LedgerError);
    const err = e as LedgerError;
    expect(err.code).toBe("invalid_argument");
    return err;
  }
  throw new Error(`expected ${JSON.stringify(text.slice(0, 80))} to be refused`);
}

/** Parses a Numbers message with the guard, then with protobuf-es. */
function decodeNumbers(text: string): Record<string, unknown> {
  return fromJson(NumbersSchema, parseStrictJson(text, NumbersSchema)) as unknown as Record<string, unknown>;
}

/** Parses with the guard, then with protobuf-es, as the server does. */
function decodeTransfer(text: string) {
  return fromJson(PostTransferRequestSchema, parseStrictJson(text, PostTransferRequestSchema));
}

const INT64_MESSAGE = (path: string, got: string) =>
  `${path}: 64-bit integers must be decimal strings (or JSON integers up to 2^53-1), got ${got}`;

/**
 * A message with every 64-bit shape the walker must find: each 64-bit scalar
 * type, a repeated int64, int64 map values and keys, a oneof member, the
 * Int64Value/UInt64Value wrappers, a Timestamp, and itself nested singly, in a
 * list and as a map value. Built as a real descriptor, as protoc would emit it.
 */
const NumbersSchema: DescMessage = (() => {
  const T = FieldDescriptorProto_Type;
  const L = FieldDescriptorProto_Label;
  const field = (name: string, number: number, type: FieldDescriptorProto_Type, extra: Record<string, unknown> = {}) => ({
    name,
    number,
    type,
    label: L.OPTIONAL,
    jsonName: name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase()),
    ...extra,
  });
  const entry = (name: string, key: FieldDescriptorProto_Type, value: FieldDescriptorProto_Type, typeName?: string) => ({
    name,
    field: [field("key", 1, key), field("value", 2, value, typeName ? { typeName } : {})],
    options: { mapEntry: true },
  });
  const self = ".guardtest.v1.Numbers";
  const file = create(FileDescriptorProtoSchema, {
    name: "guardtest/v1/numbers.proto",
    package: "guardtest.v1",
    syntax: "proto3",
    dependency: ["google/protobuf/wrappers.proto", "google/protobuf/timestamp.proto"],
    messageType: [
      {
        name: "Numbers",
        field: [
          field("i64", 1, T.INT64),
          field("u64", 2, T.UINT64),
          field("s64", 3, T.SINT64),
          field("f64", 4, T.FIXED64),
          field("sf64", 5, T.SFIXED64),
          field("list", 6, T.INT64, { label: L.REPEATED }),
          field("by_name", 7, T.MESSAGE, { label: L.REPEATED, typeName: `${self}.ByNameEntry` }),
          field("by_id", 8, T.MESSAGE, { label: L.REPEATED, typeName: `${self}.ByIdEntry` }),
          field("big", 9, T.INT64, { oneofIndex: 0 }),
          field("label", 10, T.STRING, { oneofIndex: 0 }),
          field("wrapped", 11, T.MESSAGE, { typeName: ".google.protobuf.Int64Value" }),
          field("uwrapped", 12, T.MESSAGE, { typeName: ".google.protobuf.UInt64Value" }),
          field("at", 13, T.MESSAGE, { typeName: ".google.protobuf.Timestamp" }),
          field("child", 14, T.MESSAGE, { typeName: self }),
          field("children", 15, T.MESSAGE, { label: L.REPEATED, typeName: self }),
          field("named", 16, T.MESSAGE, { label: L.REPEATED, typeName: `${self}.NamedEntry` }),
          field("small", 17, T.INT32),
        ],
        nestedType: [
          entry("ByNameEntry", T.STRING, T.INT64),
          entry("ByIdEntry", T.INT64, T.STRING),
          entry("NamedEntry", T.STRING, T.MESSAGE, self),
        ],
        oneofDecl: [{ name: "choice" }],
      },
    ],
  });
  const registry = createFileRegistry(file, (name) =>
    name === "google/protobuf/wrappers.proto"
      ? file_google_protobuf_wrappers
      : name === "google/protobuf/timestamp.proto"
        ? file_google_protobuf_timestamp
        : undefined,
  );
  return registry.getMessage("guardtest.v1.Numbers")!;
})();

describe("the T7 probe table, on PostTransferRequest.amount", () => {
  it('accepts "9007199254740993" and protobuf-es then reads it exactly', () => {
    const text = '{"amount":"9007199254740993"}';
    expect(parseStrictJson(text, PostTransferRequestSchema)).toEqual({ amount: "9007199254740993" });
    expect(decodeTransfer(text).amount).toBe(9007199254740993n);
  });

  it("refuses the JSON number 9007199254740993, which JSON.parse would round to ...992", () => {
    expect(JSON.parse('{"amount":9007199254740993}').amount).toBe(9007199254740992);
    const err = refusal('{"amount":9007199254740993}');
    expect(err.message).toBe(INT64_MESSAGE("amount", "9007199254740993"));
    expect(err.reason).toBe("invalid_int64");
    expect(err.metadata).toEqual({ field: "amount", type: "int64" });
  });

  it("accepts both ends of the int64 range as strings, exactly", () => {
    expect(decodeTransfer('{"amount":"9223372036854775807"}').amount).toBe(INT64_MAX);
    expect(decodeTransfer('{"amount":"-9223372036854775808"}').amount).toBe(INT64_MIN);
  });

  it("accepts JSON integers up to 2^53-1 in magnitude, exactly", () => {
    expect(decodeTransfer('{"amount":9007199254740991}').amount).toBe(SAFE);
    expect(decodeTransfer('{"amount":-9007199254740991}').amount).toBe(-SAFE);
    expect(decodeTransfer('{"amount":0}').amount).toBe(0n);
    expect(decodeTransfer('{"amount":12}').amount).toBe(12n);
  });

  it("accepts null as the default (the domain then refuses a zero amount)", () => {
    expect(parseStrictJson('{"amount":null}', PostTransferRequestSchema)).toEqual({ amount: null });
    expect(decodeTransfer('{"amount":null}').amount).toBe(0n);
  });

  const outOfRange = ['"9223372036854775808"', '"-9223372036854775809"', '"99999999999999999999999"'];
  it.each(outOfRange)("refuses %s as outside the int64 range", (probe) => {
    const err = refusal(`{"amount":${probe}}`);
    expect(err.message).toBe(`amount: ${JSON.parse(probe) as string} is outside the range of int64`);
  });

  // Every non-canonical numeral of the table, plus neighbours of each.
  const nonCanonical = [
    // 2^53 itself: a double holds it, but 2^53+1 also parses to it, so it cannot be trusted.
    "9007199254740992",
    "-9007199254740992",
    "1e19",
    "1e400",
    "-1e400",
    "1e3",
    "1E3",
    "1e+3",
    "12.0",
    "12.5",
    "0.0",
    "-0",
    '"0x10"',
    '" 12"',
    '"12 "',
    '"+5"',
    '"1e3"',
    '"12.0"',
    '"-0"',
    '"00"',
    '"012"',
    '"١٢"',
    '"１２"',
    '""',
    '"-"',
    '"12n"',
    '"\\u0031\\u0032 "',
    "true",
    "false",
    "{}",
    '{"value":"1"}',
    "[]",
    '["1"]',
  ];
  it.each(nonCanonical)("refuses %s, naming the field and echoing the value", (probe) => {
    const err = refusal(`{"amount":${probe}}`);
    const shown = probe.startsWith("{") ? "an object" : probe.startsWith("[") ? "an array" : probe.startsWith('"') ? JSON.stringify(JSON.parse(probe)) : probe;
    expect(err.message).toBe(INT64_MESSAGE("amount", shown));
  });

  it("gives the documented message for 1e3", () => {
    expect(refusal('{"amount":1e3}').message).toBe(
      "amount: 64-bit integers must be decimal strings (or JSON integers up to 2^53-1), got 1e3",
    );
  });

  it("refuses leading zeros in a number token as invalid JSON", () => {
    expect(refusal('{"amount":012}').reason).toBe("invalid_json");
    expect(refusal('{"amount":+5}').reason).toBe("invalid_json");
    expect(refusal('{"amount":0x10}').reason).toBe("invalid_json");
    expect(refusal('{"amount":.5}').reason).toBe("invalid_json");
    expect(refusal('{"amount":NaN}').reason).toBe("invalid_json");
    expect(refusal('{"amount":Infinity}').reason).toBe("invalid_json");
  });

  it("finds the field by its JSON name and by its proto name", () => {
    expect(refusal('{"idempotency_key":"k","amount":1e3}').message).toBe(INT64_MESSAGE("amount", "1e3"));
    // A 64-bit field whose JSON name differs from its proto name; the path uses the proto name.
    expect(refusal('{"afterSequence":1e3}', WatchBalanceRequestSchema).message).toBe(INT64_MESSAGE("after_sequence", "1e3"));
    expect(refusal('{"after_sequence":"0x10"}', WatchBalanceRequestSchema).message).toBe(INT64_MESSAGE("after_sequence", '"0x10"'));
  });

  it("shows that protobuf-es alone accepts what the guard refuses", () => {
    // The reason the guard exists: each of these is taken by fromJson without a word.
    expect(fromJson(PostTransferRequestSchema, JSON.parse('{"amount":"0x10"}') as JsonValue).amount).toBe(16n);
    expect(fromJson(PostTransferRequestSchema, JSON.parse('{"amount":" 12"}') as JsonValue).amount).toBe(12n);
    expect(fromJson(PostTransferRequestSchema, JSON.parse('{"amount":1e3}') as JsonValue).amount).toBe(1000n);
    expect(fromJson(PostTransferRequestSchema, JSON.parse('{"amount":9007199254740993}') as JsonValue).amount).toBe(9007199254740992n);
  });
});

describe("64-bit fields anywhere in the schema", () => {
  it("names the path of a nested, repeated field", () => {
    const text = '{"transfers":[{"amount":"1"},{"amount":"2"},{"idempotencyKey":"k","amount":1e3}]}';
    expect(refusal(text, PostTransfersRequestSchema).message).toBe(INT64_MESSAGE("transfers[2].amount", "1e3"));
    const ok = '{"transfers":[{"amount":"9007199254740993"},{"amount":5}]}';
    const msg = fromJson(PostTransfersRequestSchema, parseStrictJson(ok, PostTransfersRequestSchema));
    expect(msg.transfers.map((t) => t.amount)).toEqual([9007199254740993n, 5n]);
  });

  it("checks each 64-bit scalar type against its own range", () => {
    for (const f of ["u64", "f64"]) {
      expect(decodeNumbers(`{"${f}":"18446744073709551615"}`)[f]).toBe(UINT64_MAX);
      expect(refusal(`{"${f}":"18446744073709551616"}`, NumbersSchema).message).toBe(`${f}: 18446744073709551616 is outside the range of uint64`);
      expect(refusal(`{"${f}":"-1"}`, NumbersSchema).message).toBe(`${f}: -1 is outside the range of uint64`);
      expect(refusal(`{"${f}":-1}`, NumbersSchema).message).toBe(`${f}: -1 is outside the range of uint64`);
    }
    for (const f of ["i64", "s64", "sf64"]) {
      expect(decodeNumbers(`{"${f}":"-9223372036854775808"}`)[f]).toBe(INT64_MIN);
      expect(refusal(`{"${f}":"9223372036854775808"}`, NumbersSchema).message).toBe(`${f}: 9223372036854775808 is outside the range of int64`);
      expect(refusal(`{"${f}":9007199254740993}`, NumbersSchema).message).toBe(INT64_MESSAGE(f, "9007199254740993"));
    }
  });

  it("checks list items, map values, int64 map keys, oneof members and wrappers", () => {
    const cases: [string, string][] = [
      ['{"list":["1","2",1e3]}', INT64_MESSAGE("list[2]", "1e3")],
      ['{"by_name":{"a":"1","b":"0x10"}}', INT64_MESSAGE('by_name["b"]', '"0x10"')],
      ['{"byName":{"a":9007199254740993}}', INT64_MESSAGE('by_name["a"]', "9007199254740993")],
      ['{"byId":{"01":"x"}}', INT64_MESSAGE("by_id key", '"01"')],
      ['{"big":"12.0"}', INT64_MESSAGE("big", '"12.0"')],
      ['{"wrapped":1e3}', INT64_MESSAGE("wrapped", "1e3")],
      ['{"uwrapped":"-1"}', "uwrapped: -1 is outside the range of uint64"],
      ['{"child":{"child":{"i64":" 1"}}}', INT64_MESSAGE("child.child.i64", '" 1"')],
      ['{"children":[{},{"list":[1,"+2"]}]}', INT64_MESSAGE("children[1].list[1]", '"+2"')],
      ['{"named":{"x":{"by_name":{"y":1.5}}}}', INT64_MESSAGE('named["x"].by_name["y"]', "1.5")],
    ];
    for (const [text, message] of cases) expect(refusal(text, NumbersSchema).message).toBe(message);
  });

  it("reads every accepted shape exactly", () => {
    const text = JSON.stringify({
      list: ["9223372036854775807", -5, "0"],
      byName: { a: "9007199254740993" },
      byId: { "-9223372036854775808": "min" },
      big: "9007199254740995",
      wrapped: "9007199254740997",
      uwrapped: 9007199254740991,
      at: "2026-01-02T03:04:05.123456789Z",
      children: [{ sf64: "-9007199254740993" }],
    });
    const msg = decodeNumbers(text);
    expect(msg.list).toEqual([INT64_MAX, -5n, 0n]);
    expect(msg.byName).toEqual({ a: 9007199254740993n });
    expect(msg.byId).toEqual({ "-9223372036854775808": "min" });
    expect(msg.choice).toEqual({ case: "big", value: 9007199254740995n });
    // protobuf-es unboxes wrapper fields.
    expect(msg.wrapped).toBe(9007199254740997n);
    expect(msg.uwrapped).toBe(SAFE);
    expect((msg.children as { sf64: bigint }[])[0]!.sf64).toBe(-9007199254740993n);
  });

  it("leaves Timestamps, strings and unknown fields to protobuf-es", () => {
    // None of these is an integer field, so the guard passes them through unchanged
    // (32-bit fields follow the integer rule: test/canonical-int.test.ts).
    expect(parseStrictJson('{"at":"1970-01-01T00:00:00Z","small":1000,"label":"0x10"}', NumbersSchema)).toEqual({
      at: "1970-01-01T00:00:00Z",
      small: 1000,
      label: "0x10",
    });
    expect(parseStrictJson('{"unknownField":1e400,"metadata":{"amount":"0x10"}}', PostTransferRequestSchema)).toEqual({
      unknownField: Infinity,
      metadata: { amount: "0x10" },
    });
    // protobuf-es still refuses the unknown field afterwards.
    expect(() => fromJson(PostTransferRequestSchema, parseStrictJson('{"unknownField":1}', PostTransferRequestSchema))).toThrow(/unknown/);
  });

  it("refuses a field given by both its proto name and its JSON name", () => {
    const err = refusal('{"idempotency_key":"a","idempotencyKey":"b"}');
    expect(err.reason).toBe("duplicate_json_key");
    expect(err.message).toBe('idempotency_key: set twice, as "idempotency_key" and "idempotencyKey"');
    expect(refusal('{"transfers":[{"amount":"1","amount":"2"}]}', PostTransfersRequestSchema).reason).toBe("duplicate_json_key");
  });
});

describe("JSON strictness", () => {
  const invalid = [
    "",
    " ",
    "{",
    "}",
    '{"a":}',
    '{"a" 1}',
    '{"a":1,}',
    "{,}",
    "[1,]",
    "[1 2]",
    "{'a':1}",
    '{"a":1}x',
    '{"a":1}{}',
    "01",
    "-",
    "1.",
    "1e",
    "1e+",
    "tru",
    "nul",
    "True",
    '"\\x"',
    '"\\u12"',
    '"\\u12G4"',
    '"a\tb"', // raw control character
    '"a\nb"',
    '"\u0000"',
    '"unterminated',
    '{"a":1\u00a0}', // NBSP is not JSON whitespace
    "\u2028{}",
    "{}\u0000",
  ];
  it.each(invalid)("refuses %j as invalid JSON, like JSON.parse does", (text) => {
    expect(() => JSON.parse(text) as unknown).toThrow(SyntaxError);
    expect(refusal(text).reason).toBe("invalid_json");
  });

  it("refuses a leading byte order mark", () => {
    const err = refusal('\ufeff{"amount":"1"}');
    expect(err.reason).toBe("invalid_json");
    expect(err.message).toMatch(/byte order mark/);
  });

  it("refuses duplicate keys at every level, including keys spelt with escapes", () => {
    const docs = [
      '{"amount":"1","amount":"1000"}',
      '{"metadata":{"a":"1","a":"2"}}',
      '{"unknown":{"x":1,"x":1}}',
      '{"unknown":[{"x":1},{"y":[{"z":1,"z":2}]}]}',
      '{"note":"a","\\u006eote":"b"}',
    ];
    for (const d of docs) expect(refusal(d).reason, d).toBe("duplicate_json_key");
    // The same key in sibling objects is not a duplicate.
    expect(parseStrictJson('{"x":[{"a":1},{"a":2}]}', PostTransferRequestSchema)).toEqual({ x: [{ a: 1 }, { a: 2 }] });
  });

  it(`accepts ${MAX_JSON_DEPTH} levels of nesting and refuses ${MAX_JSON_DEPTH + 1}`, () => {
    // The top-level object is the first level.
    const ok = `{"x":${"[".repeat(MAX_JSON_DEPTH - 1)}${"]".repeat(MAX_JSON_DEPTH - 1)}}`;
    expect(() => parseStrictJson(ok, PostTransferRequestSchema)).not.toThrow();
    const deep = `{"x":${"[".repeat(MAX_JSON_DEPTH)}${"]".repeat(MAX_JSON_DEPTH)}}`;
    expect(refusal(deep).reason).toBe("json_too_deep");
  });

  it("refuses 100,000 open brackets quickly, without exhausting the stack", () => {
    const start = performance.now();
    expect(refusal("[".repeat(100_000)).reason).toBe("json_too_deep");
    expect(refusal(`{"x":${'{"y":'.repeat(100_000)}`).reason).toBe("json_too_deep");
    expect(performance.now() - start).toBeLessThan(200);
  });

  it("refuses lone UTF-16 surrogates, escaped or raw, and keeps pairs", () => {
    for (const s of ['"\\ud800"', '"\\udc00"', '"x\\ud800y"', '"\\ud800\\u0041"', '"\\udc00\\ud800"', '"\\ud800\\ud800"', '"\ud800"', '"a\udfff"']) {
      const err = refusal(`{"note":${s}}`);
      expect(err.reason, s).toBe("invalid_json");
      expect(err.message).toMatch(/lone UTF-16 surrogate/);
    }
    // In keys too.
    expect(refusal('{"\\ud800":1}').reason).toBe("invalid_json");
    expect(parseStrictJson('{"note":"\\ud83d\\ude00 \ud83d\ude00 \\uD83D\\uDE00"}', PostTransferRequestSchema)).toEqual({
      note: "\u{1F600} \u{1F600} \u{1F600}",
    });
  });

  it("returns what JSON.parse returns, __proto__ keys and -0 included", () => {
    const text = '{"__proto__":{"amount":"1"},"n":-0,"e":1.5e-7,"s":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9","a":[true,false,null,{}]}';
    const ours = parseStrictJson(text, PostTransferRequestSchema) as Record<string, unknown>;
    const theirs = JSON.parse(text) as Record<string, unknown>;
    expect(ours).toStrictEqual(theirs);
    expect(Object.getPrototypeOf(ours)).toBe(Object.prototype);
    expect(Object.keys(ours)).toEqual(Object.keys(theirs));
    expect(Object.is(ours.n, -0)).toBe(true);
  });
});

describe("properties", () => {
  it("round-trips every int64 exactly as a decimal string", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: INT64_MIN, max: INT64_MAX }), (v) => {
        const text = `{"amount":"${v}"}`;
        expect(decodeTransfer(text).amount).toBe(v);
        // And as a JSON number only when a double holds it exactly.
        const asNumber = `{"amount":${v}}`;
        if (v >= -SAFE && v <= SAFE) {
          expect(decodeTransfer(asNumber).amount).toBe(v);
        } else {
          expect(refusal(asNumber).message).toBe(INT64_MESSAGE("amount", String(v)));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("round-trips numbers near the 2^53 boundary exactly, or refuses them", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -3n, max: 3n }), fc.boolean(), (d, negative) => {
        const v = (negative ? -1n : 1n) * (SAFE + d);
        const text = `{"amount":${v}}`;
        if (v >= -SAFE && v <= SAFE) expect(decodeTransfer(text).amount).toBe(v);
        else expect(refusal(text).reason).toBe("invalid_int64");
      }),
    );
  });

  it("on random JSON, throws nothing but LedgerError, and accepts only what JSON.parse reads identically", () => {
    fc.assert(
      fc.property(fc.json({ maxDepth: 8 }), (text) => {
        let ours: JsonValue;
        try {
          ours = parseStrictJson(text, PostTransferRequestSchema);
        } catch (e) {
          expect(e).toBeInstanceOf(LedgerError);
          return;
        }
        expect(ours).toStrictEqual(JSON.parse(text));
      }),
      { numRuns: 1000 },
    );
  });

  it("on mutated JSON, is never more lenient than JSON.parse", () => {
    const edit = fc.tuple(fc.nat(), fc.constantFrom("", "{", "}", "[", "]", '"', ",", ":", "\\", "0", "-", "e", ".", " ", "\u0000", "\ud800"));
    fc.assert(
      fc.property(fc.json({ maxDepth: 4 }), fc.array(edit, { minLength: 1, maxLength: 4 }), (base, edits) => {
        let text = base;
        for (const [at, ins] of edits) {
          const i = at % (text.length + 1);
          // An empty insertion deletes the character instead.
          text = ins === "" ? text.slice(0, i) + text.slice(i + 1) : text.slice(0, i) + ins + text.slice(i);
        }
        let ours: JsonValue;
        try {
          ours = parseStrictJson(text, PostTransferRequestSchema);
        } catch (e) {
          expect(e).toBeInstanceOf(LedgerError);
          return;
        }
        expect(ours).toStrictEqual(JSON.parse(text));
      }),
      { numRuns: 2000 },
    );
  });

  it("on random amounts of any JSON type, accepts exactly the canonical in-range ones", () => {
    const amount = fc.oneof(
      fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map((v) => JSON.stringify(String(v))),
      fc.bigInt({ min: -(2n ** 60n), max: 2n ** 60n }).map(String),
      fc.double().map((d) => (Number.isFinite(d) ? JSON.stringify(d) : "null")),
      fc.string().map((s) => JSON.stringify(s)),
      fc.stringMatching(/^[-+ ]?[0-9]{0,3}(\.[0-9])?(e[0-9])?$/).map((s) => JSON.stringify(s)),
      fc.constantFrom("true", "false", "null", "{}", "[]"),
    );
    fc.assert(
      fc.property(amount, (raw) => {
        const text = `{"amount":${raw}}`;
        const value = (JSON.parse(text) as { amount: unknown }).amount;
        const isString = raw.startsWith('"');
        const canonical = /^-?(0|[1-9][0-9]*)$/.test(isString ? (value as string) : raw) && (isString ? value : raw) !== "-0";
        let expected: boolean;
        if (value === null) expected = true;
        else if (!canonical) expected = false;
        else if (isString) expected = BigInt(value as string) >= INT64_MIN && BigInt(value as string) <= INT64_MAX;
        else expected = BigInt(raw) >= -SAFE && BigInt(raw) <= SAFE;
        let accepted = true;
        try {
          const msg = decodeTransfer(text);
          if (value !== null) expect(msg.amount).toBe(BigInt(isString ? (value as string) : raw));
        } catch (e) {
          expect(e).toBeInstanceOf(LedgerError);
          expect((e as LedgerError).message.startsWith("amount: ")).toBe(true);
          accepted = false;
        }
        expect(accepted).toBe(expected);
      }),
      { numRuns: 3000 },
    );
  });
});

describe("GetBalanceRequest (no 64-bit fields)", () => {
  it("still applies the JSON rules", () => {
    expect(refusal('{"accountId":"a","accountId":"b"}', GetBalanceRequestSchema).reason).toBe("duplicate_json_key");
    expect(parseStrictJson('{"accountId":"a","asset":"USD"}', GetBalanceRequestSchema)).toEqual({ accountId: "a", asset: "USD" });
  });
});
