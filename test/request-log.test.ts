import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import type { Logger } from "../src/transport/log.js";
import { PROTOCOLS, clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

/**
 * One log line per call, whatever the protocol: the procedure, the protocol
 * the client spoke (REST calls as `rest`, with their HTTP method and path),
 * the outcome and the tenant, and never a credential.
 */
const lines: Record<string, unknown>[] = [];
const logger: Logger = {
  info: (msg, fields) => lines.push({ msg, ...fields }),
  error: (msg, fields) => lines.push({ msg, level: "error", ...fields }),
};

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ logger, dialects: ["3plguys"] });
});
afterAll(async () => {
  await server?.close();
});

const rpcLines = () => lines.filter((l) => l["msg"] === "rpc");

describe("request log", () => {
  it.each(PROTOCOLS)("logs a %s call once, with its protocol, code and tenant", async (protocol) => {
    const before = rpcLines().length;
    const client = clientFor(LedgerService, server.url, protocol, server.adminKey);
    await client.getBalance({ accountId: "@world", asset: "USD" });
    const added = rpcLines().slice(before);
    expect(added).toHaveLength(1);
    expect(added[0]).toMatchObject({
      procedure: "/tally.ledger.v1.LedgerService/GetBalance",
      protocol: protocol.startsWith("connect") ? "connect" : protocol,
      code: "ok",
      tenant: "default",
    });
  });

  it("logs a REST call as protocol rest with its HTTP method and path, and no credential", async () => {
    const before = rpcLines().length;
    const secret = "not-a-real-secret-0123456789";
    const res = await fetch(`${server.url}/v0/balance?probe=1`, { headers: { authorization: `Bearer ${secret}` } });
    expect(res.status).toBe(401);
    const added = rpcLines().slice(before);
    expect(added).toHaveLength(1);
    expect(added[0]).toMatchObject({ protocol: "rest", http_method: "GET", path: "/v0/balance", code: "unauthenticated" });
    expect(String(added[0]!["procedure"])).toMatch(/^\/threeplguys\.v\d+\.\w+\/\w+$/);
    expect(JSON.stringify(lines)).not.toContain(secret);
  });
});
