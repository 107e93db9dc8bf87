/**
 * Effective times on the wire: effective_at on writes and as_of on reads over
 * every protocol, the exact Connect JSON a plain HTTP client sees, and the
 * refusals a client's mistake gets (invalid_argument, nothing written).
 */
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerService, TransferStatus } from "../gen/tally/ledger/v1/ledger_pb.js";
import { refused } from "./support/ledger-kit.js";
import { PROTOCOLS, clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.close();
});

const at = (iso: string) => timestampFromDate(new Date(iso));

describe.each(PROTOCOLS)("over %s", (protocol) => {
  it("takes effective_at on writes and answers as_of reads", async () => {
    const client = clientFor(LedgerService, server.url, protocol, server.adminKey);
    const id = `hist-${protocol}`;
    const { account } = await client.createAccount({ id, effectiveAt: at("2024-01-01T00:00:00Z") });
    expect(account?.createdAt).toEqual(at("2024-01-01T00:00:00Z"));
    const { transfer } = await client.postTransfer({
      idempotencyKey: `h1-${protocol}`,
      debitAccountId: "@world",
      creditAccountId: id,
      asset: "USD",
      amount: 100n,
      effectiveAt: at("2024-02-01T00:00:00Z"),
    });
    expect(transfer?.effectiveAt).toEqual(at("2024-02-01T00:00:00Z"));
    expect(transfer!.createdAt!.seconds).toBeGreaterThan(transfer!.effectiveAt!.seconds);
    await client.postTransfer({ idempotencyKey: `h2-${protocol}`, debitAccountId: "@world", creditAccountId: id, asset: "USD", amount: 5n });
    expect((await client.getBalance({ accountId: id, asset: "USD", asOf: at("2024-01-31T23:59:59Z") })).balance?.posted).toBe(0n);
    const feb = (await client.getBalance({ accountId: id, asset: "USD", asOf: at("2024-02-01T00:00:00Z") })).balance;
    expect(feb?.posted).toBe(100n);
    expect(feb?.updatedAt).toEqual(at("2024-02-01T00:00:00Z"));
    expect((await client.getBalance({ accountId: id, asset: "USD" })).balance?.posted).toBe(105n);
    expect((await client.getMany({ accountId: id, asOf: at("2024-03-01T00:00:00Z") })).balances.map((b) => b.posted)).toEqual([100n]);

    const early = await refused(
      client.postTransfer({ idempotencyKey: `h3-${protocol}`, debitAccountId: "@world", creditAccountId: id, asset: "USD", amount: 1n, effectiveAt: at("2024-02-01T00:00:00Z") }),
    );
    expect([early.code, early.reason]).toEqual([Code.FailedPrecondition, "effective_at_too_early"]);
    const nanos = await refused(
      client.postTransfer({
        idempotencyKey: `h4-${protocol}`,
        debitAccountId: "@world",
        creditAccountId: id,
        asset: "USD",
        amount: 1n,
        effectiveAt: { seconds: 1_800_000_000n, nanos: 1 },
      }),
    );
    expect([nanos.code, nanos.reason]).toEqual([Code.InvalidArgument, "invalid_effective_at"]);
    const future = await refused(client.getBalance({ accountId: id, asset: "USD", asOf: at("2999-01-01T00:00:00Z") }));
    expect([future.code, future.reason]).toEqual([Code.InvalidArgument, "as_of_in_future"]);
    expect((await client.getBalance({ accountId: id, asset: "USD" })).balance?.posted).toBe(105n);
  });

  it("settles holds at a past effective time, never before the hold", async () => {
    const client = clientFor(LedgerService, server.url, protocol, server.adminKey);
    const id = `holds-${protocol}`;
    await client.createAccount({ id, effectiveAt: at("2024-01-01T00:00:00Z") });
    const hold = async (key: string) =>
      (await client.postTransfer({ idempotencyKey: `${key}-${protocol}`, debitAccountId: "@world", creditAccountId: id, asset: "USD", amount: 50n, pending: true, effectiveAt: at("2024-03-01T00:00:00Z") })).transfer!;
    const h1 = await hold("hold1");
    const h2 = await hold("hold2");
    const tooEarly = await refused(client.postPendingTransfer({ transferId: h1.id, effectiveAt: at("2024-02-01T00:00:00Z") }));
    expect([tooEarly.code, tooEarly.reason]).toEqual([Code.FailedPrecondition, "effective_at_too_early"]);
    const posted = await client.postPendingTransfer({ transferId: h1.id, amount: 20n, effectiveAt: at("2024-03-02T00:00:00Z") });
    expect([posted.transfer?.status, posted.transfer?.postedAmount]).toEqual([TransferStatus.POSTED, 20n]);
    const future = await refused(client.voidPendingTransfer({ transferId: h2.id, effectiveAt: at("2999-01-01T00:00:00Z") }));
    expect([future.code, future.reason]).toEqual([Code.InvalidArgument, "effective_at_in_future"]);
    await client.voidPendingTransfer({ transferId: h2.id, effectiveAt: at("2024-03-03T00:00:00Z") });
    const asOf = async (iso: string) => (await client.getBalance({ accountId: id, asset: "USD", asOf: at(iso) })).balance!;
    expect([(await asOf("2024-03-01T12:00:00Z")).posted, (await asOf("2024-03-01T12:00:00Z")).pendingIn]).toEqual([0n, 100n]);
    expect([(await asOf("2024-03-02T12:00:00Z")).posted, (await asOf("2024-03-02T12:00:00Z")).pendingIn]).toEqual([20n, 50n]);
    expect([(await asOf("2024-03-03T00:00:00Z")).posted, (await asOf("2024-03-03T00:00:00Z")).pendingIn]).toEqual([20n, 0n]);
  });
});

describe("Connect JSON, as a plain HTTP client sees it", () => {
  it("prints effective_at as RFC 3339 and reads as_of from RFC 3339", async () => {
    const post = async (method: string, body: unknown) => {
      const res = await fetch(`${server.url}/tally.ledger.v1.LedgerService/${method}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${server.adminKey}` },
        body: JSON.stringify(body),
      });
      return { status: res.status, json: (await res.json()) as Record<string, any> };
    };
    await post("CreateAccount", { id: "hist-json", effectiveAt: "2024-05-01T00:00:00Z" });
    const t = await post("PostTransfer", {
      idempotencyKey: "hj-1",
      debitAccountId: "@world",
      creditAccountId: "hist-json",
      asset: "USD",
      amount: "42",
      effectiveAt: "2024-05-02T10:00:00.000001Z",
    });
    expect(t.status).toBe(200);
    expect(t.json.transfer.effectiveAt).toBe("2024-05-02T10:00:00.000001Z");
    const b = await post("GetBalance", { accountId: "hist-json", asset: "USD", asOf: "2024-05-02T10:00:00.000001Z" });
    expect(b.json.balance).toMatchObject({ posted: "42", updatedAt: "2024-05-02T10:00:00.000001Z" });
    const before = await post("GetBalance", { accountId: "hist-json", asset: "USD", asOf: "2024-05-02T10:00:00Z" });
    expect(before.json.balance.posted ?? "0").toBe("0");
    const bad = await post("GetBalance", { accountId: "hist-json", asset: "USD", asOf: "1969-12-31T23:59:59Z" });
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe("invalid_argument");
  });
});
