import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectRouter } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TranscodingTestService } from "../gen/tally/testing/v1/transcoding_pb.js";
import { jsonLogger } from "../src/transport/log.js";
import { messageEnvelope } from "../src/transport/rest/errors.js";
import { createRestHandler } from "../src/transport/rest/rest-handler.js";
import { routesOf } from "../src/transport/rest/route-table.js";
import { createFrontDoor } from "../src/transport/front-door.js";
import { createRpcHandler } from "../src/transport/rpc-handler.js";
import { listen } from "../src/transport/server.js";
import type { Listening } from "../src/transport/server.js";

// The transcoding layer on its own: a test-only annotated service, served by
// the same RPC handler, REST handler and one-port server as Tally itself.
let server: Listening;
const MAX = 4096;

beforeAll(async () => {
  const logger = jsonLogger(process.stderr, "silent");
  const routes = (router: ConnectRouter) =>
    router.service(TranscodingTestService, {
      echo(req) {
        if (req.failWithCode === 99) throw new Error("a bug with a secret in its message");
        if (req.failWithCode !== 0) throw new ConnectError(`planned failure ${req.failWithCode}`, req.failWithCode as Code);
        return { request: req };
      },
      listValues(req) {
        return { values: Array.from({ length: req.count }, (_, i) => (i === 2 ? 9223372036854775807n : BigInt(i + 1))) };
      },
    });
  const rpc = createRpcHandler({ routes, logger, readMaxBytes: MAX });
  const rest = createRestHandler({ routes: routesOf([TranscodingTestService]), rpc, readMaxBytes: MAX, logger });
  server = await listen(createFrontDoor({ rpc, rest }), { port: 0 });
});
afterAll(async () => {
  await server.close(1000);
});

async function call(method: string, path: string, body?: string): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(server.url + path, { method, body, headers: body === undefined ? {} : { "content-type": "application/json" } });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

const DEFAULTS =
  '"path":"","amount":0,"big":0,"small":0,"flag":false,"mode":"MODE_UNSPECIFIED","tags":[],"ratio":0,"cents":0,"as_string":"0","maybe":null,"labels":{},"fail_with_code":0';

describe("path templates", () => {
  it("binds single-segment variables and writes the profile's JSON exactly", async () => {
    const r = await call("GET", "/v1/shelves/s1/items/i1");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("application/json");
    expect(r.text).toBe(`{"request":{"shelf":"s1","item":"i1",${DEFAULTS}}}`);
  });

  it("prefers a literal segment over a variable", async () => {
    const r = await call("GET", "/v1/shelves/special/items/x");
    expect(JSON.parse(r.text).request).toMatchObject({ shelf: "", item: "x" });
    const v = await call("GET", "/v1/shelves/specials/items/x");
    expect(JSON.parse(v.text).request).toMatchObject({ shelf: "specials", item: "x" });
  });

  it("decodes single-segment variables fully and keeps %2F in ** variables", async () => {
    const one = await call("GET", "/v1/shelves/a%2Fb/items/x%20y");
    expect(JSON.parse(one.text).request).toMatchObject({ shelf: "a/b", item: "x y" });
    const deep = await call("GET", "/v1/files/a/b%2Fc/d%20e");
    expect(JSON.parse(deep.text).request.path).toBe("a/b%2Fc/d e");
  });

  it("matches a verb, and keeps a colon inside an ordinary id", async () => {
    const verb = await call("GET", "/v1/shelves/s/items/i:inspect");
    expect(JSON.parse(verb.text).request).toMatchObject({ shelf: "s", item: "i" });
    const colon = await call("GET", "/v1/shelves/s/items/i:other");
    expect(JSON.parse(colon.text).request).toMatchObject({ item: "i:other" });
  });

  it("binds a nested field from the path", async () => {
    const r = await call("GET", "/v1/names/foo");
    expect(JSON.parse(r.text).request.nested).toEqual({ name: "foo", count: 0 });
  });

  it("does not match a trailing slash or an extra segment", async () => {
    for (const p of ["/v1/shelves/s/items/i/", "/v1/shelves/s/items/i/j", "/v1/shelves//items/i"]) {
      const r = await call("GET", p);
      expect(r.status, p).toBe(404);
      // No route means no service, so no dialect: the default (Connect) envelope.
      expect(JSON.parse(r.text)).toEqual({ code: "not_found", message: expect.stringContaining("no route") });
    }
  });

  it("answers 405 with Allow when only the method is wrong", async () => {
    const r = await call("POST", "/v1/shelves/s/items/i", "{}");
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")).toBe("DELETE, GET");
  });

  it("refuses malformed percent-encoding with 400", async () => {
    const r = await call("GET", "/v1/shelves/%ZZ/items/x");
    expect(r.status).toBe(400);
  });
});

describe("bodies and query parameters", () => {
  it('body "*": the JSON body is the request, int64 written as exact numbers', async () => {
    const r = await call(
      "POST",
      "/v1/echo?amount=1",
      '{"amount":"9223372036854775807","big":"18446744073709551615","as_string":"-9223372036854775808","cents":"-0.05","omitted_when_zero":"7"}',
    );
    expect(r.status).toBe(200);
    const text = r.text;
    expect(text).toContain('"amount":9223372036854775807,"big":18446744073709551615');
    expect(text).toContain('"cents":-0.05,"as_string":"-9223372036854775808","omitted_when_zero":7');
  });

  it('body "field": the body fills that field and the query the rest', async () => {
    const r = await call("PUT", "/v1/shelves/s/nested?amount=5&tags=a", '{"name":"n","count":"7"}');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).request).toMatchObject({ shelf: "s", amount: 5, tags: ["a"], nested: { name: "n", count: 7 } });
  });

  it("reads query parameters: proto and JSON names, dotted paths, repeated keys, enums by name, override or number", async () => {
    const r = await call(
      "GET",
      "/v1/shelves/s/items/i?amount=9007199254740993&tags=a&tags=b&mode=fast&flag=true&nested.name=x&small=3&asString=12&unknown=1",
    );
    expect(r.status).toBe(200);
    expect(r.text).toContain('"amount":9007199254740993');
    expect(JSON.parse(r.text).request).toMatchObject({ tags: ["a", "b"], mode: "fast", flag: true, nested: { name: "x" }, small: 3, as_string: "12" });
    const byNumber = await call("GET", "/v1/shelves/s/items/i?mode=2");
    expect(JSON.parse(byNumber.text).request.mode).toBe("MODE_SLOW");
  });

  it("refuses non-canonical numbers, a repeated singular key and a path field in the query", async () => {
    for (const q of ["amount=1e3", "amount=0x10", "amount=%2012", "amount=9223372036854775808", "flag=yes", "amount=1&amount=2", "shelf=x"]) {
      const r = await call("GET", `/v1/shelves/s/items/i?${q}`);
      expect(r.status, q).toBe(400);
      expect(JSON.parse(r.text).code, q).toBe(3);
    }
  });

  it("refuses malformed JSON, JSON numbers past 2^53, a body where none is allowed, and oversized bodies", async () => {
    expect((await call("POST", "/v1/echo", "{")).status).toBe(400);
    expect((await call("POST", "/v1/echo", '{"amount":9007199254740993}')).status).toBe(400);
    expect((await call("POST", "/v1/echo", "[]")).status).toBe(400);
    expect((await call("DELETE", "/v1/shelves/s/items/i", '{"amount":"1"}')).status).toBe(400);
    const big = await call("POST", "/v1/echo", JSON.stringify({ shelf: "x".repeat(MAX) }));
    expect(big.status).toBe(413);
    expect(JSON.parse(big.text).code).toBe(8);
    // Far over the limit, in many chunks: still an answer, not a reset connection.
    const huge = await call("POST", "/v1/echo", JSON.stringify({ shelf: "x".repeat(2 * 1024 * 1024) }));
    expect(huge.status).toBe(413);
    expect(huge.headers.get("connection")).toBe("close");
  });
});

describe("responses", () => {
  it("writes a repeated response_body as a top-level array, [] when empty", async () => {
    expect((await call("GET", "/v1/values?count=3")).text).toBe("[1,2,9223372036854775807]");
    expect((await call("GET", "/v1/values")).text).toBe("[]");
  });

  it("writes timestamps as ISO-8601 with milliseconds or as Unix seconds, per field", async () => {
    const r = await call("POST", "/v1/echo", '{"at":"2024-07-13T09:54:48.253999Z","at_seconds":"2024-07-13T09:54:48.999Z"}');
    expect(r.text).toContain('"at":"2024-07-13T09:54:48.253Z"');
    expect(r.text).toContain('"at_seconds":1720864488');
  });

  it("writes decimal-scaled int64 exactly", async () => {
    // REST reads this field at its scale too, so the request is written in the same decimal form.
    const cases: [string, string][] = [["123.45", "123.45"], ["1.00", "1"], ["-0.01", "-0.01"], ["92233720368547758.07", "92233720368547758.07"]];
    for (const [cents, want] of cases) {
      const r = await call("POST", "/v1/echo", JSON.stringify({ cents }));
      expect(r.text, cents).toContain(`"cents":${want},`);
    }
  });

  it("maps codes to HTTP statuses and writes the profile's error envelope", async () => {
    const table: [number, number][] = [[3, 400], [5, 404], [6, 409], [7, 403], [8, 429], [9, 400], [10, 409], [11, 400], [12, 501], [13, 500], [14, 503], [16, 401]];
    for (const [code, status] of table) {
      const r = await call("GET", `/v1/shelves/s/items/i?fail_with_code=${code}`);
      expect(r.status, `code ${code}`).toBe(status);
      expect(JSON.parse(r.text)).toEqual({ code, message: `planned failure ${code}`, details: [] });
    }
    // An unexpected exception is a bug: 500 with a generic message, nothing of it on the wire.
    const bug = await call("GET", "/v1/shelves/s/items/i?fail_with_code=99");
    expect(bug.status).toBe(500);
    expect(bug.text).toBe('{"code":13,"message":"internal error","details":[]}');
  });
});

describe("built-in error envelopes", () => {
  it('"message" writes {"message": ...} with the mapped status', () => {
    const e = new ConnectError("limit must be between 1 and 25", Code.InvalidArgument);
    expect(messageEnvelope(e, { status: 400 })).toEqual({ status: 400, body: '{"message":"limit must be between 1 and 25"}' });
  });
});

describe("decimal-profiled int64 in requests", () => {
  it("reads exact decimals at the field's scale on REST, writing them back unchanged", async () => {
    const cases: [string, string][] = [["0.8", "0.8"], ['"1.25"', "1.25"], ["12", "12"], ["-0.05", "-0.05"], ['"92233720368547758.07"', "92233720368547758.07"], ["0.10", "0.1"]];
    for (const [sent, written] of cases) {
      const r = await call("POST", "/v1/echo", `{"cents":${sent}}`);
      expect(r.status, sent).toBe(200);
      expect(r.text, sent).toContain(`"cents":${written},`);
    }
  });

  it("refuses more decimal places than the scale, exponents and out-of-range values, never rounding", async () => {
    for (const sent of ["0.001", "1e2", '"1e2"', '"0x10"', "-0", '"92233720368547758.08"', '" 1.5"', "1.", ".5"]) {
      const r = await call("POST", "/v1/echo", `{"cents":${sent}}`);
      expect(r.status, sent).toBe(400);
      expect(JSON.parse(r.text).code, sent).toBe(3);
    }
  });

  it("reads them from query parameters the same way", async () => {
    const ok = await call("GET", "/v1/shelves/s/items/i?cents=0.8");
    expect(ok.text).toContain('"cents":0.8,');
    expect((await call("GET", "/v1/shelves/s/items/i?cents=0.001")).status).toBe(400);
    expect((await call("GET", "/v1/shelves/s/items/i?cents=1e2")).status).toBe(400);
  });

  it("keeps plain proto3 JSON (integers in the smallest unit) on the Connect path", async () => {
    const post = (body: string) =>
      fetch(`${server.url}/tally.testing.v1.TranscodingTestService/Echo`, { method: "POST", headers: { "content-type": "application/json" }, body });
    const ok = await post('{"cents":"80"}');
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { request: { cents: string } }).request.cents).toBe("80");
    expect((await post('{"cents":0.8}')).status).toBe(400);
  });
});
