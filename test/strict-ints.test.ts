import type { ConnectRouter } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModeSchema, TranscodingTestService } from "../gen/tally/testing/v1/transcoding_pb.js";
import { jsonLogger } from "../src/transport/log.js";
import { createRestHandler } from "../src/transport/rest/rest-handler.js";
import { routesOf } from "../src/transport/rest/route-table.js";
import { createFrontDoor } from "../src/transport/front-door.js";
import { createRpcHandler } from "../src/transport/rpc-handler.js";
import { listen } from "../src/transport/server.js";
import type { Listening } from "../src/transport/server.js";
import { GrpcJsonSession, connectGet, connectPost, connectStream, grpcWebJson } from "./support/rpc-wire.js";
import type { WireOutcome } from "./support/rpc-wire.js";

/*
 * The strict integer matrix (issue 15, item 1): every 32-bit field kind (int32,
 * uint32, sint32, fixed32, sfixed32), enums given as numbers, and the shapes
 * they come in (repeated, wrappers, map keys and values, optional, nested),
 * on every input path: Connect JSON unary POST and GET, Connect streaming,
 * gRPC and gRPC-Web JSON unary and streaming (connect's own pipeline), a REST
 * JSON body, a REST body bound to a field, REST query parameters and REST path
 * variables. Real sockets, one server (the test-only TranscodingTestService
 * behind the same RPC handler, REST handler and one-port server as Tally's).
 * Each path must give the same verdict as the rule, with the same message
 * naming the field. The rule itself: test/canonical-int.test.ts; real Tally
 * fields (DefineAsset scale, page sizes, limits): test/strict-ints-fields.test.ts.
 */

let server: Listening;
let grpc: GrpcJsonSession;
const SERVICE = "/tally.testing.v1.TranscodingTestService";

beforeAll(async () => {
  const logger = jsonLogger(process.stderr, "silent");
  const routes = (router: ConnectRouter) =>
    router.service(TranscodingTestService, {
      echoInts: (request) => ({ request }),
      async *streamInts(request) {
        yield { request };
      },
    });
  const rpc = createRpcHandler({ routes, logger, readMaxBytes: 64 * 1024 });
  const rest = createRestHandler({ routes: routesOf([TranscodingTestService]), rpc, readMaxBytes: 64 * 1024, logger });
  server = await listen(createFrontDoor({ rpc, rest }), { port: 0 });
  grpc = new GrpcJsonSession(server.url);
});
afterAll(async () => {
  grpc?.close();
  await server?.close(1000);
});

// ---- The rule, restated independently of the implementation ------------------

interface Range {
  readonly name: "int32" | "uint32" | "enum";
  readonly min: bigint;
  readonly max: bigint;
}
const INT32: Range = { name: "int32", min: -(2n ** 31n), max: 2n ** 31n - 1n };
const UINT32: Range = { name: "uint32", min: 0n, max: 2n ** 32n - 1n };
const ENUM: Range = { name: "enum", min: INT32.min, max: INT32.max };

const NOT = 'no fraction, exponent, "+", leading zero or -0';
const MALFORMED: Record<Range["name"], string> = {
  int32: `32-bit integers must be decimal integers such as 6 or "6" (${NOT})`,
  uint32: `32-bit integers must be decimal integers such as 6 or "6" (${NOT})`,
  enum: `enum values must be names or decimal integers such as 2 (${NOT})`,
};

/** What the server must answer: the value it reads, or a refusal with this message (a RegExp when only its start is fixed). */
type Verdict = { readonly ok: true; readonly value: number } | { readonly ok: false; readonly message: string | RegExp };

const CANONICAL = /^-?(0|[1-9][0-9]*)$/;

/** The verdict for text `t` at `path`, shown as `got` when it is refused for its form. */
function rule(t: string, range: Range, path: string, got: string): Verdict {
  if (!CANONICAL.test(t) || t === "-0") return { ok: false, message: `${path}: ${MALFORMED[range.name]}, got ${got}` };
  const v = BigInt(t);
  if (v < range.min || v > range.max) return { ok: false, message: `${path}: ${t} is outside the range of ${range.name}` };
  return { ok: true, value: Number(v) };
}

/** Texts of every class: canonical in and out of range, and each non-canonical spelling the issue lists, and more. */
const TEXTS = [
  "0", "7", "-7", "2147483647", "-2147483648", "4294967295",
  "2147483648", "-2147483649", "4294967296", "-1", "99999999999999999999999",
  "-0", "+2", "06", "00", "0x6", "0b11", "0o7", "1e1", "1E1", "3.0", "6.5", "", " 6", "Infinity", "NaN", "\u0663",
];

/** RFC 8259 number syntax: what may be sent as a bare JSON number. */
const JSON_NUMBER = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/;

// ---- Where a value goes -----------------------------------------------------------

/**
 * A place for an integer in the request: how the JSON holds it (`V` is the
 * value), the path a refusal names, and how to read it back from the echoed
 * request (written with JSON names by Connect, proto names by REST).
 */
interface Slot {
  readonly json: string;
  readonly path: string;
  readonly range: Range;
  readonly read: (request: Record<string, unknown>) => unknown;
  /** Map keys are strings in JSON: only the string form applies. */
  readonly keyOnly?: boolean;
}

const field = (name: string) => (r: Record<string, unknown>) => r[name];
const SCALARS: [string, Range][] = [
  ["i32", INT32],
  ["u32", UINT32],
  ["s32", INT32],
  ["f32", UINT32],
  ["sf32", INT32],
];

/** One field of each kind: on every path. */
const KIND_SLOTS: Slot[] = [
  ...SCALARS.map(([f, range]): Slot => ({ json: `{"${f}":V}`, path: f, range, read: field(f) })),
  { json: '{"mode":V}', path: "mode", range: ENUM, read: field("mode") },
];

/**
 * The shapes those kinds come in. Every RPC path hands its JSON to the same
 * schema-driven parser, so the shapes are run on one path of each parser's
 * callers (the lean Connect path and the REST body); the kinds on all.
 */
const SHAPE_SLOTS: Slot[] = [
  { json: '{"list":[V]}', path: "list[0]", range: INT32, read: (r) => (r.list as unknown[])[0] },
  { json: '{"modes":[V]}', path: "modes[0]", range: ENUM, read: (r) => (r.modes as unknown[])[0] },
  { json: '{"wrapped":V}', path: "wrapped", range: INT32, read: field("wrapped") },
  { json: '{"uwrapped":V}', path: "uwrapped", range: UINT32, read: field("uwrapped") },
  { json: '{"maybe":V}', path: "maybe", range: UINT32, read: field("maybe") },
  { json: '{"values":{"k":V}}', path: 'values["k"]', range: INT32, read: (r) => (r.values as Record<string, unknown>).k },
  { json: '{"nested":{"u32":V}}', path: "nested.u32", range: UINT32, read: (r) => (r.nested as Record<string, unknown>).u32 },
  { json: '{"nested":{"sf32":V}}', path: "nested.sf32", range: INT32, read: (r) => (r.nested as Record<string, unknown>).sf32 },
  { json: '{"nested":{"mode":V}}', path: "nested.mode", range: ENUM, read: (r) => (r.nested as Record<string, unknown>).mode },
  { json: '{"byI32":{V:"x"}}', path: "by_i32 key", range: INT32, keyOnly: true, read: (r) => Number(Object.keys((r.byI32 ?? r.by_i32) as object)[0]) },
  { json: '{"by_u32":{V:"x"}}', path: "by_u32 key", range: UINT32, keyOnly: true, read: (r) => Number(Object.keys((r.byU32 ?? r.by_u32) as object)[0]) },
];

/** One JSON value to send and what must come of it. */
interface JsonCase {
  readonly slot: Slot;
  readonly text: string;
  readonly json: string;
  readonly verdict: Verdict;
}

/** Every text at every slot, as a JSON string and (where it is JSON) as a bare number; enums take numbers only, keys strings only. */
function jsonCases(slots: readonly Slot[]): JsonCase[] {
  const out: JsonCase[] = [];
  for (const slot of slots) {
    for (const t of TEXTS) {
      const quoted = JSON.stringify(t);
      // An enum's JSON string is a value name, not a number: strings are protobuf-es's to look up.
      if (slot.range !== ENUM) out.push({ slot, text: t, json: slot.json.replace("V", quoted), verdict: rule(t, slot.range, slot.path, quoted) });
      if (slot.keyOnly) continue;
      if (JSON_NUMBER.test(t)) {
        out.push({ slot, text: t, json: slot.json.replace("V", t), verdict: rule(t, slot.range, slot.path, t) });
      } else if (t !== "" && t.trim() === t) {
        // Not a JSON number at all (06, +2, 0x6, NaN): the JSON grammar refuses it first.
        out.push({ slot, text: t, json: slot.json.replace("V", t), verdict: { ok: false, message: /^invalid JSON: / } });
      }
    }
  }
  return out;
}

// ---- Reading answers ------------------------------------------------------------

const MODE_NUMBERS = new Map<string, number>();
for (const v of ModeSchema.values) MODE_NUMBERS.set(v.name, v.number);
MODE_NUMBERS.set("fast", 1); // MODE_FAST's REST wire name

/** An echoed value as a number: proto3 JSON leaves zero out, enums come back by name. */
function asNumber(v: unknown): unknown {
  if (v === undefined) return 0;
  if (typeof v === "string") return MODE_NUMBERS.get(v) ?? v;
  return v;
}

/** Compares one outcome with its verdict; undefined when they agree, else what differed. */
function mismatch(c: { readonly slot: Slot; readonly verdict: Verdict }, got: WireOutcome): string | undefined {
  const want = c.verdict;
  if (want.ok) {
    if (!got.ok) return `refused (${got.code}: ${got.message}), expected ${want.value}`;
    const value = asNumber(c.slot.read(got.message.request as Record<string, unknown>));
    return value === want.value ? undefined : `read ${JSON.stringify(value)}, expected ${want.value}`;
  }
  if (got.ok) return `accepted as ${JSON.stringify(got.message.request)}, expected a refusal`;
  if (got.code !== "invalid_argument") return `answered ${got.code}: ${got.message}`;
  const fits = typeof want.message === "string" ? got.message === want.message : want.message.test(got.message);
  return fits ? undefined : `message ${JSON.stringify(got.message)}, expected ${String(want.message)}`;
}

/** A REST call, its status-envelope answer flattened like an RPC's. */
async function rest(method: string, path: string, body?: string): Promise<WireOutcome> {
  const res = await fetch(server.url + path, { method, body, headers: body === undefined ? {} : { "content-type": "application/json" } });
  const json = JSON.parse(await res.text()) as Record<string, unknown>;
  if (res.status === 200) return { ok: true, message: json };
  return { ok: false, code: codeToString(json.code as number), message: String(json.message) };
}

/** Runs `send` for every case, a few at a time, and returns the disagreements. */
async function runAll<C extends { readonly slot: Slot; readonly verdict: Verdict }>(
  cases: readonly C[],
  describeCase: (c: C) => string,
  send: (c: C) => Promise<WireOutcome>,
): Promise<string[]> {
  const problems: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const c = cases[next++]!;
      const m = mismatch(c, await send(c));
      if (m !== undefined) problems.push(`${describeCase(c)}: ${m}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return problems;
}

// ---- The matrix ----------------------------------------------------------------

/** Each JSON input path, and whether it also runs every shape. */
const JSON_PATHS: [string, boolean, (json: string) => Promise<WireOutcome>][] = [
  ["Connect JSON unary POST", true, (json) => connectPost(server.url, `${SERVICE}/EchoInts`, json)],
  ["Connect JSON unary GET", false, (json) => connectGet(server.url, `${SERVICE}/EchoInts`, json)],
  ["Connect JSON server stream", false, (json) => connectStream(server.url, `${SERVICE}/StreamInts`, json)],
  ["gRPC JSON unary", false, (json) => grpc.call(`${SERVICE}/EchoInts`, json)],
  ["gRPC JSON server stream", false, (json) => grpc.call(`${SERVICE}/StreamInts`, json)],
  ["gRPC-Web JSON unary", false, (json) => grpcWebJson(server.url, `${SERVICE}/EchoInts`, json)],
  ["gRPC-Web JSON server stream", false, (json) => grpcWebJson(server.url, `${SERVICE}/StreamInts`, json)],
  ['REST JSON body (body: "*")', true, (json) => rest("POST", "/v1/ints", json)],
];

describe("every 32-bit kind in a JSON message, on every RPC path and as a REST body", () => {
  const kindCases = jsonCases(KIND_SLOTS);
  const allCases = [...kindCases, ...jsonCases(SHAPE_SLOTS)];

  it("covers every slot with accepted values and every kind of refusal", () => {
    for (const slot of [...KIND_SLOTS, ...SHAPE_SLOTS]) {
      const mine = allCases.filter((c) => c.slot === slot);
      expect(mine.some((c) => c.verdict.ok), slot.path).toBe(true);
      expect(mine.some((c) => !c.verdict.ok && typeof c.verdict.message === "string" && c.verdict.message.includes("outside the range")), slot.path).toBe(true);
      expect(mine.some((c) => !c.verdict.ok && typeof c.verdict.message === "string" && c.verdict.message.includes("must be")), slot.path).toBe(true);
    }
  });

  it.each(JSON_PATHS)("%s", async (_name, shapes, send) => {
    const cases = shapes ? allCases : kindCases;
    const problems = await runAll(cases, (c) => c.json, (c) => send(c.json));
    expect(problems.slice(0, 20), `${problems.length} of ${cases.length} cases disagree`).toEqual([]);
  });
});

describe("REST: a body bound to a field, query parameters and path variables", () => {
  const KINDS: [string, string, Range][] = [...SCALARS.map(([f, r]): [string, string, Range] => [f, f, r]), ["mode", "mode", ENUM]];
  const ROUTE_NAMES: Record<string, string> = { i32: "int32", u32: "uint32", s32: "sint32", f32: "fixed32", sf32: "sfixed32", mode: "mode" };

  it('body: "nested" is read as that field, and refusals name nested.<field>', async () => {
    const slots = KINDS.map(([f, , range]): Slot => ({ json: `{"${f}":V}`, path: `nested.${f}`, range, read: (r) => (r.nested as Record<string, unknown>)[f] }));
    const cases = jsonCases(slots);
    const problems = await runAll(cases, (c) => c.json, (c) => rest("PUT", "/v1/ints", c.json));
    expect(problems.slice(0, 20), `${problems.length} of ${cases.length} cases disagree`).toEqual([]);
  });

  /** A text given as a query parameter or path variable, where `name` is how the request spelt the field. */
  interface TextSlot extends Slot {
    readonly name: string;
    readonly send: (encoded: string) => Promise<WireOutcome>;
  }
  interface TextCase {
    readonly slot: TextSlot;
    readonly text: string;
    readonly verdict: Verdict;
  }

  /**
   * The rule for text: the same verdicts as in JSON, a malformed value refused
   * in the parameter's words (it is text, not JSON), one out of range with the
   * same message as anywhere else.
   */
  function paramRule(t: string, slot: TextSlot, where: "query" | "path"): Verdict {
    const verdict = rule(t, slot.range, slot.path, JSON.stringify(t));
    if (verdict.ok || (typeof verdict.message === "string" && verdict.message.includes("outside the range"))) return verdict;
    // An enum parameter that does not start like a number is a value name: refused by protobuf-es's lookup instead.
    if (slot.range === ENUM && !/^[-+.0-9]/.test(t)) return { ok: false, message: /^cannot decode/ };
    const what = slot.range === ENUM ? "a value name or a decimal integer" : "a decimal integer";
    return { ok: false, message: `${where} parameter "${slot.name}" must be ${what}, got ${JSON.stringify(t)}` };
  }

  const textCases = (slots: readonly TextSlot[], where: "query" | "path", skip: (t: string) => boolean = () => false): TextCase[] =>
    slots.flatMap((slot) => TEXTS.filter((t) => !skip(t)).map((text): TextCase => ({ slot, text, verdict: paramRule(text, slot, where) })));

  const nested = (f: string) => (r: Record<string, unknown>) => (r.nested as Record<string, unknown>)[f];
  const query = (name: string, path: string, range: Range, read: Slot["read"]): TextSlot => ({
    name,
    json: "",
    path,
    range,
    read,
    send: (encoded) => rest("GET", `/v1/ints?${name}=${encoded}`),
  });

  it("query parameters: each kind, repeated, optional and nested", async () => {
    const slots: TextSlot[] = [
      ...KINDS.map(([f, , range]) => query(f, f, range, field(f))),
      query("list", "list", INT32, (r) => (r.list as unknown[])[0]),
      query("modes", "modes", ENUM, (r) => (r.modes as unknown[])[0]),
      query("maybe", "maybe", UINT32, field("maybe")),
      query("nested.u32", "nested.u32", UINT32, nested("u32")),
      query("nested.mode", "nested.mode", ENUM, nested("mode")),
    ];
    const cases = textCases(slots, "query");
    const problems = await runAll(cases, (c) => `?${c.slot.name}=${JSON.stringify(c.text)}`, (c) => c.slot.send(encodeURIComponent(c.text)));
    expect(problems.slice(0, 20), `${problems.length} of ${cases.length} cases disagree`).toEqual([]);
  });

  it("path variables: each kind, and a nested field", async () => {
    const variable = (route: string, name: string, range: Range, read: Slot["read"]): TextSlot => ({
      name,
      json: "",
      path: name,
      range,
      read,
      send: (encoded) => rest("GET", `/v1/ints/${route}/${encoded}`),
    });
    const slots: TextSlot[] = [...KINDS.map(([f, , range]) => variable(ROUTE_NAMES[f]!, f, range, field(f))), variable("nested", "nested.u32", UINT32, nested("u32"))];
    // An empty segment matches no route at all.
    const cases = textCases(slots, "path", (t) => t === "");
    const problems = await runAll(cases, (c) => `${c.slot.name} = ${JSON.stringify(c.text)} in the path`, (c) => c.slot.send(encodeURIComponent(c.text)));
    expect(problems.slice(0, 20), `${problems.length} of ${cases.length} cases disagree`).toEqual([]);
  });

  it("names the field alike on a body, a query parameter, a path variable and an RPC", async () => {
    const fromJson = [await rest("POST", "/v1/ints", '{"u32":"0x6"}'), await connectPost(server.url, `${SERVICE}/EchoInts`, '{"u32":"0x6"}')];
    for (const o of fromJson) expect(o).toEqual({ ok: false, code: "invalid_argument", message: `u32: ${MALFORMED.uint32}, got "0x6"` });
    expect(await rest("GET", "/v1/ints?u32=0x6")).toEqual({ ok: false, code: "invalid_argument", message: 'query parameter "u32" must be a decimal integer, got "0x6"' });
    expect(await rest("GET", "/v1/ints/uint32/0x6")).toEqual({ ok: false, code: "invalid_argument", message: 'path parameter "u32" must be a decimal integer, got "0x6"' });
    const outside = { ok: false, code: "invalid_argument", message: "u32: -1 is outside the range of uint32" };
    expect(await rest("POST", "/v1/ints", '{"u32":-1}')).toEqual(outside);
    expect(await connectPost(server.url, `${SERVICE}/EchoInts`, '{"u32":"-1"}')).toEqual(outside);
    expect(await rest("GET", "/v1/ints?u32=-1")).toEqual(outside);
    expect(await rest("GET", "/v1/ints/uint32/-1")).toEqual(outside);
  });
});
