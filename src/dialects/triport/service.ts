import { create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import {
  BalanceEntrySchema,
  BalanceService,
  InvoiceStatus,
} from "../../../gen/triport/v1/triport_pb.js";
import type { BalanceEntry } from "../../../gen/triport/v1/triport_pb.js";
import { LedgerError, invalidArgument, notFound } from "../../domain/errors.js";
import type { EntryView } from "../../domain/model.js";
import type { StreamLimiter } from "../../domain/stream-limiter.js";
import { timestampFromMicros } from "../../services/convert.js";
import { whyAborted } from "../../services/errors.js";
import { principalOf } from "../../services/principal.js";
import { userOf } from "./errors.js";
import type { EventDeps } from "./events.js";
import { balanceEvents } from "./events.js";
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

/** `limit` as the vendor treats it: anything unusable is the default; too large is clamped. */
export function parseLimit(raw: string): number {
  if (!/^[0-9]+$/.test(raw)) return DEFAULT_LIMIT;
  const n = Number(raw.length > 6 ? "999999" : raw);
  if (n < 1) return DEFAULT_LIMIT;
  return Math.min(n, MAX_LIMIT);
}

/** `after_id`: absent, or a non-negative journal id. A mangled cursor is an error, not page one. */
function parseAfterId(raw: string): bigint | undefined {
  if (raw === "") return undefined;
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
    createdAt: timestampFromMicros(e.createdAt),
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
        return { balance: balanceMessage(toMicro(b.posted, b.scale), b.lockedAt, b.updatedAt) };
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
