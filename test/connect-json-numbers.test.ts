import { connect as h2connect } from "node:http2";
import { gzipSync } from "node:zlib";
import { fromBinary } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { compressionGzip, createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorDetailSchema, LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { bearer, clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

/**
 * T7 (numbers) and the JSON parts of T8/T9, over the Connect JSON path with raw
 * HTTP, against a real server and a real SQLite file. Every refused probe is
 * followed by a check that nothing was written. The tests share one server and
 * run in order: account "exact" holds 2^53+1, then 2^53+2.
 */

const INT64_MAX = "9223372036854775807";
const SERVICE = "/tally.ledger.v1.LedgerService";
const MiB = 1024 * 1024;

let server: TestServer;
let admin: Client<typeof LedgerService>;
let keySeq = 0;

beforeAll(async () => {
  server = await startTestServer();
  admin = clientFor(LedgerService, server.url, "grpc", server.adminKey);
  // Each overflow probe has its own source, so that only the credit side can overflow.
  for (const id of ["src", "bigsrc", "gbigsrc"]) await admin.createAccount({ id, overdraftUnlimited: true });
  for (const id of ["exact", "probe", "big", "gbig", "gzip", "web", "h2json"]) await admin.createAccount({ id });
});
afterAll(async () => {
  await server?.close();
});

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The body as JSON, or undefined when it is not JSON. */
  readonly json: Record<string, unknown> | undefined;
}

/** Every response body, checked as it arrives: no stack trace or source path may leak. */
const seen: string[] = [];
function record(text: string): void {
  seen.push(text);
  expect(text).not.toMatch(/\n\s+at |node_modules|\.ts:\d+|\.js:\d+/);
}

async function answer(res: Response): Promise<Answer> {
  const text = await res.text();
  record(text);
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** A Connect unary POST with a raw body. */
async function post(method: string, body: string | Uint8Array, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${server.url}${SERVICE}/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${server.adminKey}`, ...headers },
    body,
  });
  return answer(res);
}

/** A Connect unary GET with a raw query. */
async function get(method: string, query: string): Promise<Answer> {
  const res = await fetch(`${server.url}${SERVICE}/${method}?connect=v1&${query}`, {
    headers: { authorization: `Bearer ${server.adminKey}` },
  });
  return answer(res);
}

/** A PostTransfer body with the amount spliced in as raw JSON text. */
function transfer(amount: string, credit = "probe", key = `k${++keySeq}`, debit = "src"): string {
  return `{"idempotencyKey":"${key}","debitAccountId":"${debit}","creditAccountId":"${credit}","asset":"USD","amount":${amount}}`;
}

/** Posted balance as its exact decimal string (proto3 JSON omits zero). */
async function posted(account: string): Promise<string> {
  const a = await post("GetBalance", JSON.stringify({ accountId: account, asset: "USD" }));
  expect(a.status).toBe(200);
  return ((a.json!.balance as Record<string, unknown>).posted as string | undefined) ?? "0";
}

async function journalLength(account: string): Promise<number> {
  const a = await post("ListTransactions", JSON.stringify({ accountId: account, pageSize: 1000 }));
  expect(a.status).toBe(200);
  return ((a.json!.transactions as unknown[] | undefined) ?? []).length;
}

/** The ErrorDetail reason of a Connect JSON error, decoded from its binary value. */
function reasonOf(a: Answer): string | undefined {
  const details = a.json?.details as { type: string; value: string }[] | undefined;
  const d = details?.find((x) => x.type === "tally.ledger.v1.ErrorDetail");
  return d === undefined ? undefined : fromBinary(ErrorDetailSchema, base64Decode(d.value)).reason;
}

/** Asserts a Connect unary error exactly as connect-es writes one. */
function expectConnectError(a: Answer, status: number, code: string): void {
  expect(a.status, a.text).toBe(status);
  expect(a.headers.get("content-type")).toBe("application/json");
  expect(a.json?.code).toBe(code);
  expect(typeof a.json?.message).toBe("string");
  for (const k of Object.keys(a.json!)) expect(["code", "message", "details"]).toContain(k);
}

/** Nothing reached the ledger: the probe account is still empty. */
async function expectProbeUntouched(): Promise<void> {
  expect(await posted("probe")).toBe("0");
  expect(await journalLength("probe")).toBe(0);
}

describe("exact int64 over Connect JSON", () => {
  it('accepts "9007199254740993" and reads it back exactly over POST and GET', async () => {
    const a = await post("PostTransfer", transfer('"9007199254740993"', "exact"));
    expect(a.status, a.text).toBe(200);
    expect(a.text).toContain('"amount":"9007199254740993"');
    expect(a.text).toContain('"creditBalanceAfter":"9007199254740993"');
    expect(await posted("exact")).toBe("9007199254740993");
    const g = await get("GetBalance", `encoding=json&message=${encodeURIComponent('{"accountId":"exact","asset":"USD"}')}`);
    expect(g.status, g.text).toBe(200);
    expect(g.text).toContain('"posted":"9007199254740993"');
    expect(await journalLength("exact")).toBe(1);
  });

  it("refuses the JSON number 9007199254740993 with invalid_argument and writes nothing", async () => {
    const body = transfer("9007199254740993", "probe", "rounding");
    const a = await post("PostTransfer", body);
    expectConnectError(a, 400, "invalid_argument");
    expect(a.json!.message).toBe("amount: 64-bit integers must be decimal strings (or JSON integers up to 2^53-1), got 9007199254740993");
    expect(reasonOf(a)).toBe("invalid_int64");
    await expectProbeUntouched();
    // The idempotency key was not consumed either: the same key with a string amount is new.
    const again = await post("PostTransfer", transfer('"1"', "exact", "rounding"));
    expect(again.status, again.text).toBe(200);
    expect(again.json!.replayed).toBeUndefined();
  });

  const refused = [
    '"9223372036854775808"',
    '"-9223372036854775809"',
    "1e19",
    "1e400",
    '"0x10"',
    '" 12"',
    '"12 "',
    '"+5"',
    '"1e3"',
    "1e3",
    "12.0",
    '"12.0"',
    '"-0"',
    "-0",
    '"١٢"',
    '""',
    "true",
    "9007199254740992",
    '{"value":"5"}',
    '["5"]',
  ];
  it.each(refused)("refuses amount %s with invalid_argument naming the field, and writes nothing", async (probe) => {
    const a = await post("PostTransfer", transfer(probe));
    expectConnectError(a, 400, "invalid_argument");
    expect(a.json!.message as string).toMatch(/^amount: /);
    expect(reasonOf(a)).toBe("invalid_int64");
    await expectProbeUntouched();
  });

  it.each(["null", '"0"', "0", '"-5"', "-5", '"-9223372036854775808"'])(
    "refuses amount %s (accepted as a number, refused by the ledger as not positive)",
    async (probe) => {
      const a = await post("PostTransfer", transfer(probe));
      expectConnectError(a, 400, "invalid_argument");
      expect(reasonOf(a)).toBe("invalid_amount");
      await expectProbeUntouched();
    },
  );

  it("refuses crediting past INT64_MAX with out_of_range (int64_overflow) and leaves the balance", async () => {
    const first = await post("PostTransfer", transfer(`"${INT64_MAX}"`, "big", "max", "bigsrc"));
    expect(first.status, first.text).toBe(200);
    expect(await posted("big")).toBe(INT64_MAX);
    expect(await posted("bigsrc")).toBe(`-${INT64_MAX}`);
    const over = await post("PostTransfer", transfer('"1"', "big", "over", "bigsrc"));
    expectConnectError(over, 400, "out_of_range");
    expect(reasonOf(over)).toBe("int64_overflow");
    expect(await posted("big")).toBe(INT64_MAX);
    expect(await journalLength("big")).toBe(1);
    expect(await posted("bigsrc")).toBe(`-${INT64_MAX}`);
  });

  it("checks each transfer of a batch, naming its index", async () => {
    const body = `{"transfers":[${transfer('"1"')},${transfer("1e3")}]}`;
    const a = await post("PostTransfers", body);
    expectConnectError(a, 400, "invalid_argument");
    expect(a.json!.message as string).toMatch(/^transfers\[1\]\.amount: /);
    await expectProbeUntouched();
  });
});

describe("malformed JSON over Connect POST", () => {
  const bodies: [string, string | Uint8Array, string][] = [
    ["truncated", '{"idempotencyKey":"t","amount":"1"', "invalid_json"],
    ["trailing garbage", `${transfer('"1"')}x`, "invalid_json"],
    ["duplicate amount keys", `{"idempotencyKey":"dup","debitAccountId":"src","creditAccountId":"probe","asset":"USD","amount":"1","amount":"1000"}`, "duplicate_json_key"],
    [
      "proto and JSON name for one field",
      '{"idempotencyKey":"dup2","debitAccountId":"src","creditAccountId":"probe","credit_account_id":"probe","asset":"USD","amount":"1"}',
      "duplicate_json_key",
    ],
    ["100,000 open brackets", "[".repeat(100_000), "json_too_deep"],
    ["deep nesting inside a field", `{"metadata":${'{"a":'.repeat(70)}1${"}".repeat(70)}}`, "json_too_deep"],
    ["byte order mark", `\ufeff${transfer('"1"')}`, "invalid_json"],
    ["lone surrogate", transfer('"1"').replace('"asset"', '"note":"\\ud800","asset"'), "invalid_json"],
    ["raw NUL in a string", transfer('"1"').replace('"asset"', '"note":"a\u0000b","asset"'), "invalid_json"],
  ];
  it.each(bodies)("refuses %s with 400 invalid_argument and writes nothing", async (_name, body, reason) => {
    const a = await post("PostTransfer", body);
    expectConnectError(a, 400, "invalid_argument");
    expect(reasonOf(a)).toBe(reason);
    await expectProbeUntouched();
  });

  it("refuses invalid UTF-8 rather than replacing it", async () => {
    const body = Buffer.concat([
      Buffer.from('{"idempotencyKey":"utf8","debitAccountId":"src","creditAccountId":"probe","asset":"USD","amount":"1","note":"'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}'),
    ]);
    const a = await post("PostTransfer", body);
    expectConnectError(a, 400, "invalid_argument");
    expect(a.json!.message).toMatch(/UTF-8/);
    await expectProbeUntouched();
  });

  it("answers a body over 1 MiB with resource_exhausted (HTTP 429), with or without Content-Length", async () => {
    const big = `{"note":"${"n".repeat(MiB)}"}`;
    const a = await post("PostTransfer", big);
    expectConnectError(a, 429, "resource_exhausted");
    // connect-es's own words: the size is known from Content-Length.
    expect(a.json).toEqual({ code: "resource_exhausted", message: `message size ${Buffer.byteLength(big)} is larger than configured readMaxBytes 1048576` });
    // Chunked: no Content-Length, so the limit is found while reading; the
    // server must stop reading, not swallow all 64 MiB.
    const chunk = new TextEncoder().encode(" ".repeat(64 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 64 * MiB) controller.close();
        else {
          sent += chunk.length;
          controller.enqueue(chunk);
        }
      },
    });
    const res = await fetch(`${server.url}${SERVICE}/PostTransfer`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${server.adminKey}` },
      body: stream,
      duplex: "half",
    } as RequestInit);
    const b = await answer(res);
    expectConnectError(b, 429, "resource_exhausted");
    expect(sent).toBeLessThan(64 * MiB);
    await expectProbeUntouched();
  });

  it.each(["1.1", "2"] as const)("gives connect-es's own JSON client resource_exhausted over HTTP/%s, and keeps serving it", async (httpVersion) => {
    const client = createClient(
      LedgerService,
      createConnectTransport({ baseUrl: server.url, httpVersion, useBinaryFormat: false, interceptors: [bearer(server.adminKey)] }),
    );
    const err = await client
      .postTransfer({ idempotencyKey: `big-${httpVersion}`, debitAccountId: "src", creditAccountId: "probe", asset: "USD", amount: 1n, note: "n".repeat(2 * MiB) })
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err?.code).toBe(Code.ResourceExhausted);
    expect(err?.rawMessage).toMatch(/^message size (\d+ )?is larger than configured readMaxBytes 1048576$/);
    // The same client (and, over HTTP/2, the same connection) still works.
    const { balance } = await client.getBalance({ accountId: "probe", asset: "USD" });
    expect(balance?.posted).toBe(0n);
    await expectProbeUntouched();
  });

  it("answers 415 from connect to a body that is not application/json", async () => {
    for (const ct of ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1"]) {
      const a = await post("PostTransfer", transfer('"1"'), { "content-type": ct });
      expect(a.status, ct).toBe(415);
    }
    await expectProbeUntouched();
  });

  it("still serves after every malformed request", async () => {
    expect(await posted("exact")).toBe("9007199254740994");
  });
});

describe("compressed Connect JSON is checked too", () => {
  it("refuses a gzip body holding the JSON number 2^53+1, and accepts the string form exactly", async () => {
    const bad = await post("PostTransfer", gzipSync(transfer("9007199254740993", "gzip")), { "content-encoding": "gzip" });
    expectConnectError(bad, 400, "invalid_argument");
    expect(reasonOf(bad)).toBe("invalid_int64");
    expect(await journalLength("gzip")).toBe(0);
    const good = await post("PostTransfer", gzipSync(transfer('"9007199254740993"', "gzip")), { "content-encoding": "gzip" });
    expect(good.status, good.text).toBe(200);
    expect(await posted("gzip")).toBe("9007199254740993");
  });

  it("refuses a gzip bomb after readMaxBytes of output, and corrupt gzip as invalid_argument", async () => {
    const bomb = gzipSync(`{"note":"${" ".repeat(8 * MiB)}"}`);
    expect(bomb.length).toBeLessThan(MiB);
    const a = await post("PostTransfer", bomb, { "content-encoding": "gzip" });
    expectConnectError(a, 429, "resource_exhausted");
    const corrupt = await post("PostTransfer", gzipSync(transfer('"1"')).subarray(0, 20), { "content-encoding": "gzip" });
    expectConnectError(corrupt, 400, "invalid_argument");
    await expectProbeUntouched();
  });

  it("leaves an unsupported encoding to connect, which refuses it", async () => {
    const a = await post("PostTransfer", transfer("1e3"), { "content-encoding": "zstd" });
    expectConnectError(a, 501, "unimplemented");
    await expectProbeUntouched();
  });
});

describe("Connect GET", () => {
  // No side-effect-free method takes a 64-bit field, so the number probes cannot
  // travel by GET; these show that GET goes through the same strict parser.
  const msg = (json: string) => `encoding=json&message=${encodeURIComponent(json)}`;
  const b64 = (bytes: Uint8Array | string) => Buffer.from(bytes).toString("base64url");

  it("refuses what the strict parser refuses, with 400 invalid_argument", async () => {
    const cases: [string, string][] = [
      [msg('{"accountId":"probe","accountId":"exact","asset":"USD"}'), "duplicate_json_key"],
      [msg(`{"accountId":${"[".repeat(100)}`), "json_too_deep"],
      [msg('{"accountId":"\\ud800","asset":"USD"}'), "invalid_json"],
      [msg('{"accountId":"probe"'), "invalid_json"],
      [`encoding=json&base64=1&message=${b64('{"asset":"USD","asset":"EUR"}')}`, "duplicate_json_key"],
      [`encoding=json&base64=1&compression=gzip&message=${b64(gzipSync('{"asset":"USD","asset":"EUR"}'))}`, "duplicate_json_key"],
    ];
    for (const [query, reason] of cases) {
      const a = await get("GetBalance", query);
      expectConnectError(a, 400, "invalid_argument");
      expect(reasonOf(a), query).toBe(reason);
    }
  });

  it("refuses undecodable base64, gzip and protobuf with 400 (connect alone answers 500)", async () => {
    for (const query of [
      "encoding=json&base64=1&message=!!!",
      "encoding=proto&base64=1&message=!!!",
      "encoding=proto&message=%FF%FF%FF",
      `encoding=proto&base64=1&message=${b64(new Uint8Array([0x0a, 0x05, 0x61]))}`,
      `encoding=json&base64=1&compression=gzip&message=${b64(gzipSync("{}").subarray(0, 12))}`,
    ]) {
      const a = await get("GetBalance", query);
      expectConnectError(a, 400, "invalid_argument");
    }
  });

  it("leaves a GET on a method with side effects to connect's 405, and writes nothing", async () => {
    const a = await get("PostTransfer", msg(transfer('"1"')));
    expect(a.status).toBe(405);
    await expectProbeUntouched();
  });

  it("serves connect-es's own GET requests, plain and compressed", async () => {
    for (const sendCompression of [undefined, "gzip"] as const) {
      const client = createClient(
        LedgerService,
        createConnectTransport({
          baseUrl: server.url,
          httpVersion: "1.1",
          useBinaryFormat: false,
          useHttpGet: true,
          interceptors: [bearer(server.adminKey)],
          ...(sendCompression ? { sendCompression: compressionGzip, compressMinBytes: 0 } : {}),
        }),
      );
      const { balance } = await client.getBalance({ accountId: "exact", asset: "USD" });
      expect(balance?.posted).toBe(9007199254740994n);
    }
  });
});

describe("enveloped JSON (gRPC-Web and gRPC) is checked too", () => {
  const envelope = (json: string) => {
    const payload = Buffer.from(json);
    const out = Buffer.alloc(5 + payload.length);
    out.writeUInt32BE(payload.length, 1);
    payload.copy(out, 5);
    return out;
  };

  /** grpc-status from gRPC-Web headers or its trailer frame. */
  async function grpcWeb(json: string): Promise<{ status: string | null; message: string; body: Buffer }> {
    const res = await fetch(`${server.url}${SERVICE}/PostTransfer`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+json", authorization: `Bearer ${server.adminKey}` },
      body: envelope(json),
    });
    const body = Buffer.from(await res.arrayBuffer());
    record(body.toString("latin1"));
    let status = res.headers.get("grpc-status");
    let message = decodeURIComponent(res.headers.get("grpc-message") ?? "");
    for (let i = 0; i + 5 <= body.length; ) {
      const len = body.readUInt32BE(i + 1);
      if (body[i] === 0x80) {
        const trailer = body.subarray(i + 5, i + 5 + len).toString();
        status = /grpc-status:\s*(\d+)/i.exec(trailer)?.[1] ?? status;
        message = decodeURIComponent(/grpc-message:\s*(.*)\r/i.exec(trailer)?.[1] ?? message);
      }
      i += 5 + len;
    }
    return { status, message, body };
  }

  it("refuses the JSON number 2^53+1 over gRPC-Web JSON with INVALID_ARGUMENT, and takes the string", async () => {
    const bad = await grpcWeb(transfer("9007199254740993", "web"));
    expect(bad.status).toBe(String(Code.InvalidArgument));
    expect(bad.message).toMatch(/^amount: 64-bit integers/);
    expect(await journalLength("web")).toBe(0);
    const good = await grpcWeb(transfer('"9007199254740993"', "web"));
    expect(good.status).toBe("0");
    expect(good.body.toString()).toContain('"amount":"9007199254740993"');
    expect(await posted("web")).toBe("9007199254740993");
  });

  it("checks envelopes split across chunks, compressed envelopes, and empty ones", async () => {
    // One byte per chunk: the checker must reassemble the envelope before judging it.
    const bytes = envelope(transfer('"7"', "web"));
    let i = 0;
    const res = await fetch(`${server.url}${SERVICE}/PostTransfer`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+json", authorization: `Bearer ${server.adminKey}` },
      body: new ReadableStream<Uint8Array>({
        pull(c) {
          if (i < bytes.length) c.enqueue(bytes.subarray(i, ++i));
          else c.close();
        },
      }),
      duplex: "half",
    } as RequestInit);
    expect(res.headers.get("grpc-status") ?? "0").toBe("0");
    expect(Buffer.from(await res.arrayBuffer()).toString()).toContain('"amount":"7"');

    const gz = gzipSync(transfer("9007199254740993", "web"));
    const compressed = Buffer.concat([Buffer.from([1, 0, 0, 0, 0]), gz]);
    compressed.writeUInt32BE(gz.length, 1);
    for (const [headers, code] of [
      [{ "grpc-encoding": "gzip" }, Code.InvalidArgument],
      [{}, Code.InvalidArgument],
    ] as const) {
      const r = await fetch(`${server.url}${SERVICE}/PostTransfer`, {
        method: "POST",
        headers: { "content-type": "application/grpc-web+json", authorization: `Bearer ${server.adminKey}`, ...headers },
        body: compressed,
      });
      const text = Buffer.from(await r.arrayBuffer()).toString("latin1");
      record(text);
      expect(r.headers.get("grpc-status") ?? /grpc-status:\s*(\d+)/.exec(text)?.[1]).toBe(String(code));
    }
    const empty = await grpcWeb("");
    expect(empty.status).toBe(String(Code.InvalidArgument));
    expect(await posted("web")).toBe("9007199254741000");
  });

  it("refuses a 64-bit JSON number in a Connect streaming request (WatchBalance.after_sequence)", async () => {
    for (const afterSequence of ["9007199254740993", "1e3", '"0x10"']) {
      const res = await fetch(`${server.url}${SERVICE}/WatchBalance`, {
        method: "POST",
        headers: { "content-type": "application/connect+json", authorization: `Bearer ${server.adminKey}` },
        body: envelope(`{"accountId":"probe","afterSequence":${afterSequence}}`),
        signal: AbortSignal.timeout(5000),
      });
      const body = Buffer.from(await res.arrayBuffer());
      record(body.toString("latin1"));
      // The only frame is the end-stream message (flag 0x02) carrying the error.
      expect(body[0]).toBe(0x02);
      const end = JSON.parse(body.subarray(5, 5 + body.readUInt32BE(1)).toString()) as { error?: { code: string; message: string } };
      expect(end.error?.code).toBe("invalid_argument");
      expect(end.error?.message).toMatch(/^after_sequence: 64-bit integers must be decimal strings/);
    }
  });

  it("refuses the JSON number 2^53+1 over gRPC JSON (HTTP/2) with INVALID_ARGUMENT", async () => {
    const session = h2connect(server.url);
    try {
      const result = await new Promise<{ status: string | undefined; message: string | undefined }>((resolve, reject) => {
        const req = session.request({
          ":method": "POST",
          ":path": `${SERVICE}/PostTransfer`,
          "content-type": "application/grpc+json",
          te: "trailers",
          authorization: `Bearer ${server.adminKey}`,
        });
        let headers: Record<string, unknown> = {};
        let trailers: Record<string, unknown> = {};
        req.on("response", (h) => (headers = h));
        req.on("trailers", (t) => (trailers = t));
        req.on("data", (d: Buffer) => record(d.toString("latin1")));
        req.on("error", reject);
        req.on("close", () =>
          resolve({
            status: (trailers["grpc-status"] ?? headers["grpc-status"]) as string | undefined,
            message: (trailers["grpc-message"] ?? headers["grpc-message"]) as string | undefined,
          }),
        );
        req.end(envelope(transfer("9007199254740993", "h2json")));
      });
      expect(result.status).toBe(String(Code.InvalidArgument));
      expect(decodeURIComponent(result.message ?? "")).toMatch(/^amount: 64-bit integers/);
    } finally {
      session.close();
    }
    expect(await journalLength("h2json")).toBe(0);
  });
});

describe("undecodable binary messages are the client's error, not an internal one", () => {
  // A truncated varint: connect alone reports this as internal (HTTP 500 / gRPC 13).
  const garbage = new Uint8Array([0x28, 0xff, 0xff, 0xff]);

  it("refuses them over Connect binary POST, plain and gzip, with 400 invalid_argument and writes nothing", async () => {
    for (const [body, headers] of [
      [garbage, {}],
      [gzipSync(garbage), { "content-encoding": "gzip" }],
      [gzipSync(garbage).subarray(0, 8), { "content-encoding": "gzip" }],
    ] as const) {
      const a = await post("PostTransfer", body, { "content-type": "application/proto", ...headers });
      expectConnectError(a, 400, "invalid_argument");
    }
    await expectProbeUntouched();
  });

  it("refuses them over gRPC-Web binary with INVALID_ARGUMENT", async () => {
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, garbage.length]), garbage]);
    const res = await fetch(`${server.url}${SERVICE}/PostTransfer`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", authorization: `Bearer ${server.adminKey}` },
      body: frame,
    });
    const text = Buffer.from(await res.arrayBuffer()).toString("latin1");
    record(text);
    expect(res.headers.get("grpc-status") ?? /grpc-status:\s*(\d+)/.exec(text)?.[1]).toBe(String(Code.InvalidArgument));
    await expectProbeUntouched();
  });
});

describe("the same probes over gRPC binary", () => {
  it("refuses crediting past INT64_MAX with OUT_OF_RANGE (int64_overflow) and leaves the balance", async () => {
    await admin.postTransfer({ idempotencyKey: "g-max", debitAccountId: "gbigsrc", creditAccountId: "gbig", asset: "USD", amount: BigInt(INT64_MAX) });
    const err = await admin
      .postTransfer({ idempotencyKey: "g-over", debitAccountId: "gbigsrc", creditAccountId: "gbig", asset: "USD", amount: 1n })
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err?.code).toBe(Code.OutOfRange);
    expect(err?.findDetails(ErrorDetailSchema)[0]?.reason).toBe("int64_overflow");
    const { balance } = await admin.getBalance({ accountId: "gbig", asset: "USD" });
    expect(balance?.posted).toBe(BigInt(INT64_MAX));
    const { transactions } = await admin.listTransactions({ accountId: "gbig", pageSize: 1000 });
    expect(transactions).toHaveLength(1);
  });

  it.each([0n, -1n, -5n, -(2n ** 63n)])("refuses amount %s with INVALID_ARGUMENT and writes nothing", async (amount) => {
    const err = await admin
      .postTransfer({ idempotencyKey: `g-neg-${amount}`, debitAccountId: "src", creditAccountId: "probe", asset: "USD", amount })
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.findDetails(ErrorDetailSchema)[0]?.reason).toBe("invalid_amount");
    await expectProbeUntouched();
  });
});

describe("responses", () => {
  it("were all checked for stack traces and source paths", () => {
    // record() asserts on each body as it arrives; this guards against a helper that skipped it.
    expect(seen.length).toBeGreaterThan(50);
  });
});
