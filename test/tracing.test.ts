/**
 * OpenTelemetry spans over real sockets, seen by the SDK's
 * InMemorySpanExporter: one server span per call, on every protocol and
 * REST, named after the procedure, with its protocol and code; a child of
 * the caller's span when a valid traceparent came, whose span id the answer
 * names; one span per store transaction, a child of the call whose write it
 * carries; and tracing switched on by the standard OTEL_* variables alone,
 * exporting OTLP to a collector.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { SpanKind } from "@opentelemetry/api";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { exporterNames } from "../src/transport/observe/tracing.js";
import { PROTOCOLS, clientFor, spawnServer, startTestServer, tempDir } from "./support/server.js";
import type { TestServer } from "./support/server.js";

const exporter = new InMemorySpanExporter();
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ tracing: { exporter, processor: "simple" }, dialects: ["3plguys"] });
});
afterAll(async () => {
  await server?.close();
});

const GET_BALANCE = "tally.ledger.v1.LedgerService/GetBalance";
const serverSpans = () => exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.SERVER);

/** The spans exported once `n` server spans are in (export is asynchronous). */
async function spans(n: number): Promise<ReadableSpan[]> {
  await expect.poll(() => serverSpans().length).toBeGreaterThanOrEqual(n);
  // Nothing more arrives for the calls made.
  await new Promise((r) => setTimeout(r, 50));
  return serverSpans();
}

describe("call spans", () => {
  it.each(PROTOCOLS)("one per call over %s, with the procedure, protocol and code", async (protocol) => {
    exporter.reset();
    const client = clientFor(LedgerService, server.url, protocol, server.adminKey);
    await client.getBalance({ accountId: "@world", asset: "USD" });
    await expect(clientFor(LedgerService, server.url, protocol, undefined).getBalance({ accountId: "@world", asset: "USD" })).rejects.toThrow();
    const [ok, refused, ...more] = await spans(2);
    expect(more).toEqual([]);
    const wire = protocol.startsWith("connect") ? "connect" : protocol;
    expect(ok!.name).toBe(GET_BALANCE);
    expect(ok!.attributes).toMatchObject({ "rpc.service": "tally.ledger.v1.LedgerService", "rpc.method": "GetBalance", "tally.protocol": wire, "rpc.grpc.status_code": 0 });
    expect(refused!.name).toBe(GET_BALANCE);
    expect(refused!.attributes).toMatchObject({ "tally.protocol": wire, "rpc.grpc.status_code": 16, "tally.code": "unauthenticated" });
    expect(ok!.parentSpanContext).toBeUndefined();
  });

  it("one per REST call, as protocol rest", async () => {
    exporter.reset();
    const res = await fetch(`${server.url}/v0/balance`, { headers: { authorization: `Bearer ${server.adminKey}` } });
    await res.text();
    const [span, ...more] = await spans(1);
    expect(more).toEqual([]);
    expect(span!.attributes).toMatchObject({ "tally.protocol": "rest" });
  });

  it("continues the caller's trace, and the answer names the server's span", async () => {
    exporter.reset();
    const trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let answered: string | null = null;
    await clientFor(LedgerService, server.url, "grpc", server.adminKey).getBalance(
      { accountId: "@world", asset: "USD" },
      { headers: { traceparent: `00-${trace}-00f067aa0ba902b7-01` }, onHeader: (h) => (answered = h.get("traceparent")) },
    );
    const [span] = await spans(1);
    expect(span!.spanContext().traceId).toBe(trace);
    expect(span!.parentSpanContext).toMatchObject({ traceId: trace, spanId: "00f067aa0ba902b7", isRemote: true });
    expect(answered).toBe(`00-${trace}-${span!.spanContext().spanId}-01`);
  });

  it("one span per store transaction, a child of the call that wrote", async () => {
    const client = clientFor(LedgerService, server.url, "grpc", server.adminKey);
    await client.createAccount({ id: "traced-bob" });
    exporter.reset();
    await client.postTransfer({ idempotencyKey: "traced-1", debitAccountId: "@world", creditAccountId: "traced-bob", asset: "USD", amount: 7n, kind: "payment" });
    const [call] = await spans(1);
    const tx = exporter.getFinishedSpans().filter((s) => s.name === "tally.store.transaction");
    expect(tx).toHaveLength(1);
    expect(tx[0]!.attributes).toMatchObject({ "tally.store": "sqlite", "tally.writes": 1 });
    expect(tx[0]!.parentSpanContext?.spanId).toBe(call!.spanContext().spanId);
    expect(tx[0]!.spanContext().traceId).toBe(call!.spanContext().traceId);
  });
});

describe("OTEL_* variables", () => {
  it("read as the spec says", () => {
    expect(exporterNames({})).toBeUndefined();
    expect(exporterNames({ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://x" })).toBeUndefined();
    expect(exporterNames({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://x" })).toEqual(["otlp"]);
    expect(exporterNames({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://x/v1/traces" })).toEqual(["otlp"]);
    expect(exporterNames({ OTEL_TRACES_EXPORTER: "otlp, console" })).toEqual(["otlp", "console"]);
    expect(exporterNames({ OTEL_TRACES_EXPORTER: "otlp", OTEL_SDK_DISABLED: "true" })).toBeUndefined();
    expect(() => exporterNames({ OTEL_TRACES_EXPORTER: "jaeger" })).toThrow(/unknown exporter "jaeger"/);
  });

  it("switch tracing on in `tally serve`: spans reach an OTLP collector", async () => {
    const posts: { path: string; type: string; body: Buffer }[] = [];
    const collector = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        posts.push({ path: req.url ?? "", type: String(req.headers["content-type"]), body: Buffer.concat(chunks) });
        res.writeHead(200, { "content-type": "application/x-protobuf" });
        res.end();
      });
    });
    await new Promise<void>((r) => collector.listen(0, "127.0.0.1", () => r()));
    const { dir, remove } = tempDir();
    try {
      const port = (collector.address() as AddressInfo).port;
      const child = await spawnServer(`${dir}/tally.db`, [], {
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
        OTEL_BSP_SCHEDULE_DELAY: "50",
        OTEL_SERVICE_NAME: "tally-under-test",
      });
      try {
        await clientFor(LedgerService, child.url, "grpc", child.adminKey).getBalance({ accountId: "@world", asset: "USD" });
        await expect.poll(() => posts.some((p) => p.body.includes("GetBalance")), { timeout: 15_000 }).toBe(true);
        const post = posts.find((p) => p.body.includes("GetBalance"))!;
        expect(post.path).toBe("/v1/traces");
        expect(post.type).toBe("application/x-protobuf");
        expect(post.body.includes("tally-under-test")).toBe(true);
      } finally {
        await child.stop();
      }
    } finally {
      collector.close();
      remove();
    }
  });
});
