import type { DescField, DescMessage, JsonObject, JsonValue, MessageShape } from "@bufbuild/protobuf";
import { ScalarType, fromJson, getOption, hasOption } from "@bufbuild/protobuf";
import { invalidArgument } from "../../domain/errors.js";
import { enum_value as enumValueOption } from "../../../gen/tally/rest/v1/options_pb.js";
import { ENUM_NUMBER, checkIntegerText, integerKindOf, isCanonicalInteger } from "../canonical-int.js";
import type { IntegerKind } from "../canonical-int.js";
import { decimalScaleOf, parseStrictJson, parseStrictJsonField, readDecimalField } from "../json-guard.js";
import type { Route } from "./route-table.js";

/** The parts of an HTTP request that make up an RPC's input. */
export interface RestInput {
  readonly bindings: ReadonlyMap<string, string>;
  readonly query: URLSearchParams;
  /** The raw body text; "" when there is none. */
  readonly body: string;
}

/**
 * Builds the RPC input from path variables, the body and query parameters,
 * after google.api.http: with `body: "*"` the JSON body is the request and the
 * query is not read; with `body: "field"` the body is that field and the other
 * fields come from the query; with no body, every field not in the path comes
 * from the query. Path variables win over the body.
 */
export function buildRequest<I extends DescMessage>(route: Route, schema: I, input: RestInput, rejectUnknownQuery: boolean): MessageShape<I> {
  const json: JsonObject = {};
  const bound = new Set<string>(input.bindings.keys());

  if (route.body === "*") {
    if (input.body.trim() !== "") {
      const parsed = parseStrictJson(input.body, schema, { decimals: true });
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        throw invalidArgument("invalid_body", "the request body must be a JSON object");
      }
      Object.assign(json, parsed);
    }
  } else if (route.body !== "") {
    const f = schema.fields.find((x) => x.name === route.body)!;
    if (input.body.trim() !== "") {
      // The body is checked as that field of the request, so it gets the same
      // strict number rules as any other, and refusals name the field by its
      // full path (nested.u32).
      json[f.jsonName] = parseStrictJsonField(input.body, f, { decimals: true });
    }
    bound.add(f.name);
  } else if (input.body.trim() !== "") {
    throw invalidArgument("unexpected_body", "this endpoint takes no request body");
  }

  for (const [path, value] of input.bindings) {
    setPath(json, schema, path.split("."), [value], "path");
  }

  if (route.body !== "*") {
    for (const key of new Set(input.query.keys())) {
      const fields = resolvePath(schema, key.split("."));
      if (!fields) {
        if (rejectUnknownQuery) throw invalidArgument("unknown_query_parameter", `unknown query parameter "${key}"`);
        continue;
      }
      const protoPath = fields.map((f) => f.name).join(".");
      if (bound.has(protoPath)) throw invalidArgument("invalid_query_parameter", `"${key}" cannot be set in the query here`);
      setPath(json, schema, key.split("."), input.query.getAll(key), "query");
    }
  }

  try {
    return fromJson(schema, json, { ignoreUnknownFields: false });
  } catch (e) {
    throw invalidArgument("invalid_request", e instanceof Error ? e.message : "invalid request");
  }
}

/** Resolves a dotted path of proto or JSON names to fields; undefined if any part is unknown or not a singular message on the way. */
function resolvePath(schema: DescMessage, parts: readonly string[]): DescField[] | undefined {
  const out: DescField[] = [];
  let msg: DescMessage | undefined = schema;
  for (let i = 0; i < parts.length; i++) {
    if (!msg) return undefined;
    const name = parts[i]!;
    const f: DescField | undefined = msg.fields.find((x) => x.name === name || x.jsonName === name);
    if (!f) return undefined;
    out.push(f);
    msg = f.fieldKind === "message" ? f.message : undefined;
  }
  return out;
}

function setPath(json: JsonObject, schema: DescMessage, parts: readonly string[], values: readonly string[], where: "path" | "query"): void {
  const fields = resolvePath(schema, parts);
  if (!fields) throw invalidArgument("invalid_request", `"${parts.join(".")}" names no field`);
  let obj = json;
  for (let i = 0; i < fields.length - 1; i++) {
    const f = fields[i]!;
    const next = obj[f.jsonName];
    if (next === undefined || next === null || typeof next !== "object" || Array.isArray(next)) {
      const created: JsonObject = {};
      obj[f.jsonName] = created;
      obj = created;
    } else {
      obj = next;
    }
  }
  const leaf = fields[fields.length - 1]!;
  const name = parts.join(".");
  // Integer refusals carry the field's proto path, as a JSON body's do.
  const field = fields.map((f) => f.name).join(".");
  if (leaf.fieldKind === "list") {
    obj[leaf.jsonName] = values.map((v) => convert(leaf, v, name, where, field));
  } else if (leaf.fieldKind === "map" || (leaf.fieldKind === "message" && !isStringWkt(leaf.message))) {
    throw invalidArgument("invalid_request", `"${name}" cannot be set from a ${where} parameter`);
  } else {
    if (values.length > 1) throw invalidArgument("invalid_request", `"${name}" is not repeated but was given ${values.length} times`);
    obj[leaf.jsonName] = convert(leaf, values[0]!, name, where, field);
  }
}

/**
 * An integer (or enum number) parameter: the same rule as in a JSON body
 * (canonical-int.ts), so `?page_size=1e3` is refused as `{"page_size":1e3}`
 * is. A malformed one is refused in the parameter's own words (it is text,
 * not JSON); one out of range with the same message as anywhere else.
 */
function checkIntegerParam(raw: string, kind: IntegerKind, name: string, where: string, field: string): void {
  if (!isCanonicalInteger(raw)) {
    const what = kind === ENUM_NUMBER ? "a value name or a decimal integer" : "a decimal integer";
    throw invalidArgument(kind.reason, `${where} parameter "${name}" must be ${what}, got ${JSON.stringify(raw)}`, { field, type: kind.name });
  }
  checkIntegerText(raw, kind, field);
}

/** Converts a path or query string into the proto3 JSON value fromJson expects, refusing anything non-canonical. */
function convert(f: DescField, raw: string, name: string, where: string, field: string): JsonValue {
  const bad = (what: string) => invalidArgument("invalid_request", `${where} parameter "${name}" must be ${what}, got ${JSON.stringify(raw)}`);
  const scalar = f.fieldKind === "scalar" || f.fieldKind === "list" ? f.scalar : undefined;
  if (f.fieldKind === "enum" || (f.fieldKind === "list" && f.listKind === "enum")) {
    const e = f.enum!;
    // Value names start with a letter: anything that starts like a number is meant as one.
    if (/^[-+.0-9]/.test(raw)) {
      checkIntegerParam(raw, ENUM_NUMBER, name, where, field);
      return Number(raw);
    }
    const byOverride = e.values.find((v) => hasOption(v, enumValueOption) && getOption(v, enumValueOption).name === raw);
    return byOverride ? byOverride.name : raw;
  }
  if (f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message")) return raw;
  if (scalar === undefined || scalar === ScalarType.STRING || scalar === ScalarType.BYTES) return raw;
  if (scalar === ScalarType.BOOL) {
    if (raw === "true") return true;
    if (raw === "false") return false;
    throw bad("true or false");
  }
  if (f.fieldKind === "scalar" && decimalScaleOf(f) !== undefined) return readDecimalField(f, raw, name);
  const kind = integerKindOf(scalar);
  if (kind !== undefined) {
    checkIntegerParam(raw, kind, name, where, field);
    // 64-bit values stay text so that they reach fromJson exactly.
    return kind.wide ? raw : Number(raw);
  }
  // float and double
  if (!/^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/.test(raw)) throw bad("a number");
  return Number(raw);
}

function isStringWkt(m: DescMessage | undefined): boolean {
  return m !== undefined && ["google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"].includes(m.typeName);
}
