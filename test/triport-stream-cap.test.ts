import { Code } from "@connectrpc/connect";
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService, KeyScope } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { BalanceService } from "../gen/triport/v1/triport_pb.js";
import { refused } from "./support/ledger-kit.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { Protocol, TestServer } from "./support/server.js";
import { WatchStream } from "./support/watch-stream.js";

// Triport's event stream over Connect and gRPC counts against the same
// per-tenant cap as its SSE route and WatchBalance: no protocol is a way around it.
const CAP = 2;
let server: TestServer;
let readKey = "";

beforeAll(async () => {
  server = await startTestServer({ dialects: ["triport"], streamsPerTenant: CAP });
  await clientFor(LedgerService, server.url, "connect-binary", server.adminKey).createAccount({ id: "cap-user" });
  const admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
  readKey = (await admin.createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: "cap-user", label: "cap" })).secret;
});
afterAll(async () => {
  await server?.close();
});

/** Opens Triport's event stream and waits for its snapshot, so the server certainly holds the slot. */
async function openEvents(protocol: Protocol): Promise<() => void> {
  const abort = new AbortController();
  const it = clientFor(BalanceService, server.url, protocol, readKey).streamBalanceEvents({}, { signal: abort.signal })[Symbol.asyncIterator]();
  const first = await it.next();
  expect(first.value?.event.case).toBe("snapshot");
  return () => abort.abort();
}

describe.each(["connect-binary", "grpc"] as const)("Triport StreamBalanceEvents over %s", (protocol) => {
  it("is refused past the per-tenant cap, shares the cap with WatchBalance, and frees its slot when closed", async () => {
    const open = [await openEvents(protocol), await openEvents(protocol)];
    const r = await refused(openEvents(protocol));
    expect([r.code, r.reason]).toEqual([Code.ResourceExhausted, "too_many_streams"]);
    // WatchBalance is counted in the same cap.
    const watch = new WatchStream(clientFor(LedgerService, server.url, protocol, readKey), { accountId: "cap-user" });
    const w = await refused(watch.next());
    expect(w.reason).toBe("too_many_streams");
    open.shift()!();
    // The slot is released when the server sees the cancel.
    let again: (() => void) | undefined;
    for (let i = 0; i < 100 && !again; i++) {
      again = await openEvents(protocol).catch(() => undefined);
      if (!again) await new Promise((res) => setTimeout(res, 20));
    }
    expect(again).toBeDefined();
    for (const close of [...open, again!]) close();
  });
});

/** Opens GET /v1/balance/events over HTTP/1.1; resolves with the status once the headers (and, for 200, the snapshot frame) are in. */
function openSse(): Promise<{ status: number; body: string; close: () => void }> {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, path: "/v1/balance/events", headers: { accept: "text/event-stream", authorization: `Bearer ${readKey}` } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
          if (res.statusCode !== 200 || body.includes("\n\n")) resolve({ status: res.statusCode ?? 0, body, close: () => req.destroy() });
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, close: () => req.destroy() }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("Triport events over SSE", () => {
  it("count against the same cap as the stream over Connect and gRPC", async () => {
    const sse = await openSse();
    expect(sse.status).toBe(200);
    expect(sse.body).toMatch(/^id: \d+\nevent: snapshot\ndata: \{/);
    const grpc = await openEvents("grpc");
    // Two open (one SSE, one gRPC): a third is refused on every protocol.
    const third = await openSse();
    expect(third.status).toBe(429);
    expect(JSON.parse(third.body)).toEqual({ error: "too many streams" });
    const r = await refused(openEvents("connect-binary"));
    expect(r.reason).toBe("too_many_streams");
    sse.close();
    let again: (() => void) | undefined;
    for (let i = 0; i < 100 && !again; i++) {
      again = await openEvents("connect-binary").catch(() => undefined);
      if (!again) await new Promise((res) => setTimeout(res, 20));
    }
    expect(again).toBeDefined();
    again!();
    grpc();
  });
});
