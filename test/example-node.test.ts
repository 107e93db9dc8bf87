import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { BEYOND_DOUBLE, expectFirstRun, runExample } from "./support/examples.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

/** examples/node/ledger-client.ts, run as examples/README.md prints it, against a real Tally. */
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

const run = (args: readonly string[]) =>
  runExample(process.execPath, ["--import", "tsx", "examples/node/ledger-client.ts", "--url", server.url, ...args], { TALLY_KEY: server.adminKey });

describe("the Node example", () => {
  it.each(["connect", "grpc", "grpc-web"])("round-trips 2^53 + 1 exactly over %s: transfer, replay, balance and stream", async (protocol) => {
    const account = `node-${protocol}`;
    expectFirstRun(await run(["--protocol", protocol, "--account", account, "--amount", String(BEYOND_DOUBLE)]), account, BEYOND_DOUBLE);
    // Read back by another client: the ledger holds the exact amount, not a rounded one.
    const { balance } = await clientFor(LedgerService, server.url, "connect-json", server.adminKey).getBalance({ accountId: account, asset: "USD" });
    expect(balance?.posted).toBe(BEYOND_DOUBLE);
  });

  it("run again with the same idempotency key, changes nothing", async () => {
    const args = ["--account", "node-again", "--amount", "5", "--idempotency-key", "example-node-again"];
    await run(args);
    const again = await run(args);
    expect(again).toContain("account node-again exists");
    expect(again.match(/replayed=true/g)).toHaveLength(2);
    expect(again).toContain("balance node-again USD posted=5 available=5");
  });
});
