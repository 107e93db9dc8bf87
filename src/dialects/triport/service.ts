import { create, isMessage } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import {
  BalanceChangeSchema,
  BalanceEntrySchema,
  BalanceSchema,
  BalanceService,
  InvoiceStatus,
  StreamBalanceEventsResponseSchema,
} from "../../../gen/triport/v1/triport_pb.js";
import type { BalanceEntry, StreamBalanceEventsResponse } from "../../../gen/triport/v1/triport_pb.js";
import type { Principal } from "../../domain/access.js";
import { LedgerError, invalidArgument, notFound } from "../../domain/errors.js";
import type { Ledger, WatchEvent } from "../../domain/ledger.js";
import type { EntryView } from "../../domain/model.js";
import type { StreamLimiter } from "../../domain/stream-limiter.js";
import { timestampFromMicros } from "../../services/convert.js";
import { whyAborted } from "../../services/errors.js";
import { principalOf } from "../../services/principal.js";
import type { EventStreamFormat, ProfileJson } from "../dialect.js";
import { SESSION_KEY_KIND, authRequired } from "./auth.js";
import { ASSET, balanceMessage, entryKind, fromMicro, toMicro, usdScale } from "./money.js";

/** Entries per page when `limit` is missing, non-numeric or below 1. */
export const DEFAULT_LIMIT = 20;
/** Larger `limit`s are clamped to this. */
export const MAX_LIMIT = 100;

/** Account metadata that makes an account a payable invoice: its owner and amount. */
export const INVOICE_OWNER_KEY = "triport_invoice_owner";
/** The invoice's amount in micro-USD, a canonical positive integer. */
export const INVOICE_AMOUNT_KEY = "triport_invoice_amount_micro";

const ID = /^[A-Za-z0-9_-]{1,128}$/;
const CANONICAL_POSITIVE = /^[1-9][0-9]{0,18}$/;

/** True for the not_found the ledger raises for a missing account. */
function isMissingAccount(e: unknown): boolean {
  return e instanceof LedgerError && e.code === "not_found" && e.reason === "account_not_found";
}

/** The user a principal acts for: a Triport session, or a Tally account-scoped key. */
export function userOf(p: Principal | undefined): { tenantId: string; accountId: string } {
  if (!p || p.accountId === null) throw authRequired();
  // Another dialect's credential never names a Triport user.
  if (p.credential && p.credential.kind !== SESSION_KEY_KIND) throw authRequired();
  return { tenantId: p.tenantId, accountId: p.accountId };
}

/** `limit` as the vendor treats it: anything unusable is the default; too large is clamped. */
export function parseLimit(raw: string): number {
  if (!/^[0-9]+$/.test(raw)) return DEFAULT_LIMIT;
  const n = Number(raw.length > 6 ? "999999" : raw);
  if (n < 1) return DEFAULT_LIMIT;
  return Math.min(n, MAX_LIMIT);
}

/**
 * `after_id`: absent, or a non-negative journal id. A mangled cursor is an
 * error, not page one, and so is an empty one (`after_id=`): a client that
 * lost its cursor must not silently start over.
 */
function parseAfterId(raw: string | undefined): bigint | undefined {
  if (raw === undefined) return undefined;
  if (!/^(0|[1-9][0-9]{0,18})$/.test(raw) || BigInt(raw) > 9223372036854775807n) {
    throw invalidArgument("invalid_after_id", "invalid after_id");
  }
  return BigInt(raw);
}

function entryMessage(e: EntryView, scale: number): BalanceEntry {
  return create(BalanceEntrySchema, {
    id: e.sequence,
    deltaMicro: toMicro(e.amount, scale),
    kind: entryKind(e.kind, e.amount),
    refInvoiceId: e.metadata["invoice_id"] ?? "",
    createdAt: timestampFromMicros(e.effectiveAt),
    note: e.note,
  });
}

/**
 * Registers triport.v1.BalanceService. Every handler authorizes from the
 * principal itself. `streams` is the per-tenant cap the SSE route counts
 * against too, so one tenant's event streams are bounded on every protocol.
 */
export function registerTriport(router: ConnectRouter, deps: EventDeps, streams: StreamLimiter): void {
  const { ledger } = deps;
  router.service(BalanceService, {
    async getBalance(_req, ctx) {
      const { tenantId, accountId } = userOf(principalOf(ctx));
      try {
        const b = await ledger.getBalance(tenantId, accountId, ASSET);
        return { balance: balanceMessage(toMicro(b.posted, b.scale), b.frozenAt, b.updatedAt) };
      } catch (e) {
        // A signed-in user Tally has no account for yet has no history: zeros, never 404.
        if (isMissingAccount(e)) return { balance: balanceMessage(0n, null, ledger.now()) };
        throw e;
      }
    },

    async listBalanceEntries(req, ctx) {
      const { tenantId, accountId } = userOf(principalOf(ctx));
      const limit = parseLimit(req.limit);
      let before = parseAfterId(req.afterId);
      const scale = await usdScale(ledger, tenantId);
      // Only POSTED entries move the balance; holds and releases are skipped,
      // so the ledger is read in batches until the page (plus one) is full.
      const posted: EntryView[] = [];
      const batch = limit + 1;
      for (;;) {
        let rows: EntryView[];
        try {
          rows = await ledger.listTransactions(tenantId, accountId, ASSET, before, batch);
        } catch (e) {
          if (isMissingAccount(e)) return { entries: [] };
          throw e;
        }
        for (const r of rows) if (r.status === "POSTED") posted.push(r);
        if (posted.length > limit || rows.length < batch) break;
        before = rows[rows.length - 1]!.sequence;
      }
      const page = posted.slice(0, limit);
      return {
        entries: page.map((e) => entryMessage(e, scale)),
        nextCursor: posted.length > limit ? page[page.length - 1]!.sequence : 0n,
      };
    },

    async payFromBalance(req, ctx) {
      const { tenantId, accountId } = userOf(principalOf(ctx));
      const invoiceId = req.invoiceId;
      const missing = () => notFound("invoice", invoiceId);
      if (!ID.test(invoiceId) || invoiceId === accountId) throw missing();
      let invoice;
      try {
        invoice = await ledger.getAccount(tenantId, invoiceId);
      } catch (e) {
        if (isMissingAccount(e)) throw missing();
        throw e;
      }
      const owner = invoice.metadata[INVOICE_OWNER_KEY];
      const amountText = invoice.metadata[INVOICE_AMOUNT_KEY];
      if (owner === undefined || amountText === undefined) throw missing();
      if (owner !== accountId) throw new LedgerError("permission_denied", "not_owner", "not_owner");
      if (!CANONICAL_POSITIVE.test(amountText) || BigInt(amountText) > 9223372036854775807n) {
        throw new LedgerError("internal", "invalid_invoice_amount", `invoice ${invoiceId} has an invalid ${INVOICE_AMOUNT_KEY}`);
      }
      try {
        await ledger.getAccount(tenantId, accountId);
      } catch (e) {
        // No account yet: a zero balance, which covers no invoice.
        if (isMissingAccount(e)) throw new LedgerError("failed_precondition", "insufficient_funds", "insufficient_balance");
        throw e;
      }
      const scale = await usdScale(ledger, tenantId);
      // One idempotency key per invoice: a repeat (or a concurrent double
      // click) replays the first payment, with its original balance.
      const r = await ledger.postTransfer(tenantId, {
        idempotencyKey: `triport:invoice:${invoiceId}`,
        debitAccountId: accountId,
        creditAccountId: invoiceId,
        asset: ASSET,
        amount: fromMicro(BigInt(amountText), scale),
        kind: "invoice_debit",
        note: `Invoice ${invoiceId}`,
        metadata: { invoice_id: invoiceId },
        pending: false,
      });
      return {
        invoiceId,
        status: InvoiceStatus.PAID,
        newBalanceMicro: toMicro(r.transfer.debitBalanceAfter, scale),
      };
    },

    async *streamBalanceEvents(req, ctx) {
      const { tenantId, accountId } = userOf(principalOf(ctx));
      const release = streams.acquire(tenantId);
      try {
        yield* balanceEvents(deps, { tenantId, accountId, after: req.lastEventId, signal: ctx.signal });
        if (deps.shutdown.aborted) {
          throw new LedgerError("unavailable", "shutting_down", "the server is shutting down; reconnect with last_event_id");
        }
        // balanceEvents returns only when the call's signal fired: a deadline, or the client left.
        throw whyAborted(ctx.signal);
      } finally {
        release();
      }
    },
  });
}

// The event stream: one generator over Ledger.watch behind the
// StreamBalanceEvents handler above, which serves Connect, gRPC, gRPC-Web
// and, run by the REST layer, the SSE route (triportEventStream below gives
// only its frames), so the protocols cannot drift apart.

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
          event: { case: "snapshot", value: balanceMessage(toMicro(b.posted, scale), b.frozenAt, b.updatedAt) },
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
        at: timestampFromMicros(e.effectiveAt),
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

/**
 * GET /v1/balance/events as server-sent events: the StreamBalanceEvents
 * handler above, run by the REST layer, which maps Last-Event-ID to
 * `last_event_id` (anything but a plain non-negative int64 is ignored: a
 * fresh snapshot). Errors before the first frame (no session, too many
 * streams) are answered in the Triport envelope; after that the stream only
 * ends.
 */
export function triportEventStream(keepAliveMs: number): EventStreamFormat {
  return {
    keepAliveMs,
    lastEventIdField: "lastEventId",
    frame: (message, json) => (isMessage(message, StreamBalanceEventsResponseSchema) ? frame(message, json) : ""),
  };
}

/** One SSE frame: `id:`, `event:`, and the JSON data on one line. */
function frame(ev: StreamBalanceEventsResponse, json: ProfileJson): string {
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
