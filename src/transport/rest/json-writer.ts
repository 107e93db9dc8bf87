import type { DescEnum, DescField, DescMessage, Message } from "@bufbuild/protobuf";
import { ScalarType, getOption, hasOption, toJson } from "@bufbuild/protobuf";
import type { ReflectList, ReflectMap, ReflectMessage } from "@bufbuild/protobuf/reflect";
import { reflect } from "@bufbuild/protobuf/reflect";
import { base64Encode } from "@bufbuild/protobuf/wire";
import { FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";
import {
  FieldNaming,
  Int64Format,
  TimestampFormat,
  enum_value as enumValueOption,
  field as fieldOption,
} from "../../../gen/tally/rest/v1/options_pb.js";
import type { FieldRule, JsonProfile } from "../../../gen/tally/rest/v1/options_pb.js";

/** How a route writes JSON: the service's profile with defaults filled in. */
export interface WriteProfile {
  readonly naming: FieldNaming.PROTO | FieldNaming.JSON;
  readonly int64: Int64Format;
  readonly timestamp: TimestampFormat;
  readonly emitDefaults: boolean;
}

/** Without a profile, the proto3 JSON mapping: JSON names, int64 as strings, RFC 3339. */
export function writeProfileOf(p: JsonProfile | undefined): WriteProfile {
  return {
    naming: p?.fieldNaming === FieldNaming.PROTO ? FieldNaming.PROTO : FieldNaming.JSON,
    int64: p?.int64Format || Int64Format.STRING,
    timestamp: p?.timestampFormat || TimestampFormat.RFC3339,
    emitDefaults: p?.emitDefaults ?? false,
  };
}

/**
 * Writes a message as JSON, driven by its schema and a profile, in field
 * declaration order (so a dialect's proto fixes its key order). Numbers are
 * written from their exact digits, never through a double: an int64 written
 * as a JSON number is exactly the stored value, and a decimal-scaled one is
 * its exact decimal expansion.
 */
export function writeMessageJson(schema: DescMessage, message: Message, profile: WriteProfile): string {
  return writeMessage(reflect(schema, message), profile);
}

/** Writes one top-level field's value (for `response_body`); a repeated field becomes a JSON array. */
export function writeFieldJson(schema: DescMessage, message: Message, fieldName: string, profile: WriteProfile): string {
  const r = reflect(schema, message);
  const f = schema.fields.find((x) => x.name === fieldName);
  if (!f) throw new Error(`response_body "${fieldName}" is not a field of ${schema.typeName}`);
  if (!r.isSet(f)) {
    if (f.fieldKind === "list") return "[]";
    if (f.fieldKind === "map") return "{}";
    if (f.fieldKind === "message") return "null";
  }
  return writeValue(f, r.get(f), rule(f), profile);
}

function writeMessage(r: ReflectMessage, profile: WriteProfile): string {
  const wkt = writeWellKnown(r, profile, undefined);
  if (wkt !== undefined) return wkt;
  const parts: string[] = [];
  for (const f of r.desc.fields) {
    const fr = rule(f);
    const name = profile.naming === FieldNaming.PROTO ? f.name : f.jsonName;
    if (r.isSet(f)) {
      const value = r.get(f);
      if (fr?.omitDefault && isDefault(f, value)) continue;
      parts.push(`${JSON.stringify(name)}:${writeValue(f, value, fr, profile)}`);
    } else if (fr?.nullWhenUnset) {
      parts.push(`${JSON.stringify(name)}:null`);
    } else if (profile.emitDefaults && !fr?.omitDefault && emitsDefault(f)) {
      parts.push(`${JSON.stringify(name)}:${writeValue(f, r.get(f), fr, profile)}`);
    }
  }
  return `{${parts.join(",")}}`;
}

/** Implicit-presence fields have a default to write; messages and explicit-presence fields do not. */
function emitsDefault(f: DescField): boolean {
  if (f.fieldKind === "list" || f.fieldKind === "map") return true;
  if (f.fieldKind === "message" || f.oneof !== undefined) return false;
  // proto3 `optional` fields have explicit presence: unset is not zero.
  return f.presence === FeatureSet_FieldPresence.IMPLICIT;
}

function isDefault(f: DescField, v: unknown): boolean {
  switch (f.fieldKind) {
    case "scalar":
      return v === 0 || v === 0n || v === "" || v === false || (v instanceof Uint8Array && v.length === 0);
    case "enum":
      return v === 0;
    case "list":
      return (v as ReflectList).size === 0;
    case "map":
      return (v as ReflectMap).size === 0;
    default:
      return false;
  }
}

function writeValue(f: DescField, v: unknown, fr: FieldRule | undefined, profile: WriteProfile): string {
  switch (f.fieldKind) {
    case "scalar":
      return writeScalar(f.scalar, v, fr, profile);
    case "enum":
      return writeEnum(f.enum, v as number);
    case "message":
      return writeNested(v as ReflectMessage, fr, profile);
    case "list": {
      const items: string[] = [];
      for (const item of v as ReflectList) {
        if (f.listKind === "scalar") items.push(writeScalar(f.scalar, item, fr, profile));
        else if (f.listKind === "enum") items.push(writeEnum(f.enum, item as number));
        else items.push(writeNested(item as ReflectMessage, fr, profile));
      }
      return `[${items.join(",")}]`;
    }
    case "map": {
      const entries: string[] = [];
      for (const [k, item] of v as ReflectMap) {
        const key = JSON.stringify(String(k));
        if (f.mapKind === "scalar") entries.push(`${key}:${writeScalar(f.scalar, item, fr, profile)}`);
        else if (f.mapKind === "enum") entries.push(`${key}:${writeEnum(f.enum, item as number)}`);
        else entries.push(`${key}:${writeNested(item as ReflectMessage, fr, profile)}`);
      }
      return `{${entries.join(",")}}`;
    }
  }
}

function writeNested(r: ReflectMessage, fr: FieldRule | undefined, profile: WriteProfile): string {
  return writeWellKnown(r, profile, fr) ?? writeMessage(r, profile);
}

function writeWellKnown(r: ReflectMessage, profile: WriteProfile, fr: FieldRule | undefined): string | undefined {
  const name = r.desc.typeName;
  if (name === "google.protobuf.Timestamp") {
    const seconds = r.get(r.desc.fields[0]!) as bigint;
    const nanos = r.get(r.desc.fields[1]!) as number;
    return writeTimestamp(seconds, nanos, fr?.timestampFormat || profile.timestamp);
  }
  if (name.startsWith("google.protobuf.")) {
    // Other well-known types keep their proto3 JSON mapping.
    return JSON.stringify(toJson(r.desc, r.message));
  }
  return undefined;
}

const INT64_TYPES = new Set([ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64]);

function writeScalar(type: ScalarType, v: unknown, fr: FieldRule | undefined, profile: WriteProfile): string {
  if (INT64_TYPES.has(type)) {
    const n = BigInt(v as bigint | string);
    const format = fr?.int64Format || profile.int64;
    if (format === Int64Format.NUMBER) return n.toString();
    if (format === Int64Format.DECIMAL) return decimalString(n, fr?.decimalScale ?? 0);
    return `"${n.toString()}"`;
  }
  switch (type) {
    case ScalarType.STRING:
      return JSON.stringify(v);
    case ScalarType.BOOL:
      return v ? "true" : "false";
    case ScalarType.BYTES:
      return JSON.stringify(base64Encode(v as Uint8Array));
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT: {
      const d = v as number;
      if (Number.isNaN(d)) return '"NaN"';
      if (d === Infinity) return '"Infinity"';
      if (d === -Infinity) return '"-Infinity"';
      return JSON.stringify(d);
    }
    default:
      return String(v);
  }
}

function writeEnum(e: DescEnum, n: number): string {
  const value = e.values.find((x) => x.number === n);
  if (!value) return String(n);
  const override = hasOption(value, enumValueOption) ? getOption(value, enumValueOption).name : "";
  return JSON.stringify(override || value.name);
}

/** The exact decimal expansion of `v` with `scale` implied decimal places, trailing zeros dropped. */
export function decimalString(v: bigint, scale: number): string {
  if (scale === 0) return v.toString();
  const neg = v < 0n;
  const digits = (neg ? -v : v).toString().padStart(scale + 1, "0");
  const int = digits.slice(0, -scale);
  const frac = digits.slice(-scale).replace(/0+$/, "");
  return `${neg ? "-" : ""}${int}${frac ? "." + frac : ""}`;
}

/** Writes a Timestamp in one of the profile formats. Sub-unit precision is truncated toward the past, never rounded. */
export function writeTimestamp(seconds: bigint, nanos: number, format: TimestampFormat): string {
  if (format === TimestampFormat.UNIX_SECONDS) return seconds.toString();
  const base = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  if (format === TimestampFormat.ISO_MILLIS) {
    return `"${base}.${String(Math.floor(nanos / 1_000_000)).padStart(3, "0")}Z"`;
  }
  let frac = "";
  if (nanos !== 0) {
    const n = String(nanos).padStart(9, "0");
    frac = "." + (n.endsWith("000000") ? n.slice(0, 3) : n.endsWith("000") ? n.slice(0, 6) : n);
  }
  return `"${base}${frac}Z"`;
}

function rule(f: DescField): FieldRule | undefined {
  return hasOption(f, fieldOption) ? getOption(f, fieldOption) : undefined;
}
