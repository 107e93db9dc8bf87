import { Code, ConnectError } from "@connectrpc/connect";
import type { Balance, BalanceChange, WatchBalanceResponse } from "../../gen/tally/ledger/v1/ledger_pb.js";

/** Where a watch stands: shown to the user, and read by the browser test. */
export type WatchState = "connecting" | "live" | "reconnecting" | "failed" | "stopped";

/** What {@link watchBalances} needs of a client: `ledger.watchBalance`. */
export type WatchCall = (
  request: { accountId: string; afterSequence?: bigint },
  options: { signal: AbortSignal },
) => AsyncIterable<WatchBalanceResponse>;

/** Options of {@link watchBalances}. */
export interface BalanceWatchOptions {
  readonly watch: WatchCall;
  readonly accountId: string;
  /** Every asset's balance, after each snapshot and each change. */
  readonly onBalances: (balances: ReadonlyMap<string, Balance>) => void;
  /** Each journal entry after the snapshot, in sequence order. */
  readonly onChange?: (change: BalanceChange) => void;
  readonly onState?: (state: WatchState, error?: ConnectError) => void;
  /** Delay before the n-th reconnection in a row (1-based), in ms. */
  readonly backoffMs?: (attempt: number) => number;
  /** Waits ms or until the signal fires (setTimeout by default; tests pass their own). */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** A running watch. */
export interface BalanceWatch {
  /** The last sequence seen: where a reconnection resumes. */
  readonly afterSequence: bigint | undefined;
  /** How many times the stream was opened again after an end or error. */
  readonly reconnects: number;
  stop(): void;
  /** Settles when the watch stops for good (stopped, or a failure retrying cannot fix). */
  readonly done: Promise<void>;
}

/** Errors that another attempt would only repeat: the key, the scope or the request is wrong. */
const FINAL = new Set([Code.Unauthenticated, Code.PermissionDenied, Code.NotFound, Code.InvalidArgument]);

/** 0.25 s, 0.5 s, 1 s … up to 8 s, each shortened by up to a half so that many tabs do not retry in step. */
export function defaultBackoffMs(attempt: number): number {
  const base = Math.min(8000, 250 * 2 ** Math.min(attempt - 1, 5));
  return base * (0.5 + Math.random() / 2);
}

/**
 * Keeps an account's balances per asset live through WatchBalance. When the
 * stream ends or fails (a restart, a dropped connection, the server's
 * shutdown asking clients to come back), it opens a new one with
 * `after_sequence` set to the last sequence it saw: the server then sends a
 * snapshot as of that point followed by every later change, so nothing is
 * missed or applied twice across the gap.
 */
export function watchBalances(options: BalanceWatchOptions): BalanceWatch {
  const { watch, accountId, onBalances, onChange, onState } = options;
  const backoff = options.backoffMs ?? defaultBackoffMs;
  const sleep = options.sleep ?? abortableSleep;
  const stopper = new AbortController();
  const signal = stopper.signal;
  const balances = new Map<string, Balance>();
  let afterSequence: bigint | undefined;
  let reconnects = 0;

  const run = async (): Promise<void> => {
    let failures = 0;
    for (let opened = 0; !signal.aborted; opened++) {
      if (opened > 0) reconnects++;
      onState?.(opened === 0 ? "connecting" : "reconnecting");
      let error: ConnectError | undefined;
      try {
        const request = afterSequence === undefined ? { accountId } : { accountId, afterSequence };
        for await (const res of watch(request, { signal })) {
          failures = 0;
          if (res.event.case === "snapshot") {
            // The snapshot is authoritative: it replaces the view, whatever came before.
            balances.clear();
            for (const b of res.event.value.balances) balances.set(b.asset, b);
            afterSequence = res.event.value.sequence;
            onState?.("live");
          } else if (res.event.case === "change") {
            const change = res.event.value;
            if (change.balance !== undefined) balances.set(change.balance.asset, change.balance);
            afterSequence = change.sequence;
            onChange?.(change);
          } else {
            continue;
          }
          onBalances(balances);
        }
      } catch (e) {
        if (signal.aborted) break;
        error = ConnectError.from(e);
        if (FINAL.has(error.code)) {
          onState?.("failed", error);
          return;
        }
      }
      if (signal.aborted) break;
      failures++;
      onState?.("reconnecting", error);
      await sleep(backoff(failures), signal);
    }
    onState?.("stopped");
  };
  const done = run();
  return {
    get afterSequence() {
      return afterSequence;
    },
    get reconnects() {
      return reconnects;
    },
    stop: () => stopper.abort(),
    done,
  };
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
