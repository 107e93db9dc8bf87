import type { StreamLimiter } from "../../domain/stream-limiter.js";
import { create } from "@bufbuild/protobuf";
import {
  BalanceChangeSchema,
  BalanceSchema,
  StreamBalanceEventsResponseSchema,
} from "../../../gen/triport/v1/triport_pb.js";
import type { StreamBalanceEventsResponse } from "../../../gen/triport/v1/triport_pb.js";
import { LedgerError } from "../../domain/errors.js";
import type { Ledger, WatchEvent } from "../../domain/ledger.js";
import { timestampFromMicros } from "../../services/convert.js";
import type { RestStreamContext, RestStreamer } from "../dialect.js";
import { userOf } from "./errors.js";
import { ASSET, balanceMessage, entryKind, toMicro, usdScale } from "./money.js";

/** What the event stream needs. */
export interface EventDeps {
  readonly ledger: Ledger;
  /** Fires when the server shuts down: open streams end. */
  readonly shutdown: AbortSignal;
}

/** Where a stream starts. */
export interface EventQuery {
  readonly tenantId: string;
  readonly accountId: string;
  /** Resume after this event id (journal sequence); undefined starts at the head. */
  readonly after: bigint | undefined;
  readonly signal: AbortSignal;
}

const INT64_MAX = 9223372036854775807n;

/**
 * The Triport event stream over Ledger.watch, the same rule as WatchBalance:
 * a `snapshot` as of S (the head, or `after`), then every POSTED change of the
 * user's USD balance after S, each with its journal sequence as id. Pending
 * holds and voids do not move the posted balance, so they send nothing.
 */
export async function* balanceEvents(deps: EventDeps, q: EventQuery): AsyncGenerator<StreamBalanceEventsResponse> {
  const { ledger } = deps;
  let after = q.after;
  if (!(await accountExists(ledger, q.tenantId, q.accountId))) {
    // A user Tally has no account for yet: subscribe first (so no commit slips
    // between the check and the wait), send a zero snapshot, and wait for the
    // account's first entry. Every entry it will ever have comes after this
    // point, so the watch then replays it from sequence 0.
    const sub = ledger.feed.subscribe(q.tenantId, q.accountId);
    try {
      if (!(await accountExists(ledger, q.tenantId, q.accountId))) {
        yield create(StreamBalanceEventsResponseSchema, { id: 0n, event: { case: "snapshot", value: balanceMessage(0n, null, ledger.now()) } });
        while (!q.signal.aborted && !(await accountExists(ledger, q.tenantId, q.accountId))) await sub.wait(q.signal);
        if (q.signal.aborted) return;
        after = 0n;
        // The watch's own snapshot (as of 0, zero) would repeat the one just sent.
        yield* changes(deps, q, after, true);
        return;
      }
    } finally {
      sub.close();
    }
  }
  yield* changes(deps, q, after, false);
}

async function* changes(deps: EventDeps, q: EventQuery, after: bigint | undefined, skipSnapshot: boolean): AsyncGenerator<StreamBalanceEventsResponse> {
  const { ledger } = deps;
  const scale = await usdScale(ledger, q.tenantId);
  const open = (afterSequence: bigint | undefined) =>
    ledger.watch({ tenantId: q.tenantId, accountId: q.accountId, asset: ASSET, afterSequence, signal: q.signal });
  let watch = open(after);
  let first: IteratorResult<WatchEvent>;
  try {
    first = await watch.next();
  } catch (e) {
    // A Last-Event-ID from another journal (or the future) cannot be resumed
    // from; a fresh snapshot is always a correct baseline.
    if (!(e instanceof LedgerError && e.reason === "sequence_out_of_range") || after === undefined) throw e;
    watch = open(undefined);
    first = await watch.next();
  }
  try {
    for (let r = first; !r.done; r = await watch.next()) {
      const ev = r.value;
      if (ev.type === "snapshot") {
        if (skipSnapshot) continue;
        const b = ev.balances[0]!;
        yield create(StreamBalanceEventsResponseSchema, {
          id: ev.sequence,
          event: { case: "snapshot", value: balanceMessage(toMicro(b.posted, scale), b.lockedAt, b.updatedAt) },
        });
        continue;
      }
      const e = ev.entry;
      if (e.status !== "POSTED") continue;
      const change = create(BalanceChangeSchema, {
        deltaMicro: toMicro(e.amount, scale),
        newBalanceMicro: toMicro(e.postedAfter, scale),
        kind: entryKind(e.kind, e.amount),
        entryId: e.sequence,
        at: timestampFromMicros(e.createdAt),
      });
      yield create(StreamBalanceEventsResponseSchema, {
        id: e.sequence,
        event: e.amount < 0n ? { case: "balanceDebit", value: change } : { case: "balanceCredit", value: change },
      });
    }
  } finally {
    await watch.return(undefined);
  }
}

async function accountExists(ledger: Ledger, tenantId: string, accountId: string): Promise<boolean> {
  try {
    await ledger.getAccount(tenantId, accountId);
    return true;
  } catch (e) {
    if (e instanceof LedgerError && e.reason === "account_not_found") return false;
    throw e;
  }
}

/** Parses Last-Event-ID; anything but a plain non-negative int64 is ignored (fresh snapshot). */
export function parseLastEventId(raw: string | string[] | undefined): bigint | undefined {
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (v === undefined || !/^(0|[1-9][0-9]{0,18})$/.test(v.trim())) return undefined;
  const n = BigInt(v.trim());
  return n <= INT64_MAX ? n : undefined;
}

/** Options of the SSE route. */
export interface SseOptions {
  /** Interval of the `:` keep-alive comment, in ms. */
  readonly keepAliveMs: number;
  /** Shared with WatchBalance: one cap on open streams per tenant. */
  readonly streams: StreamLimiter;
}

/**
 * Serves GET /v1/balance/events as text/event-stream. Errors before the first
 * frame (no session, too many streams) are thrown, so the REST layer writes
 * them in the Triport envelope; after that the stream only ends.
 */
export function sseStreamer(deps: EventDeps, opts: SseOptions): RestStreamer {
  return async (req, res, ctx) => {
    const { tenantId, accountId } = userOf(ctx.principal);
    const release = opts.streams.acquire(tenantId);
    const signal = AbortSignal.any([ctx.signal, deps.shutdown]);
    let timer: NodeJS.Timeout | undefined;
    try {
      const events = balanceEvents(deps, { tenantId, accountId, after: parseLastEventId(req.headers["last-event-id"]), signal });
      // The first frame is read before the headers go out, so a failure to
      // start is still a proper JSON error response.
      const first = await events.next();
      res.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
      });
      const out = res as unknown as { write(chunk: string): boolean; once(event: "drain", fn: () => void): void };
      const write = (text: string): boolean => (res.writableEnded || res.destroyed ? true : out.write(text));
      timer = setInterval(() => write(":\n\n"), opts.keepAliveMs);
      timer.unref();
      for (let r = first; !r.done; r = await events.next()) {
        // A slow reader pauses the watch (and its journal reads) instead of
        // buffering frames without bound.
        if (!write(frame(r.value, ctx)) && !signal.aborted) {
          await new Promise<void>((resolve) => {
            out.once("drain", resolve);
            signal.addEventListener("abort", () => resolve(), { once: true });
          });
        }
      }
    } finally {
      if (timer) clearInterval(timer);
      release();
    }
    if (!res.writableEnded) res.end();
  };
}

/** One SSE frame: `id:`, `event:`, and the JSON data on one line. */
function frame(ev: StreamBalanceEventsResponse, json: RestStreamContext): string {
  const e = ev.event;
  let name: string;
  let data: string;
  if (e.case === "snapshot") {
    name = "snapshot";
    data = json.toJson(BalanceSchema, e.value);
  } else if (e.case === "balanceCredit" || e.case === "balanceDebit") {
    name = e.case === "balanceCredit" ? "balance_credit" : "balance_debit";
    data = json.toJson(BalanceChangeSchema, e.value);
  } else {
    return "";
  }
  return `id: ${ev.id}\nevent: ${name}\ndata: ${data}\n\n`;
}
