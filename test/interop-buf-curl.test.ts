// Interop with an independent client: `buf curl` (connect-go inside) speaks
// gRPC, gRPC-Web and Connect to a real server on a real socket. It knows the
// schema only from proto/, so nothing of connect-es is shared with the server.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { bufCurl, killAllBufCurl, parseJsonDocuments, startBufCurlStream } from "./support/buf-curl.js";
import type { BufCurlOptions } from "./support/buf-curl.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

const BIG = "9007199254740993"; // 2^53 + 1: a JS number would print ...992
const GET_BALANCE = "tally.ledger.v1.LedgerService/GetBalance";
const WATCH_BALANCE = "tally.ledger.v1.LedgerService/WatchBalance";

/** Each way buf curl can reach the server, and what its verbose log must show for it. */
const VARIANTS: readonly { name: string; protocol: BufCurlOptions["protocol"]; http2: boolean; httpLine: string; contentType: RegExp }[] = [
  { name: "grpc (h2c)", protocol: "grpc", http2: true, httpLine: "HTTP/2.0 200", contentType: /^application\/grpc(\+proto)?$/ },
  { name: "grpc-web (HTTP/1.1)", protocol: "grpcweb", http2: false, httpLine: "HTTP/1.1 200", contentType: /^application\/grpc-web(\+proto)?$/ },
  { name: "connect (HTTP/1.1)", protocol: "connect", http2: false, httpLine: "HTTP/1.1 200", contentType: /^application\/proto$/ },
  { name: "connect (h2c)", protocol: "connect", http2: true, httpLine: "HTTP/2.0 200", contentType: /^application\/proto$/ },
];

let server: TestServer;
let admin: ReturnType<typeof clientFor<typeof LedgerService>>;

beforeAll(async () => {
  server = await startTestServer();
  admin = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
  await admin.createAccount({ id: "buf-big" });
  await admin.postTransfer({ idempotencyKey: "buf-big-fund", debitAccountId: "@world", creditAccountId: "buf-big", asset: "USD", amount: BigInt(BIG) });
});

afterAll(async () => {
  killAllBufCurl();
  await server?.close();
});

/** The response content type buf curl logged with -v (the `<` lines are the response). */
function responseContentType(stderr: string): string | undefined {
  return /< \(#\d+\) Content-Type: (\S+)/i.exec(stderr)?.[1];
}

/** buf curl prints an RPC error as one JSON document on stderr (call without -v). */
function errorJson(stderr: string): { code?: string; message?: string } {
  const docs = parseJsonDocuments(stderr).values;
  return (docs[docs.length - 1] ?? {}) as { code?: string; message?: string };
}

describe.each(VARIANTS)("buf curl over $name", (v) => {
  it("reads 2^53+1 back exactly", async () => {
    const r = await bufCurl(server.url, GET_BALANCE, {
      protocol: v.protocol,
      http2: v.http2,
      key: server.adminKey,
      data: { accountId: "buf-big", asset: "USD" },
      verbose: true,
    });
    expect(r.exitCode, r.stderr).toBe(0);
    // The protocol really spoken, from buf's own log: not a silent fallback.
    expect(r.stderr).toContain(v.httpLine);
    expect(responseContentType(r.stderr)).toMatch(v.contentType);
    // The exact digits as a JSON string in the raw output, before any parsing.
    expect(r.stdout).toMatch(new RegExp(`"posted":\\s*"${BIG}"`));
    const body = JSON.parse(r.stdout) as { balance: Record<string, unknown> };
    expect(body.balance).toMatchObject({ accountId: "buf-big", asset: "USD", posted: BIG, available: BIG });
  });

  it("exits with 8 × UNAUTHENTICATED (128) without a key, and with a wrong key", async () => {
    const none = await bufCurl(server.url, GET_BALANCE, { protocol: v.protocol, http2: v.http2, data: { accountId: "buf-big", asset: "USD" } });
    expect(none.exitCode, none.stderr).toBe(8 * 16);
    expect(errorJson(none.stderr).code).toBe("unauthenticated");
    expect(none.stdout).not.toContain(BIG);

    const wrong = await bufCurl(server.url, GET_BALANCE, {
      protocol: v.protocol,
      http2: v.http2,
      key: "tly_notarealkey_0000000000000000000000000000000000000000",
      data: { accountId: "buf-big", asset: "USD" },
    });
    expect(wrong.exitCode, wrong.stderr).toBe(8 * 16);
    expect(wrong.stdout).not.toContain(BIG);
  });

  it("exits with 8 × NOT_FOUND (40) for an unknown account", async () => {
    const r = await bufCurl(server.url, GET_BALANCE, {
      protocol: v.protocol,
      http2: v.http2,
      key: server.adminKey,
      data: { accountId: "no-such-account", asset: "USD" },
    });
    expect(r.exitCode, r.stderr).toBe(8 * 5);
    expect(errorJson(r.stderr).code).toBe("not_found");
  });
});

interface Snapshot {
  snapshot: { sequence: string; balances: { accountId: string; asset: string; posted: string; sequence: string }[] };
}
interface Change {
  change: {
    sequence: string;
    kind: string;
    delta: string;
    balance: { accountId: string; posted: string; available: string; sequence: string };
    transaction: { transferId: string; amount: string; sequence: string; balanceAfter: string };
  };
}

describe.each(VARIANTS)("buf curl WatchBalance over $name", (v) => {
  it("prints the snapshot, then each change with its delta and sequence, in order", async () => {
    const account = `buf-watch-${v.protocol}-${v.http2 ? "h2" : "h1"}`;
    await admin.createAccount({ id: account });
    const fund = await admin.postTransfer({ idempotencyKey: `${account}-fund`, debitAccountId: "@world", creditAccountId: account, asset: "USD", amount: 7n });
    const fundSeq = fund.transfer!.sequence;

    const stream = startBufCurlStream(server.url, WATCH_BALANCE, {
      protocol: v.protocol,
      http2: v.http2,
      key: server.adminKey,
      data: { accountId: account, asset: "USD" },
    });
    try {
      const [first] = (await stream.waitForMessages(1, 15_000)) as [Snapshot];
      expect(first.snapshot.balances).toHaveLength(1);
      expect(first.snapshot.balances[0]).toMatchObject({ accountId: account, asset: "USD", posted: "7" });
      // Nothing else touched the journal since the funding, so the snapshot is as of it.
      const snapSeq = BigInt(first.snapshot.sequence);
      expect(snapSeq).toBeGreaterThanOrEqual(fundSeq);
      expect(BigInt(first.snapshot.balances[0]!.sequence)).toBe(fundSeq);

      // Made while buf curl is connected: a debit of 3, then a credit of 2^53+1.
      const out = await admin.postTransfer({ idempotencyKey: `${account}-out`, debitAccountId: account, creditAccountId: "@world", asset: "USD", amount: 3n });
      const big = await admin.postTransfer({ idempotencyKey: `${account}-big`, debitAccountId: "@world", creditAccountId: account, asset: "USD", amount: BigInt(BIG) });

      const all = await stream.waitForMessages(3, 15_000);
      const [, debit, credit] = all as [Snapshot, Change, Change];
      expect(debit.change).toMatchObject({ kind: "BALANCE_CHANGE_KIND_DEBIT", delta: "-3" });
      expect(debit.change.balance).toMatchObject({ accountId: account, posted: "4", available: "4" });
      expect(debit.change.transaction).toMatchObject({ transferId: out.transfer!.id, amount: "-3", balanceAfter: "4" });
      expect(credit.change).toMatchObject({ kind: "BALANCE_CHANGE_KIND_CREDIT", delta: BIG });
      const after = (BigInt(BIG) + 4n).toString();
      expect(credit.change.balance).toMatchObject({ accountId: account, posted: after, available: after });
      expect(credit.change.transaction).toMatchObject({ transferId: big.transfer!.id, amount: BIG, balanceAfter: after });
      // The account is the credit side of `big`, whose sequence is its credit entry.
      expect(BigInt(credit.change.sequence)).toBe(big.transfer!.sequence);

      const seqs = [debit, credit].map((c) => BigInt(c.change.sequence));
      expect(seqs[0]!).toBeGreaterThan(snapSeq);
      expect(seqs[1]!).toBeGreaterThan(seqs[0]!);
      for (const c of [debit, credit]) {
        expect(c.change.transaction.sequence).toBe(c.change.sequence);
        expect(c.change.balance.sequence).toBe(c.change.sequence);
      }
      // Give a duplicate or stray event time to show up before the client is stopped.
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      await stream.stop();
    }
    // Exactly the snapshot and the two changes: no duplicate, no stray event.
    expect(stream.messages()).toHaveLength(3);
  });
});
