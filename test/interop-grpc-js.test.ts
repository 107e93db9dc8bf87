// Interop with a second, independent gRPC stack: @grpc/grpc-js (its own HTTP/2
// framing, metadata and status handling) with message types built by
// proto-loader from the .proto text, against a real server on a real socket.
import { fromBinary } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import type { Client as GrpcClient, ClientReadableStream } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorDetailSchema, LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import {
  bearerMetadata,
  grpcJsClient,
  grpcJsError,
  grpcJsServerStream,
  grpcJsUnary,
  loadLedgerServiceForGrpcJs,
  statusDetails,
} from "./support/grpc-js.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

const BIG = "9007199254740993"; // 2^53 + 1

/** Balance as proto-loader builds it with longs: String. */
interface BalanceJs {
  accountId: string;
  asset: string;
  posted: string;
  available: string;
  sequence: string;
}
interface TransferJs {
  id: string;
  amount: string;
  sequence: string;
}
interface WatchEventJs {
  event: "snapshot" | "change";
  snapshot?: { sequence: string; balances: BalanceJs[] };
  change?: { sequence: string; kind: string; delta: string; balance: BalanceJs; transaction: { transferId: string; sequence: string; amount: string } };
}

let server: TestServer;
let grpcClient: GrpcClient;
const streams = new Set<ClientReadableStream<unknown>>();

beforeAll(async () => {
  server = await startTestServer();
  grpcClient = grpcJsClient(loadLedgerServiceForGrpcJs(), server.url);
});

afterAll(async () => {
  for (const s of streams) s.cancel();
  grpcClient?.close();
  await server?.close();
});

const auth = () => bearerMetadata(server.adminKey);

describe("grpc-js unary calls", () => {
  it("writes and reads 2^53+1 exactly, as a string on the grpc-js side", async () => {
    await grpcJsUnary(grpcClient, "createAccount", { id: "gjs-big" }, auth());
    const posted = await grpcJsUnary<{ transfer: TransferJs; replayed: boolean }>(
      grpcClient,
      "postTransfer",
      { idempotencyKey: "gjs-big-1", debitAccountId: "@world", creditAccountId: "gjs-big", asset: "USD", amount: BIG },
      auth(),
    );
    expect(posted.transfer.amount).toBe(BIG);
    expect(posted.replayed).toBe(false);

    const { balance } = await grpcJsUnary<{ balance: BalanceJs }>(grpcClient, "getBalance", { accountId: "gjs-big", asset: "USD" }, auth());
    expect(balance).toMatchObject({ accountId: "gjs-big", asset: "USD", posted: BIG, available: BIG });

    // And the other stack agrees on what grpc-js wrote: the amount was not rounded on the way in.
    const connect = clientFor(LedgerService, server.url, "grpc", server.adminKey);
    const viaConnect = await connect.getBalance({ accountId: "gjs-big", asset: "USD" });
    expect(viaConnect.balance?.posted).toBe(9007199254740993n);
  });

  it("maps an unknown account to NOT_FOUND with an ErrorDetail reason", async () => {
    const err = await grpcJsError(grpcJsUnary(grpcClient, "getBalance", { accountId: "gjs-nope", asset: "USD" }, auth()));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toContain("gjs-nope");
    const st = statusDetails(err);
    expect(st?.code).toBe(status.NOT_FOUND);
    const detail = st?.details.find((d) => d.typeUrl.endsWith("/tally.ledger.v1.ErrorDetail"));
    expect(detail).toBeDefined();
    expect(fromBinary(ErrorDetailSchema, detail!.value).reason).toBe("account_not_found");
  });

  it("maps a missing or bad key to UNAUTHENTICATED", async () => {
    const none = await grpcJsError(grpcJsUnary(grpcClient, "getBalance", { accountId: "gjs-big", asset: "USD" }, bearerMetadata(undefined)));
    expect(none.code).toBe(status.UNAUTHENTICATED);
    // grpc-js decodes grpc-message with decodeURI, which leaves %3A (connect-es
    // encodes ':' too); decodeURIComponent gives the text the server sent.
    expect(decodeURIComponent(none.details)).toContain("missing credentials");

    const bad = await grpcJsError(
      grpcJsUnary(grpcClient, "getBalance", { accountId: "gjs-big", asset: "USD" }, bearerMetadata("tly_notarealkey_0000000000000000000000000000000000")),
    );
    expect(bad.code).toBe(status.UNAUTHENTICATED);
  });

  it("maps amount 0 on PostTransfer to INVALID_ARGUMENT and writes nothing", async () => {
    await grpcJsUnary(grpcClient, "createAccount", { id: "gjs-zero" }, auth());
    const err = await grpcJsError(
      grpcJsUnary(grpcClient, "postTransfer", { idempotencyKey: "gjs-zero-1", debitAccountId: "@world", creditAccountId: "gjs-zero", asset: "USD", amount: "0" }, auth()),
    );
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    const { balance } = await grpcJsUnary<{ balance: BalanceJs }>(grpcClient, "getBalance", { accountId: "gjs-zero", asset: "USD" }, auth());
    expect(balance.posted).toBe("0");
    expect(balance.sequence).toBe("0");
  });

  it("maps a reused idempotency key with a different body to ALREADY_EXISTS", async () => {
    await grpcJsUnary(grpcClient, "createAccount", { id: "gjs-idem" }, auth());
    const req = { idempotencyKey: "gjs-idem-1", debitAccountId: "@world", creditAccountId: "gjs-idem", asset: "USD", amount: "10" };
    const first = await grpcJsUnary<{ transfer: TransferJs; replayed: boolean }>(grpcClient, "postTransfer", req, auth());
    const again = await grpcJsUnary<{ transfer: TransferJs; replayed: boolean }>(grpcClient, "postTransfer", req, auth());
    expect(again.replayed).toBe(true);
    expect(again.transfer.id).toBe(first.transfer.id);
    const err = await grpcJsError(grpcJsUnary(grpcClient, "postTransfer", { ...req, amount: "11" }, auth()));
    expect(err.code).toBe(status.ALREADY_EXISTS);
    const { balance } = await grpcJsUnary<{ balance: BalanceJs }>(grpcClient, "getBalance", { accountId: "gjs-idem", asset: "USD" }, auth());
    expect(balance.posted).toBe("10");
  });
});

/** Collects a grpc-js stream's messages; `until` resolves once `n` arrived. */
function collect(stream: ClientReadableStream<unknown>) {
  streams.add(stream);
  const got: WatchEventJs[] = [];
  let ended: { error?: { code: number } } | undefined;
  const waiters: (() => void)[] = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  stream.on("data", (m: WatchEventJs) => {
    got.push(m);
    wake();
  });
  stream.on("error", (e: { code: number }) => {
    ended = { error: e };
    wake();
  });
  stream.on("end", () => {
    ended ??= {};
    wake();
  });
  return {
    got,
    ended: () => ended,
    async until(n: number, timeoutMs = 10_000): Promise<WatchEventJs[]> {
      const deadline = Date.now() + timeoutMs;
      while (got.length < n) {
        if (ended) throw new Error(`stream ended after ${got.length} of ${n} messages: ${JSON.stringify(ended)}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`only ${got.length} of ${n} messages in ${timeoutMs} ms`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, left);
          waiters.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
      return got;
    },
    cancel() {
      stream.cancel();
      streams.delete(stream);
    },
  };
}

describe("grpc-js WatchBalance", () => {
  const account = "gjs-watch";
  const N = 20;
  // What the account's journal should look like: one entry per transfer.
  const expected: { transferId: string; delta: bigint; postedAfter: bigint; sequence: string }[] = [];

  it("streams the snapshot, then every change in order", async () => {
    await grpcJsUnary(grpcClient, "createAccount", { id: account }, auth());
    const fund = await grpcJsUnary<{ transfer: TransferJs }>(
      grpcClient,
      "postTransfer",
      { idempotencyKey: `${account}-fund`, debitAccountId: "@world", creditAccountId: account, asset: "USD", amount: "1000" },
      auth(),
    );

    const watch = collect(grpcJsServerStream(grpcClient, "watchBalance", { accountId: account, asset: "USD" }, auth()));
    try {
      const [snap] = await watch.until(1);
      expect(snap!.event).toBe("snapshot");
      expect(snap!.snapshot!.balances).toHaveLength(1);
      expect(snap!.snapshot!.balances[0]).toMatchObject({ accountId: account, posted: "1000", sequence: fund.transfer.sequence });

      // Alternating credits and debits, each awaited, so the journal order is known.
      let balance = 1000n;
      for (let i = 0; i < N; i++) {
        const credit = i % 2 === 0;
        const amount = BigInt(i + 1);
        const r = await grpcJsUnary<{ transfer: TransferJs & { debitBalanceAfter: string; creditBalanceAfter: string } }>(
          grpcClient,
          "postTransfer",
          {
            idempotencyKey: `${account}-${i}`,
            debitAccountId: credit ? "@world" : account,
            creditAccountId: credit ? account : "@world",
            asset: "USD",
            amount: amount.toString(),
          },
          auth(),
        );
        balance += credit ? amount : -amount;
        expect(BigInt(credit ? r.transfer.creditBalanceAfter : r.transfer.debitBalanceAfter)).toBe(balance);
        expected.push({ transferId: r.transfer.id, delta: credit ? amount : -amount, postedAfter: balance, sequence: "" });
      }

      const all = await watch.until(N + 1);
      const changes = all.slice(1);
      expect(changes.every((m) => m.event === "change")).toBe(true);
      let last = BigInt(snap!.snapshot!.sequence);
      changes.forEach((m, i) => {
        const c = m.change!;
        const want = expected[i]!;
        expect(c.transaction.transferId).toBe(want.transferId);
        expect(BigInt(c.delta)).toBe(want.delta);
        expect(c.kind).toBe(want.delta > 0n ? "BALANCE_CHANGE_KIND_CREDIT" : "BALANCE_CHANGE_KIND_DEBIT");
        expect(BigInt(c.balance.posted)).toBe(want.postedAfter);
        expect(BigInt(c.sequence)).toBeGreaterThan(last);
        expect(c.balance.sequence).toBe(c.sequence);
        last = BigInt(c.sequence);
        want.sequence = c.sequence;
      });

      // No extra event trails the last change.
      await new Promise((r) => setTimeout(r, 300));
      expect(watch.got).toHaveLength(N + 1);
      const { balance: now } = await grpcJsUnary<{ balance: BalanceJs }>(grpcClient, "getBalance", { accountId: account, asset: "USD" }, auth());
      expect(now.posted).toBe(balance.toString());
      expect(now.sequence).toBe(expected[N - 1]!.sequence);
    } finally {
      watch.cancel();
    }
  });

  it("resumes after a sequence with exactly the changes after it", async () => {
    expect(expected).toHaveLength(N); // filled by the previous test
    const k = 9; // resume after the 10th change
    const resumeAt = expected[k]!.sequence;
    const watch = collect(grpcJsServerStream(grpcClient, "watchBalance", { accountId: account, asset: "USD", afterSequence: resumeAt }, auth()));
    try {
      const all = await watch.until(1 + (N - k - 1));
      const [snap, ...changes] = all;
      expect(snap!.event).toBe("snapshot");
      expect(snap!.snapshot!.sequence).toBe(resumeAt);
      // The snapshot is the balance as of the resume point, not as of now.
      expect(snap!.snapshot!.balances[0]).toMatchObject({ posted: expected[k]!.postedAfter.toString(), sequence: resumeAt });
      expect(changes.map((m) => m.change!.sequence)).toEqual(expected.slice(k + 1).map((e) => e.sequence));
      expect(changes.map((m) => BigInt(m.change!.delta))).toEqual(expected.slice(k + 1).map((e) => e.delta));
      await new Promise((r) => setTimeout(r, 300));
      expect(watch.got).toHaveLength(1 + (N - k - 1));
    } finally {
      watch.cancel();
    }
  });

  it("refuses a resume point past the journal head with OUT_OF_RANGE", async () => {
    const watch = collect(grpcJsServerStream(grpcClient, "watchBalance", { accountId: account, asset: "USD", afterSequence: "999999999" }, auth()));
    try {
      const deadline = Date.now() + 10_000;
      while (watch.ended() === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(watch.ended()?.error?.code).toBe(status.OUT_OF_RANGE);
      expect(watch.got).toHaveLength(0);
    } finally {
      watch.cancel();
    }
  });
});
