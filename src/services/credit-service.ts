import { creditTypeName } from "../domain/credits/model.js";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { BalanceSchema, CreditService, LedgerEntrySchema } from "../../gen/tally/credits/v1/credits_pb.js";
import type {
  Balance as BalanceMsg,
  BalanceInput as BalanceInputMsg,
  LedgerEntry as LedgerEntryMsg,
  ScheduleItemInput as ScheduleItemInputMsg,
} from "../../gen/tally/credits/v1/credits_pb.js";
import type { BalanceInput, BalanceView, Credits, SegmentInput } from "../domain/credits/credits.js";
import type { CreditBalance, CreditEntry } from "../domain/credits/model.js";
import { invalidArgument } from "../domain/errors.js";
import { validatePageSize } from "../domain/validate.js";
import { microsFromTimestamp, timestampFromMicros } from "./convert.js";
import type { PageTokens } from "../domain/page-token.js";
import { ordinalCursor } from "../domain/credits/credits.js";
import { principalOf, requireAccountRead, requireAdmin } from "./principal.js";

/** What the credit service needs. */
export interface CreditServiceDeps {
  readonly credits: Credits;
  readonly pageTokens: PageTokens;
}

/** Metronome's limits for balance listings. */
const DEFAULT_PAGE = 25;
const MAX_PAGE = 25;

/** Registers tally.credits.v1.CreditService on a router. */
export function registerCreditService(router: ConnectRouter, deps: CreditServiceDeps): void {
  const { credits, pageTokens } = deps;

  const admin = (ctx: HandlerContext) => {
    const p = principalOf(ctx);
    requireAdmin(p);
    return p.tenantId;
  };
  // An account-scoped key reads only its own customer's balances; any other
  // customer looks like one that does not exist.
  const reader = (ctx: HandlerContext, customerId: string) => {
    const p = principalOf(ctx);
    requireAccountRead(p, customerId);
    return p.tenantId;
  };

  router.service(CreditService, {
    async createCommit(req, ctx) {
      const tenantId = admin(ctx);
      if (req.type !== "PREPAID" && req.type !== "POSTPAID") {
        throw invalidArgument("invalid_commit_type", "type must be PREPAID or POSTPAID");
      }
      const b = await credits.create(tenantId, req.type, balanceInput(req.balance, req.effectiveAt));
      return { commit: await toProto(credits, tenantId, { balance: b }) };
    },

    async createCredit(req, ctx) {
      const tenantId = admin(ctx);
      const b = await credits.create(tenantId, "CREDIT", balanceInput(req.balance, req.effectiveAt));
      return { credit: await toProto(credits, tenantId, { balance: b }) };
    },

    async archiveBalance(req, ctx) {
      const tenantId = admin(ctx);
      const b = await credits.archive(tenantId, req.id, microsFromTimestamp(req.effectiveAt, "effective_at"));
      return { balance: await toProto(credits, tenantId, { balance: b }) };
    },

    async addManualLedgerEntry(req, ctx) {
      const tenantId = admin(ctx);
      const e = await credits.addManualEntry(tenantId, {
        balanceId: req.id,
        customerId: req.customerId,
        segmentId: req.segmentId,
        amount: req.amount,
        reason: req.reason,
        timestamp: micros(req.timestamp, "timestamp"),
        idempotencyKey: req.idempotencyKey,
      });
      return { entry: entryToProto(e) };
    },

    async recordUsage(req, ctx) {
      const tenantId = admin(ctx);
      const r = await credits.recordUsage(tenantId, {
        usageId: req.usageId,
        customerId: req.customerId,
        productId: req.productId,
        productTags: req.productTags,
        contractId: req.contractId,
        creditTypeId: req.creditTypeId,
        amount: req.amount,
        startingAt: micros(req.startingAt, "starting_at"),
        endingBefore: micros(req.endingBefore, "ending_before"),
        invoiceId: req.invoiceId,
      });
      return { draws: r.draws.map((d) => ({ ...d })), uncovered: r.uncovered, replayed: r.replayed };
    },

    async rolloverBalance(req, ctx) {
      const tenantId = admin(ctx);
      const r = await credits.rollover(tenantId, {
        balanceId: req.id,
        customerId: req.customerId,
        at: micros(req.at, "at"),
        endingBefore: micros(req.endingBefore, "ending_before"),
        segments: segmentInputs(req.scheduleItems),
        idempotencyKey: req.idempotencyKey,
        effectiveAt: microsFromTimestamp(req.effectiveAt, "effective_at"),
      });
      return {
        balance: await toProto(credits, tenantId, { balance: r.balance }),
        rolloverEntries: r.entries.map(entryToProto),
        amount: r.amount,
        replayed: r.replayed,
      };
    },

    async creditBackUsage(req, ctx) {
      const tenantId = admin(ctx);
      const r = await credits.creditBackUsage(tenantId, {
        usageId: req.usageId,
        customerId: req.customerId,
        amount: req.amount,
        invoiceId: req.invoiceId,
        idempotencyKey: req.idempotencyKey,
        effectiveAt: microsFromTimestamp(req.effectiveAt, "effective_at"),
      });
      return { credits: r.credits.map((c) => ({ ...c })), uncredited: r.uncredited, replayed: r.replayed };
    },

    async listBalances(req, ctx) {
      const tenantId = reader(ctx, req.customerId);
      const size = validatePageSize(req.pageSize, DEFAULT_PAGE, MAX_PAGE);
      const coveringDate = micros(req.coveringDate, "covering_date");
      const startingAt = micros(req.startingAt, "starting_at");
      const effectiveBefore = micros(req.effectiveBefore, "effective_before");
      const balanceAt = micros(req.balanceAt, "balance_at");
      // The token is bound to every filter, so it cannot be replayed against another query.
      const query = [
        "ListBalances",
        req.customerId,
        req.id,
        String(coveringDate ?? ""),
        String(startingAt ?? ""),
        String(effectiveBefore ?? ""),
        String(balanceAt ?? ""),
        [req.includeContractBalances, req.includeArchived, req.includeLedgers, req.includeBalance, req.excludeZeroBalances].map(Number).join(""),
      ];
      const afterOrdinal = req.pageToken === "" ? 0n : ordinalCursor(pageTokens.open(req.pageToken, tenantId, query));
      const { items, more } = await credits.list(tenantId, {
        customerId: req.customerId,
        id: req.id,
        coveringDate,
        startingAt,
        effectiveBefore,
        includeContractBalances: req.includeContractBalances,
        includeArchived: req.includeArchived,
        includeLedgers: req.includeLedgers,
        includeBalance: req.includeBalance,
        excludeZeroBalances: req.excludeZeroBalances,
        at: balanceAt ?? credits.now(),
        afterOrdinal,
        limit: size,
      });
      const balances: BalanceMsg[] = [];
      for (const v of items) balances.push(await toProto(credits, tenantId, v));
      const next = more ? pageTokens.seal(tenantId, query, String(items[items.length - 1]!.balance.ordinal)) : "";
      return { balances, nextPageToken: next };
    },

    async getNetBalance(req, ctx) {
      const tenantId = reader(ctx, req.customerId);
      const r = await credits.netBalance(
        tenantId,
        req.customerId,
        req.creditTypeId,
        req.filters.map((f) => ({ balanceTypes: f.balanceTypes, customFields: f.customFields, ids: f.ids })),
        micros(req.balanceAt, "balance_at") ?? credits.now(),
      );
      return { balance: r.balance, creditTypeId: r.asset };
    },
  });
}

/**
 * A Timestamp as epoch microseconds. Sub-microsecond nanos are refused rather
 * than truncated: the ledger keeps microseconds exactly, never a guess.
 */
function micros(t: Timestamp | undefined, field: string): bigint | undefined {
  if (t === undefined) return undefined;
  if (t.nanos < 0 || t.nanos > 999_999_999 || t.nanos % 1000 !== 0) {
    throw invalidArgument("invalid_timestamp", `${field} must have microsecond precision`, { field });
  }
  return t.seconds * 1_000_000n + BigInt(t.nanos / 1000);
}

/** A create request's balance, with the request's effective_at (as the ledger reads it: whole microseconds, from 1970). */
function balanceInput(m: BalanceInputMsg | undefined, effectiveAt: Timestamp | undefined): BalanceInput {
  if (!m) throw invalidArgument("missing_balance", "balance is required");
  return {
    customerId: m.customerId,
    contractId: m.contractId,
    name: m.name,
    description: m.description,
    priority: m.priority,
    productId: m.product?.id ?? "",
    productName: m.product?.name ?? "",
    creditTypeId: m.creditTypeId,
    segments: segmentInputs(m.scheduleItems),
    applicableProductIds: m.applicableProductIds,
    applicableProductTags: m.applicableProductTags,
    customFields: m.customFields,
    uniquenessKey: m.uniquenessKey,
    effectiveAt: microsFromTimestamp(effectiveAt, "effective_at"),
  };
}

function segmentInputs(items: readonly ScheduleItemInputMsg[]): SegmentInput[] {
  return items.map((s, i) => ({
    id: s.id,
    amount: s.amount,
    startingAt: micros(s.startingAt, `schedule_items[${i}].starting_at`),
    endingBefore: micros(s.endingBefore, `schedule_items[${i}].ending_before`),
  }));
}

async function toProto(credits: Credits, tenantId: string, v: BalanceView): Promise<BalanceMsg> {
  const b: CreditBalance = v.balance;
  return create(BalanceSchema, {
    id: b.id,
    type: b.kind,
    customerId: b.customerId,
    name: b.name,
    description: b.description,
    priority: b.priority,
    product: { id: b.productId, name: b.productName },
    accessSchedule: {
      creditType: { id: b.asset, name: creditTypeName(b.asset), scale: await credits.scaleOf(tenantId, b.asset) },
      scheduleItems: b.segments.map((s) => ({
        id: s.id,
        amount: s.amount,
        startingAt: timestampFromMicros(s.startingAt),
        endingBefore: timestampFromMicros(s.endingBefore),
      })),
    },
    applicableProductIds: [...b.applicableProductIds],
    applicableProductTags: [...b.applicableProductTags],
    contract: b.contractId === null ? undefined : { id: b.contractId },
    customFields: { ...b.customFields },
    archivedAt: b.archivedAt === null ? undefined : timestampFromMicros(b.archivedAt),
    createdAt: timestampFromMicros(b.createdAt),
    uniquenessKey: b.uniquenessKey ?? "",
    balance: v.amount,
    ledger: (v.ledger ?? []).map(entryToProto),
  });
}

function entryToProto(e: CreditEntry): LedgerEntryMsg {
  return create(LedgerEntrySchema, {
    type: e.type,
    timestamp: timestampFromMicros(e.timestamp),
    amount: e.amount,
    segmentId: e.segmentId,
    invoiceId: e.invoiceId ?? "",
    reason: e.reason ?? "",
  });
}
