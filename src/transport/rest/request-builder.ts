import type { DescField, DescMessage, JsonObject, JsonValue, MessageShape } from "@bufbuild/protobuf";
import { ScalarType, fromJson, getOption, hasOption } from "@bufbuild/protobuf";
import { invalidArgument } from "../../domain/errors.js";
import { enum_value as enumValueOption } from "../../../gen/tally/rest/v1/options_pb.js";
import { decimalScaleOf, parseStrictJson, readDecimalField } from "../json-guard.js";
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
      // A scalar body is checked as that field of the request, so a 64-bit
      // body gets the same strict number rules as any other.
      json[f.jsonName] =
        f.fieldKind === "message"
          ? parseStrictJson(input.body, f.message, { decimals: true })
          : ((parseStrictJson(`{${JSON.stringify(f.name)}:${input.body}}`, schema, { decimals: true }) as JsonObject)[f.name] as JsonValue);
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
  if (leaf.fieldKind === "list") {
    obj[leaf.jsonName] = values.map((v) => convert(leaf, v, name, where));
  } else if (leaf.fieldKind === "map" || (leaf.fieldKind === "message" && !isStringWkt(leaf.message))) {
    throw invalidArgument("invalid_request", `"${name}" cannot be set from a ${where} parameter`);
  } else {
    if (values.length > 1) throw invalidArgument("invalid_request", `"${name}" is not repeated but was given ${values.length} times`);
    obj[leaf.jsonName] = convert(leaf, values[0]!, name, where);
  }
}

const INT64 = new Set([ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64]);
const INT32 = new Set([ScalarType.INT32, ScalarType.UINT32, ScalarType.SINT32, ScalarType.FIXED32, ScalarType.SFIXED32]);

/** Converts a path or query string into the proto3 JSON value fromJson expects, refusing anything non-canonical. */
function convert(f: DescField, raw: string, name: string, where: string): JsonValue {
  const bad = (what: string) => invalidArgument("invalid_request", `${where} parameter "${name}" must be ${what}, got ${JSON.stringify(raw)}`);
  const scalar = f.fieldKind === "scalar" || f.fieldKind === "list" ? f.scalar : undefined;
  if (f.fieldKind === "enum" || (f.fieldKind === "list" && f.listKind === "enum")) {
    const e = f.enum!;
    if (/^-?(0|[1-9][0-9]*)$/.test(raw)) return Number(raw);
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
  if (INT64.has(scalar) || INT32.has(scalar)) {
    if (!/^-?(0|[1-9][0-9]*)$/.test(raw) || raw === "-0") throw bad("a decimal integer");
    return INT64.has(scalar) ? raw : Number(raw);
  }
  // float and double
  if (!/^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/.test(raw)) throw bad("a number");
  return Number(raw);
}

function isStringWkt(m: DescMessage | undefined): boolean {
  return m !== undefined && ["google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"].includes(m.typeName);
}
