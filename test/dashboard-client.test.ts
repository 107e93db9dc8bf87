import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { BalanceSchema, WatchBalanceResponseSchema } from "../gen/tally/ledger/v1/ledger_pb.js";
import type { WatchBalanceResponse } from "../gen/tally/ledger/v1/ledger_pb.js";
import { formatAmount, parseAmount } from "../ui/src/amount.js";
import { watchBalances } from "../ui/src/balance-watch.js";
import type { WatchState } from "../ui/src/balance-watch.js";
import { PageStack } from "../ui/src/page-stack.js";
import { SubmissionKeys, randomKey } from "../ui/src/submission-keys.js";

// The dashboard's DOM-free modules (ui/src), run in Node.

describe("amounts", () => {
  it("are written exactly at the asset's scale, past 2^53", () => {
    expect(formatAmount(9007199254740993n, 6)).toBe("9007199254.740993");
    expect(formatAmount(-9007199254740993n, 6)).toBe("-9007199254.740993");
    expect(formatAmount(5n, 6)).toBe("0.000005");
    expect(formatAmount(-5n, 2)).toBe("-0.05");
    expect(formatAmount(0n, 6)).toBe("0.000000");
    expect(formatAmount(2n ** 63n - 1n, 0)).toBe("9223372036854775807");
    expect(formatAmount(-(2n ** 63n), 18)).toBe("-9.223372036854775808");
  });

  it("are read exactly, refusing more decimals than the scale and anything past int64", () => {
    expect(parseAmount("9007199254.740993", 6)).toBe(9007199254740993n);
    expect(parseAmount("1.5", 6)).toBe(1_500_000n);
    expect(parseAmount(" 12 ", 2)).toBe(1200n);
    expect(parseAmount("3.", 2)).toBe(300n);
    expect(parseAmount("9223372036854775807", 0)).toBe(2n ** 63n - 1n);
    expect(() => parseAmount("9223372036854775808", 0)).toThrow(/too large/);
    expect(() => parseAmount("0.001", 2)).toThrow(/at most 2 decimal places/);
    expect(() => parseAmount("-1", 2)).toThrow(/not a decimal amount/);
    expect(() => parseAmount("1e3", 2)).toThrow(/not a decimal amount/);
    expect(() => parseAmount("", 2)).toThrow(/not a decimal amount/);
  });
});

const snapshot = (sequence: bigint, posted: bigint): WatchBalanceResponse =>
  create(WatchBalanceResponseSchema, {
    event: { case: "snapshot", value: { sequence, balances: [create(BalanceSchema, { accountId: "a", asset: "USD", scale: 6, posted, sequence })] } },
  });
const change = (sequence: bigint, posted: bigint): WatchBalanceResponse =>
  create(WatchBalanceResponseSchema, {
    event: { case: "change", value: { sequence, delta: 1n, balance: create(BalanceSchema, { accountId: "a", asset: "USD", scale: 6, posted, sequence }) } },
  });

describe("the live balance watch", () => {
  it("reconnects after a failure with after_sequence = the last sequence seen, and stops on a final error", async () => {
    const requests: { accountId: string; afterSequence?: bigint }[] = [];
    const scripts: (() => AsyncGenerator<WatchBalanceResponse>)[] = [
      async function* () {
        yield snapshot(5n, 10n);
        yield change(6n, 11n);
        throw new ConnectError("the server is shutting down", Code.Unavailable);
      },
      async function* () {
        throw new ConnectError("Failed to fetch", Code.Unknown);
      },
      async function* () {
        yield snapshot(6n, 11n);
        yield change(9n, 14n);
        throw new ConnectError("invalid or revoked API key", Code.Unauthenticated);
      },
    ];
    const states: WatchState[] = [];
    const seen: bigint[] = [];
    const sleeps: number[] = [];
    const watch = watchBalances({
      watch: (req) => {
        requests.push(req);
        return scripts[requests.length - 1]!();
      },
      accountId: "a",
      onBalances: (b) => seen.push(b.get("USD")!.posted),
      onState: (s) => states.push(s),
      backoffMs: (n) => n * 100,
      sleep: async (ms) => void sleeps.push(ms),
    });
    await watch.done;
    expect(requests).toEqual([{ accountId: "a" }, { accountId: "a", afterSequence: 6n }, { accountId: "a", afterSequence: 6n }]);
    expect(seen).toEqual([10n, 11n, 11n, 14n]);
    expect(watch.afterSequence).toBe(9n);
    expect(watch.reconnects).toBe(2);
    // Backoff grows with failures in a row, and starts over once data flows.
    expect(sleeps).toEqual([100, 200]);
    expect(states).toEqual(["connecting", "live", "reconnecting", "reconnecting", "reconnecting", "reconnecting", "live", "failed"]);
  });

  it("stops when told, without reconnecting", async () => {
    let calls = 0;
    const watch = watchBalances({
      watch: (_req, { signal }) =>
        (async function* () {
          calls++;
          yield snapshot(1n, 1n);
          if (!signal.aborted) await new Promise((resolve) => signal.addEventListener("abort", resolve));
          throw new ConnectError("aborted", Code.Canceled);
        })(),
      accountId: "a",
      onBalances: () => watch.stop(),
    });
    await watch.done;
    expect(calls).toBe(1);
  });
});

describe("idempotency keys of the transfer form", () => {
  it("are new for each submission, and kept only for a retry of one whose outcome is unknown", () => {
    let n = 0;
    const keys = new SubmissionKeys(() => `k${++n}`);
    expect(keys.keyFor("same")).toBe("k1");
    // Sent again unchanged before any answer (a network failure): the same key.
    expect(keys.keyFor("same")).toBe("k1");
    keys.answered();
    expect(keys.keyFor("same")).toBe("k2");
    expect(keys.keyFor("changed")).toBe("k3");
  });

  it("carry 128 random bits", () => {
    expect(randomKey()).toMatch(/^ui-[0-9a-f]{32}$/);
    expect(randomKey()).not.toBe(randomKey());
  });
});

describe("the journal's page stack", () => {
  it("goes forward with next_page_token and back to the token of the page before", () => {
    const pages = new PageStack();
    expect([pages.current, pages.page, pages.hasNext, pages.hasPrevious]).toEqual(["", 1, false, false]);
    pages.loaded("t2");
    expect(pages.forward()).toBe("t2");
    pages.loaded("t3");
    expect(pages.forward()).toBe("t3");
    pages.loaded("");
    expect([pages.page, pages.hasNext, pages.hasPrevious]).toEqual([3, false, true]);
    expect(() => pages.forward()).toThrow();
    expect(pages.back()).toBe("t2");
    expect(pages.back()).toBe("");
    expect(pages.back()).toBe("");
    pages.loaded("t2");
    pages.forward();
    pages.reset();
    expect([pages.current, pages.page]).toEqual(["", 1]);
  });
});
