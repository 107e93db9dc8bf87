import { getOption, hasOption } from "@bufbuild/protobuf";
import type { DescEnum, DescField, DescMessage, JsonObject, JsonValue, ScalarType } from "@bufbuild/protobuf";
import { hasCustomJsonRepresentation } from "@bufbuild/protobuf/wkt";
import { invalidArgument } from "../domain/errors.js";
import { Int64Format, field as fieldRule } from "../../gen/tally/rest/v1/options_pb.js";
import { ENUM_NUMBER, checkIntegerNumber, checkIntegerText, integerKindOf, malformedInteger, outOfRange, wrapperKindOf } from "./canonical-int.js";
import type { IntegerKind } from "./canonical-int.js";

/**
 * Deepest nesting of arrays and objects accepted. No Tally message comes near
 * it; the bound keeps a hostile `[[[[…` from costing anything.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Parses a Connect JSON request body exactly and strictly, for the message
 * `schema`, and returns the value `JSON.parse` would return.
 *
 * protobuf-es reads JSON with `JSON.parse`, which rounds 9007199254740993 to
 * …992 without a word, and its `fromJson` accepts `"0x10"`, `" 12"` and `1e3`
 * for int64 fields. For a ledger an amount that was guessed is a wrong amount,
 * so this parser sees the raw number tokens and refuses, with
 * `invalid_argument`:
 * - text that is not JSON (RFC 8259), a leading byte order mark, duplicate
 *   object keys at any depth, nesting deeper than {@link MAX_JSON_DEPTH}, and
 *   strings holding a lone UTF-16 surrogate;
 * - for every integer field, of any width (int32, uint32, sint32, fixed32,
 *   sfixed32 and their 64-bit counterparts, the Int32Value/UInt32Value/
 *   Int64Value/UInt64Value wrappers, integer map keys), anything but the
 *   canonical form of canonical-int.ts within the type's range: a decimal
 *   string, or a JSON integer (for 64-bit fields of magnitude at most 2^53-1,
 *   the largest a JSON number can carry exactly in JavaScript);
 * - an enum value given as a number that is not a canonical int32;
 * - a message field given twice, by its proto name and by its JSON name.
 *
 * Unknown fields, enum names and the other well-known types are left to
 * protobuf-es, which refuses what it cannot read. Because every accepted
 * integer is exact and canonical, the returned value is the one `JSON.parse`
 * would have produced, and can be handed to connect as the already-parsed
 * body.
 *
 * @throws LedgerError (`invalid_argument`) naming the offending field path.
 */
export function parseStrictJson(text: string, schema: DescMessage, options: StrictJsonOptions = {}): JsonValue {
  if (text.charCodeAt(0) === 0xfeff) {
    throw invalidArgument("invalid_json", "invalid JSON: a byte order mark is not allowed");
  }
  return new StrictJsonParser(text, options.decimals ?? false).parseDocument({ kind: "message", desc: schema }, "");
}

/**
 * Parses `text` as the JSON value of one field (a REST body bound to a field
 * with `body: "field"`), under the same rules as {@link parseStrictJson};
 * refusals name the field by its proto name (`nested.u32`).
 *
 * @throws LedgerError (`invalid_argument`) naming the offending field path.
 */
export function parseStrictJsonField(text: string, field: DescField, options: StrictJsonOptions = {}): JsonValue {
  if (text.charCodeAt(0) === 0xfeff) {
    throw invalidArgument("invalid_json", "invalid JSON: a byte order mark is not allowed");
  }
  const decimals = options.decimals ?? false;
  return new StrictJsonParser(text, decimals).parseDocument(fieldExpect(field, decimals), field.name);
}

/** Options of {@link parseStrictJson}. */
export interface StrictJsonOptions {
  /**
   * Read singular 64-bit fields marked `(tally.rest.v1.field).int64_format =
   * INT64_FORMAT_DECIMAL` as exact decimals at their `decimal_scale` (0.8 at
   * scale 2 becomes "80"), the way the REST profile writes them. More
   * fractional digits than the scale are refused, never rounded. Off for the
   * native API, whose JSON is plain proto3 JSON.
   */
  readonly decimals?: boolean;
}

/** The implied scale of a decimal-profiled 64-bit field, or undefined. */
export function decimalScaleOf(field: DescField): number | undefined {
  if (field.fieldKind !== "scalar" || int64Type(field.scalar) === undefined || !hasOption(field, fieldRule)) return undefined;
  const rule = getOption(field, fieldRule);
  return rule.int64Format === Int64Format.DECIMAL ? rule.decimalScale : undefined;
}

const DECIMAL = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/;

/** Reads a decimal-profiled field's value from text (a query parameter, say), exactly. */
export function readDecimalField(field: DescField, text: string, path: string): string {
  const scale = decimalScaleOf(field);
  const type = field.fieldKind === "scalar" ? int64Type(field.scalar) : undefined;
  if (scale === undefined || type === undefined) throw new Error(`${field.name} is not a decimal-profiled 64-bit field`);
  return scaleDecimal(text, scale, type, path);
}

/** An exact decimal (string or number token) to its scaled integer, as a canonical int64 string. */
function scaleDecimal(text: string, scale: number, type: IntegerKind, path: string): string {
  const bad = () => {
    throw invalidArgument("invalid_decimal", `${path}: expected a decimal number with at most ${scale} decimal places, got ${show(text)}`, { field: path });
  };
  if (!DECIMAL.test(text) || /^-0(\.0*)?$/.test(text)) bad();
  const neg = text.startsWith("-");
  const [int, frac = ""] = (neg ? text.slice(1) : text).split(".");
  const trimmed = frac.replace(/0+$/, "");
  if (trimmed.length > scale) bad();
  const v = BigInt(int! + trimmed.padEnd(scale, "0")) * (neg ? -1n : 1n);
  if (v < type.min || v > type.max) outOfRange(path, type, text);
  return v.toString();
}

/** What the schema expects at a position in the document. */
type Expect =
  | { readonly kind: "any" }
  | { readonly kind: "message"; readonly desc: DescMessage }
  | { readonly kind: "integer"; readonly type: IntegerKind }
  | { readonly kind: "enum" }
  | { readonly kind: "decimal"; readonly type: IntegerKind; readonly scale: number }
  | { readonly kind: "timestamp" }
  | { readonly kind: "list"; readonly item: Expect }
  | { readonly kind: "map"; readonly key: IntegerKind | undefined; readonly value: Expect };

const ANY: Expect = { kind: "any" };
const ENUM: Expect = { kind: "enum" };
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The range class of a 64-bit integer scalar, the only kind the decimal profile applies to. */
function int64Type(scalar: ScalarType): IntegerKind | undefined {
  const kind = integerKindOf(scalar);
  return kind?.wide ? kind : undefined;
}

/** What a message-typed position expects: its fields, unless its JSON form is special. */
function expectMessage(desc: DescMessage): Expect {
  const wrapped = wrapperKindOf(desc.typeName);
  if (wrapped !== undefined) return { kind: "integer", type: wrapped };
  if (desc.typeName === "google.protobuf.Timestamp") return { kind: "timestamp" };
  // Timestamp (after the calendar check below), Duration, Struct, Any and the other wrappers have their own
  // JSON forms that protobuf-es parses and checks itself.
  if (hasCustomJsonRepresentation(desc)) return ANY;
  return { kind: "message", desc };
}

function expectScalar(scalar: ScalarType): Expect {
  const type = integerKindOf(scalar);
  return type ? { kind: "integer", type } : ANY;
}

/** An enum position: a number there is held to the integer rule; NullValue's JSON form is null, protobuf-es's to read. */
function expectEnum(desc: DescEnum): Expect {
  return desc.typeName === "google.protobuf.NullValue" ? ANY : ENUM;
}

function listOf(item: Expect): Expect {
  return item.kind === "any" ? ANY : { kind: "list", item };
}

function expectField(field: DescField): Expect {
  switch (field.fieldKind) {
    case "scalar":
      return expectScalar(field.scalar);
    case "enum":
      return expectEnum(field.enum);
    case "message":
      return expectMessage(field.message);
    case "list":
      switch (field.listKind) {
        case "scalar":
          return listOf(expectScalar(field.scalar));
        case "enum":
          return listOf(expectEnum(field.enum));
        case "message":
          return listOf(expectMessage(field.message));
      }
      break;
    case "map": {
      const key = integerKindOf(field.mapKey);
      let value: Expect;
      switch (field.mapKind) {
        case "scalar":
          value = expectScalar(field.scalar);
          break;
        case "enum":
          value = expectEnum(field.enum);
          break;
        case "message":
          value = expectMessage(field.message);
          break;
      }
      return key === undefined && value.kind === "any" ? ANY : { kind: "map", key, value };
    }
  }
  return ANY;
}

/** What a field's value must be; with `decimals`, a decimal-profiled 64-bit field is read as an exact decimal. */
function fieldExpect(field: DescField, decimals: boolean): Expect {
  const expect = fieldTable(field.parent).get(field.name)!.expect;
  if (decimals && expect.kind === "integer" && expect.type.wide) {
    const scale = decimalScaleOf(field);
    if (scale !== undefined) return { kind: "decimal", type: expect.type, scale };
  }
  return expect;
}

interface FieldEntry {
  readonly field: DescField;
  readonly expect: Expect;
}

// Descriptors are immutable; the lookup is built once per message type.
const fieldTables = new WeakMap<DescMessage, Map<string, FieldEntry>>();

/** Fields by proto name and by JSON name, as protobuf-es looks them up. */
function fieldTable(desc: DescMessage): Map<string, FieldEntry> {
  let table = fieldTables.get(desc);
  if (table === undefined) {
    table = new Map();
    // Registered before the fields are resolved so that recursive types terminate.
    fieldTables.set(desc, table);
    for (const field of desc.fields) {
      const entry: FieldEntry = { field, expect: expectField(field) };
      table.set(field.name, entry);
      table.set(field.jsonName, entry);
    }
  }
  return table;
}

/** How a value looks in an error message: its source text, cut short. */
function show(source: string): string {
  return source.length > 48 ? `${source.slice(0, 45)}...` : source;
}

/**
 * A recursive-descent parser that knows, at each position, what the message
 * schema expects there. Recursion depth is bounded by MAX_JSON_DEPTH.
 */
class StrictJsonParser {
  private pos = 0;
  private depth = 0;

  constructor(
    private readonly text: string,
    private readonly decimals: boolean,
  ) {}

  parseDocument(expect: Expect, path: string): JsonValue {
    this.skipWhitespace();
    const value = this.parseValue(expect, path);
    this.skipWhitespace();
    if (this.pos < this.text.length) this.fail("unexpected data after the JSON value");
    return value;
  }

  private fail(what: string, at = this.pos): never {
    const where = at >= this.text.length ? "at the end of the input" : `at offset ${at}`;
    throw invalidArgument("invalid_json", `invalid JSON: ${what} ${where}`);
  }

  private skipWhitespace(): void {
    const t = this.text;
    let i = this.pos;
    for (;;) {
      const c = t.charCodeAt(i);
      // JSON whitespace is exactly these four; NBSP, BOM and friends are errors.
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
    this.pos = i;
  }

  private parseValue(expect: Expect, path: string): JsonValue {
    const c = this.text.charCodeAt(this.pos);
    switch (c) {
      case 0x7b /* { */:
        return this.parseObject(expect, path);
      case 0x5b /* [ */:
        return this.parseArray(expect, path);
      case 0x22 /* " */: {
        const s = this.parseString();
        // An enum's string form is its name, which protobuf-es looks up.
        if (expect.kind === "integer") checkIntegerText(s, expect.type, path, JSON.stringify(s));
        if (expect.kind === "decimal") return scaleDecimal(s, expect.scale, expect.type, path);
        if (expect.kind === "timestamp") checkCalendar(s, path);
        return s;
      }
      case 0x74 /* t */:
        this.literal("true");
        if (expect.kind === "integer") malformedInteger(path, expect.type, "true");
        return true;
      case 0x66 /* f */:
        this.literal("false");
        if (expect.kind === "integer") malformedInteger(path, expect.type, "false");
        return false;
      case 0x6e /* n */:
        // proto3 JSON: null means the default value; protobuf-es decides where it may appear.
        this.literal("null");
        return null;
      default:
        if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
          const token = this.numberToken();
          if (expect.kind === "integer") checkIntegerNumber(token, expect.type, path);
          else if (expect.kind === "enum") checkIntegerNumber(token, ENUM_NUMBER, path);
          if (expect.kind === "decimal") return scaleDecimal(token, expect.scale, expect.type, path);
          return Number(token);
        }
        return this.fail(Number.isNaN(c) ? "unexpected end of input" : `unexpected character ${JSON.stringify(this.text[this.pos])}`);
    }
  }

  private literal(word: string): void {
    if (!this.text.startsWith(word, this.pos)) this.fail(`unexpected character ${JSON.stringify(this.text[this.pos])}`);
    this.pos += word.length;
  }

  private enter(): void {
    if (++this.depth > MAX_JSON_DEPTH) {
      throw invalidArgument("json_too_deep", `invalid JSON: nesting deeper than ${MAX_JSON_DEPTH} levels`);
    }
  }

  private parseObject(expect: Expect, path: string): JsonObject {
    this.enter();
    if (expect.kind === "integer") malformedInteger(path, expect.type, "an object");
    this.pos++; // {
    const obj: JsonObject = {};
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) === 0x7d /* } */) {
      this.pos++;
      this.depth--;
      return obj;
    }
    const keys = new Set<string>();
    const table = expect.kind === "message" ? fieldTable(expect.desc) : undefined;
    // A field may be spelt by its proto name or its JSON name, but given once.
    const fieldsSeen = table ? new Map<DescField, string>() : undefined;
    for (;;) {
      if (this.text.charCodeAt(this.pos) !== 0x22) this.fail("expected a string key");
      const keyAt = this.pos;
      const key = this.parseString();
      if (keys.has(key)) {
        throw invalidArgument(
          "duplicate_json_key",
          `invalid JSON: duplicate key ${JSON.stringify(show(key))}${path === "" ? "" : ` in ${path}`} at offset ${keyAt}`,
        );
      }
      keys.add(key);
      this.skipWhitespace();
      if (this.text.charCodeAt(this.pos) !== 0x3a /* : */) this.fail("expected ':'");
      this.pos++;
      this.skipWhitespace();

      let childExpect: Expect = ANY;
      let childPath = path;
      if (table !== undefined) {
        const entry = table.get(key);
        if (entry !== undefined) {
          const earlier = fieldsSeen!.get(entry.field);
          if (earlier !== undefined) {
            throw invalidArgument(
              "duplicate_json_key",
              `${join(path, entry.field.name)}: set twice, as ${JSON.stringify(earlier)} and ${JSON.stringify(key)}`,
              { field: join(path, entry.field.name) },
            );
          }
          fieldsSeen!.set(entry.field, key);
          childExpect = this.decimals ? fieldExpect(entry.field, true) : entry.expect;
          childPath = join(path, entry.field.name);
        }
      } else if (expect.kind === "map") {
        if (expect.key !== undefined) checkIntegerText(key, expect.key, `${path} key`, JSON.stringify(key));
        childExpect = expect.value;
        childPath = `${path}[${JSON.stringify(show(key))}]`;
      }
      const value = this.parseValue(childExpect, childPath);
      if (key === "__proto__") {
        // JSON.parse makes "__proto__" an own property; plain assignment would set the prototype.
        Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
      } else {
        obj[key] = value;
      }

      this.skipWhitespace();
      const c = this.text.charCodeAt(this.pos);
      if (c === 0x2c /* , */) {
        this.pos++;
        this.skipWhitespace();
      } else if (c === 0x7d /* } */) {
        this.pos++;
        this.depth--;
        return obj;
      } else {
        this.fail("expected ',' or '}'");
      }
    }
  }

  private parseArray(expect: Expect, path: string): JsonValue[] {
    this.enter();
    if (expect.kind === "integer") malformedInteger(path, expect.type, "an array");
    this.pos++; // [
    const arr: JsonValue[] = [];
    const item = expect.kind === "list" ? expect.item : ANY;
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) === 0x5d /* ] */) {
      this.pos++;
      this.depth--;
      return arr;
    }
    for (;;) {
      arr.push(this.parseValue(item, item === ANY ? path : `${path}[${arr.length}]`));
      this.skipWhitespace();
      const c = this.text.charCodeAt(this.pos);
      if (c === 0x2c /* , */) {
        this.pos++;
        this.skipWhitespace();
      } else if (c === 0x5d /* ] */) {
        this.pos++;
        this.depth--;
        return arr;
      } else {
        this.fail("expected ',' or ']'");
      }
    }
  }

  /** The source text of a number, checked against the RFC 8259 grammar. */
  private numberToken(): string {
    const t = this.text;
    const start = this.pos;
    let i = start;
    if (t.charCodeAt(i) === 0x2d) i++;
    const first = t.charCodeAt(i);
    if (first === 0x30) {
      i++;
    } else if (first >= 0x31 && first <= 0x39) {
      while (isDigit(t.charCodeAt(i))) i++;
    } else {
      this.fail("expected a digit", i);
    }
    if (t.charCodeAt(i) === 0x2e /* . */) {
      i++;
      if (!isDigit(t.charCodeAt(i))) this.fail("expected a digit after '.'", i);
      while (isDigit(t.charCodeAt(i))) i++;
    }
    const e = t.charCodeAt(i);
    if (e === 0x65 || e === 0x45 /* e E */) {
      i++;
      const sign = t.charCodeAt(i);
      if (sign === 0x2b || sign === 0x2d) i++;
      if (!isDigit(t.charCodeAt(i))) this.fail("expected a digit in the exponent", i);
      while (isDigit(t.charCodeAt(i))) i++;
    }
    this.pos = i;
    return t.slice(start, i);
  }

  /** A string token, unescaped; the cursor is on its opening quote. */
  private parseString(): string {
    const t = this.text;
    const start = this.pos;
    let i = start + 1;
    let escaped = false;
    let surrogates = false;
    for (;;) {
      const c = t.charCodeAt(i);
      if (c === 0x22 /* " */) break;
      if (Number.isNaN(c)) this.fail("unterminated string", start);
      if (c < 0x20) this.fail("control character in a string", i);
      if (c === 0x5c /* \ */) {
        escaped = true;
        const e = t.charCodeAt(i + 1);
        if (e === 0x75 /* u */) {
          if (!(isHex(t.charCodeAt(i + 2)) && isHex(t.charCodeAt(i + 3)) && isHex(t.charCodeAt(i + 4)) && isHex(t.charCodeAt(i + 5)))) {
            this.fail("invalid \\u escape", i);
          }
          // \uD800-\uDFFF: a surrogate half, to be checked for its partner.
          if ((parseInt(t.slice(i + 2, i + 6), 16) & 0xf800) === 0xd800) surrogates = true;
          i += 6;
          continue;
        }
        if (!SIMPLE_ESCAPES.has(e)) this.fail("invalid escape in a string", i);
        i += 2;
        continue;
      }
      if ((c & 0xf800) === 0xd800) surrogates = true;
      i++;
    }
    this.pos = i + 1;
    // The token is valid JSON by now; the native decoder unescapes it fastest.
    const out = escaped ? (JSON.parse(t.slice(start, i + 1)) as string) : t.slice(start + 1, i);
    // Checked on the decoded string so that escaped and raw halves are judged alike.
    if (surrogates && LONE_SURROGATE.test(out)) {
      throw invalidArgument("invalid_json", `invalid JSON: lone UTF-16 surrogate in the string at offset ${start}`);
    }
    return out;
  }
}

/** The characters after a backslash that JSON allows, besides u: " \\ / b f n r t. */
const SIMPLE_ESCAPES = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]);

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function join(path: string, name: string): string {
  return path === "" ? name : `${path}.${name}`;
}

const RFC3339_PREFIX = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})/;

/**
 * The calendar part of an RFC 3339 timestamp. protobuf-es reads it with
 * `Date.parse`, which rolls 2025-02-29 over to March 1st without a word; a
 * date that does not exist is refused here instead. The rest of the syntax
 * (offset required, no leap second 23:59:60, at most 9 fractional digits) is
 * protobuf-es's, which refuses it.
 */
function checkCalendar(s: string, path: string): void {
  const m = RFC3339_PREFIX.exec(s);
  if (!m) return;
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const days = month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31;
  if (month < 1 || month > 12 || day < 1 || day > days || hour > 23 || minute > 59 || second > 59) {
    throw invalidArgument("invalid_timestamp", `${path}: ${show(s)} is not a valid date and time`, { field: path });
  }
}
