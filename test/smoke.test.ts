import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { PROTOCOLS, clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.close();
});

describe.each(PROTOCOLS)("over %s", (protocol) => {
  it("stores and reads back 2^53+1 exactly", async () => {
    const client = clientFor(LedgerService, server.url, protocol, server.adminKey);
    const id = `acct-${protocol}`;
    await client.createAccount({ id });
    const amount = 9007199254740993n;
    const { transfer } = await client.postTransfer({
      idempotencyKey: `fund-${protocol}`,
      debitAccountId: "@world",
      creditAccountId: id,
      asset: "USD",
      amount,
    });
    expect(transfer?.amount).toBe(amount);
    const { balance } = await client.getBalance({ accountId: id, asset: "USD" });
    expect(balance?.posted).toBe(amount);
    expect(balance?.available).toBe(amount);
  });
});
