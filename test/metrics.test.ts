/**
 * /metrics over real sockets: Prometheus text that a strict parser reads and
 * that says what prom-client's registry holds; call counters that move by
 * exactly the calls made, by procedure, protocol and code; REST requests by
 * dialect and route template (never the raw path); group commits, open
 * streams per tenant and idempotent replays; a separate --metrics-port; and
 * --no-metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { PROTOCOLS, clientFor, startTestServer } from "./support/server.js";
import type { Protocol, TestServer } from "./support/server.js";
import { parsePrometheus, sampleValue, sumOf } from "./support/prometheus.js";
import type { Family } from "./support/prometheus.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ dialects: ["3plguys", "triport"] });
});
afterAll(async () => {
  await server?.close();
});

async function scrape(url = `${server.url}/metrics`): Promise<Map<string, Family>> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  return parsePrometheus(await res.text());
}

const GET_BALANCE = "/tally.ledger.v1.LedgerService/GetBalance";
const wireProtocol = (p: Protocol) => (p.startsWith("connect") ? "connect" : p);

describe("/metrics", () => {
  it("is Prometheus text a strict parser reads, with every family of the registry and Tally's series exactly as it holds them", async () => {
    // Some calls first, so that every family of Tally's has series.
    await clientFor(LedgerService, server.url, "grpc", server.adminKey).getBalance({ accountId: "@world", asset: "USD" });
    const registry = await server.tally.metrics!.registry.getMetricsAsJSON();
    const families = await scrape();
    expect(registry.length).toBeGreaterThan(20);
    for (const metric of registry) {
      const family = families.get(metric.name);
      expect(family, metric.name).toBeDefined();
      expect(family!.type).toBe(String(metric.type));
      expect(family!.help).toBe(metric.help);
      // Node's process metrics gain and lose series between two reads (active timers, GC kinds):
      // their families are checked above; Tally's series, which no read changes, one by one.
      if (!metric.name.startsWith("tally_")) continue;
      for (const v of metric.values) {
        const name = (v as { metricName?: string }).metricName ?? metric.name;
        const labels = Object.fromEntries(Object.entries(v.labels).map(([k, x]) => [k, String(x)]));
        const sample = family!.samples.find((s) => s.name === name && Object.keys(labels).length === Object.keys(s.labels).length && Object.entries(labels).every(([k, x]) => s.labels[k] === x));
        expect(sample, `${name} ${JSON.stringify(labels)}`).toBeDefined();
        expect(Object.is(sample!.value, v.value) || Math.abs(sample!.value - v.value) < 1e-9, name).toBe(true);
      }
    }
    // Node's process metrics and the build info come with it.
    expect(families.get("process_cpu_seconds_total")?.type).toBe("counter");
    expect(families.get("nodejs_eventloop_lag_seconds")?.type).toBe("gauge");
    expect(sampleValue(families, "tally_build_info")).toBe(1);
  });

  it("needs no key, answers HEAD, refuses other methods with 405", async () => {
    const head = await fetch(`${server.url}/metrics`, { method: "HEAD" });
    expect([head.status, head.headers.get("cache-control")]).toEqual([200, "no-store"]);
    const post = await fetch(`${server.url}/metrics`, { method: "POST" });
    expect([post.status, post.headers.get("allow")]).toEqual([405, "GET, HEAD"]);
  });

  it("counts calls by procedure, protocol and code, exactly", async () => {
    const before = await scrape();
    const made: Record<string, number> = {};
    for (const p of PROTOCOLS) {
      const client = clientFor(LedgerService, server.url, p, server.adminKey);
      const n = 3;
      for (let i = 0; i < n; i++) await client.getBalance({ accountId: "@world", asset: "USD" });
      made[wireProtocol(p)] = (made[wireProtocol(p)] ?? 0) + n;
      // And one refused call per protocol, by its code.
      await expect(clientFor(LedgerService, server.url, p, undefined).getBalance({ accountId: "@world", asset: "USD" })).rejects.toThrow();
    }
    const after = await scrape();
    for (const [protocol, n] of Object.entries(made)) {
      const labels = { procedure: GET_BALANCE, protocol, code: "ok" };
      expect(sampleValue(after, "tally_rpc_calls_total", labels) - sampleValue(before, "tally_rpc_calls_total", labels), protocol).toBe(n);
      expect(sampleValue(after, "tally_rpc_duration_seconds_count", labels) - sampleValue(before, "tally_rpc_duration_seconds_count", labels)).toBe(n);
      const refused = { procedure: GET_BALANCE, protocol, code: "unauthenticated" };
      expect(sampleValue(after, "tally_rpc_calls_total", refused) - sampleValue(before, "tally_rpc_calls_total", refused), protocol).toBe(PROTOCOLS.filter((p) => wireProtocol(p) === protocol).length);
    }
    // The histogram is cumulative and ends at +Inf = count.
    const labels = { procedure: GET_BALANCE, protocol: "grpc", code: "ok" };
    const buckets = after.get("tally_rpc_duration_seconds")!.samples.filter((s) => s.name.endsWith("_bucket") && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    const counts = buckets.map((b) => b.value);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    expect(buckets.at(-1)!.labels.le).toBe("+Inf");
    expect(buckets.at(-1)!.value).toBe(sampleValue(after, "tally_rpc_duration_seconds_count", labels));
    expect(sampleValue(after, "tally_rpc_duration_seconds_sum", labels)).toBeGreaterThan(0);
  });

  it("counts REST requests by dialect and route template, never by raw path", async () => {
    const before = await scrape();
    const auth = { authorization: `Bearer ${server.adminKey}` };
    // Ten different raw paths of one route: one series.
    for (let i = 0; i < 10; i++) {
      await fetch(`${server.url}/v1/billing/invoices/no-such-invoice-${i}/pay-from-balance`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: "{}" });
    }
    const after = await scrape();
    const rest = after.get("tally_rest_requests_total")!.samples.filter((s) => s.labels.dialect === "triport");
    expect(rest.map((s) => s.labels.route).every((r) => /^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|OTHER) \/\S*$/.test(r!) && !r!.includes("no-such-invoice"))).toBe(true);
    const moved = rest.filter((s) => s.value !== sampleValue(before, "tally_rest_requests_total", s.labels as Record<string, string>));
    expect(moved).toHaveLength(1);
    expect(moved[0]!.value - sampleValue(before, "tally_rest_requests_total", moved[0]!.labels as Record<string, string>)).toBe(10);
    expect(moved[0]!.labels.route).toMatch(/^POST \/v1\/billing\/invoices\/\{[a-z_]+\}\/pay-from-balance$/);
    // The transcoded calls are calls too, as protocol rest.
    expect(sumOf(after, "tally_rpc_calls_total", { protocol: "rest" }) - sumOf(before, "tally_rpc_calls_total", { protocol: "rest" })).toBe(10);
  });

  it("reports group commits, idempotent replays and open streams per tenant", async () => {
    const client = clientFor(LedgerService, server.url, "grpc", server.adminKey);
    await client.createAccount({ id: "metrics-alice" });
    const before = await scrape();
    const transfer = { idempotencyKey: "metrics-1", debitAccountId: "@world", creditAccountId: "metrics-alice", asset: "USD", amount: 5n, kind: "payment" };
    expect((await client.postTransfer(transfer)).replayed).toBe(false);
    expect((await client.postTransfer(transfer)).replayed).toBe(true);
    expect((await client.postTransfer(transfer)).replayed).toBe(true);
    const after = await scrape();
    const committed = { store: "sqlite", outcome: "committed" };
    expect(sampleValue(after, "tally_store_transactions_total", committed) - sampleValue(before, "tally_store_transactions_total", committed)).toBeGreaterThanOrEqual(1);
    expect(sampleValue(after, "tally_store_batch_writes_count", { store: "sqlite" })).toBeGreaterThan(0);
    expect(sampleValue(after, "tally_store_commit_duration_seconds_count", { store: "sqlite" })).toBe(sampleValue(after, "tally_store_batch_writes_count", { store: "sqlite" }));
    expect(sampleValue(after, "tally_idempotent_replays_total", { operation: "transfer" }) - sampleValue(before, "tally_idempotent_replays_total", { operation: "transfer" })).toBe(2);

    expect(sampleValue(after, "tally_open_streams", { tenant: "default" })).toBe(0);
    const abort = new AbortController();
    const stream = client.watchBalance({ accountId: "metrics-alice", asset: "USD" }, { signal: abort.signal });
    const it = stream[Symbol.asyncIterator]();
    await it.next(); // the snapshot: the stream is open
    expect(sampleValue(await scrape(), "tally_open_streams", { tenant: "default" })).toBe(1);
    abort.abort();
    await it.next().catch(() => undefined);
    await expect.poll(async () => sampleValue(await scrape(), "tally_open_streams", { tenant: "default" })).toBe(0);
  });
});

describe("--metrics-port and --no-metrics", () => {
  it("serves /metrics on its own port only, and the API port answers 404", async () => {
    const s = await startTestServer({ metricsPort: 0, dialects: [] });
    try {
      expect(s.tally.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      expect(sampleValue(await scrape(s.tally.metricsUrl), "tally_build_info")).toBe(1);
      expect((await fetch(`${s.url}/metrics`)).status).toBe(404);
      expect((await fetch(s.tally.metricsUrl!.replace("/metrics", "/other"))).status).toBe(404);
    } finally {
      await s.close();
    }
  });

  it("--no-metrics: no /metrics anywhere", async () => {
    const s = await startTestServer({ metrics: false, dialects: [] });
    try {
      expect(s.tally.metrics).toBeUndefined();
      expect((await fetch(`${s.url}/metrics`)).status).toBe(404);
    } finally {
      await s.close();
    }
  });
});
