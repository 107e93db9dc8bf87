import { creditTypeName } from "../../domain/credits/model.js";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { create, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { Principal } from "../../domain/access.js";
import { ordinalCursor } from "../../domain/credits/credits.js";
import type { BalanceView, Credits } from "../../domain/credits/credits.js";
import type { BalanceKind, CreditBalance, CreditEntry } from "../../domain/credits/model.js";
import { LedgerError, invalidArgument, notFound } from "../../domain/errors.js";
import { timestampFromMicros } from "../../services/convert.js";
import type { PageTokens } from "../../domain/page-token.js";
import { principalOf } from "../../services/principal.js";
import {
  BalanceSchema,
  BalancesService,
  LedgerEntrySchema,
} from "../../../gen/metronome/v1/balances_pb.js";
import type { AccessScheduleInput, Balance as BalanceMsg, LedgerEntry as LedgerEntryMsg } from "../../../gen/metronome/v1/balances_pb.js";
import { METRONOME_KEY_KIND } from "./auth.js";

/** Metronome's id of its "USD (cents)" credit type, which is Tally's asset USD. */
export const USD_CREDIT_TYPE_ID = "2714e483-4ff1-48e4-9e25-ac732e8f24f2";
/** `limit` when the body has none, and the largest accepted. */
export const DEFAULT_LIMIT = 25;
const MAX_LIMIT = 25;
/** Wire amounts are int64 counts of 10^-4 of the credit type's unit (decimal_scale 4 in the proto). */
const WIRE_DECIMALS = 4;

const ALL_KINDS: readonly BalanceKind[] = ["PREPAID", "POSTPAID", "CREDIT"];
const COMMIT_KINDS: readonly BalanceKind[] = ["PREPAID", "POSTPAID"];
const CREDIT_KINDS: readonly BalanceKind[] = ["CREDIT"];

/** The asset code a Metronome credit type id names: its USD id is USD, anything else is an asset code. */
function assetOf(creditTypeId: string): string {
  return creditTypeId === USD_CREDIT_TYPE_ID ? "USD" : creditTypeId;
}

/** The Metronome credit type id of an asset. */
function creditTypeIdOf(asset: string): string {
  return asset === "USD" ? USD_CREDIT_TYPE_ID : asset;
}


/**
 * How many decimal places separate a wire amount from the core's units:
 * wire = units * 10^shift. USD amounts are cents (10^-2 dollars) with 4
 * implied decimals, so 10^-6 dollars: at USD's default scale 6 the shift is
 * 0. Other credit types count whole units of the asset.
 */
function shiftOf(asset: string, scale: number): number {
  return (asset === "USD" ? 2 : 0) + WIRE_DECIMALS - scale;
}

/** Core units to a wire amount, exactly (bigint only). */
export function toWire(units: bigint, asset: string, scale: number): bigint {
  const k = shiftOf(asset, scale);
  if (k >= 0) return units * 10n ** BigInt(k);
  const d = 10n ** BigInt(-k);
  if (units % d !== 0n) throw new LedgerError("internal", "amount_not_representable", "the amount has more decimals than the API can carry");
  return units / d;
}

/** A wire amount to core units; more precision than the credit type holds is refused, never rounded. */
export function fromWire(wire: bigint, asset: string, scale: number, field: string): bigint {
  const k = shiftOf(asset, scale);
  if (k <= 0) return wire * 10n ** BigInt(-k);
  const d = 10n ** BigInt(k);
  if (wire % d !== 0n) throw invalidArgument("invalid_amount", `${field} has more decimal places than the credit type allows`, { field });
  return wire / d;
}

/**
 * A Timestamp as epoch microseconds. Metronome writes instants with
 * milliseconds (`…00.000Z`), so an instant finer than that could not be
 * written back as it was given: it is refused (400), never truncated.
 * Offsets are accepted (`+05:30` is the same instant as its `Z` form); an
 * instant without one, or `23:59:60`, is not RFC 3339 and is refused before
 * this point.
 */
function micros(t: Timestamp | undefined, field: string): bigint | undefined {
  if (t === undefined) return undefined;
  if (t.nanos < 0 || t.nanos > 999_999_999 || t.nanos % 1_000_000 !== 0) {
    throw invalidArgument("invalid_timestamp", `${field} must have millisecond precision`, { field });
  }
  return t.seconds * 1_000_000n + BigInt(t.nanos / 1000);
}

/**
 * The tenant-wide caller: a platform key or a Tally admin key. Anything else
 * (an account-scoped key, another dialect's credential) may not write.
 */
function writer(p: Principal): string {
  if (p.credential !== undefined ? p.credential.kind === METRONOME_KEY_KIND : p.scope === "tenant_admin") return p.tenantId;
  throw new LedgerError("permission_denied", "wrong_credential", "This credential cannot use this endpoint");
}

/**
 * A reader of one customer: tenant-wide keys read every customer; a Tally
 * account-scoped key reads only its own, and any other customer looks like
 * one that does not exist.
 */
function reader(p: Principal, customerId: string): string {
  if (p.credential !== undefined ? p.credential.kind === METRONOME_KEY_KIND : p.scope === "tenant_admin") return p.tenantId;
  if (p.credential === undefined && p.scope === "account_read" && p.accountId === customerId) return p.tenantId;
  throw notFound("customer", customerId);
}

/** The filters every listing shares. */
interface ListBody {
  readonly customerId: string;
  readonly id: string;
  readonly coveringDate?: Timestamp | undefined;
  readonly startingAt?: Timestamp | undefined;
  readonly effectiveBefore?: Timestamp | undefined;
  readonly includeContract: boolean;
  readonly includeArchived: boolean;
  readonly includeLedgers: boolean;
  readonly includeBalance: boolean;
  readonly excludeZeroBalances: boolean;
  readonly nextPage: string;
  readonly limit?: number | undefined;
  readonly balanceAt?: Timestamp | undefined;
}

/** Registers metronome.v1.BalancesService over the domain's Credits. */
export function registerBalancesService(router: ConnectRouter, credits: Credits, pageTokens: PageTokens): void {
  /**
   * One page of balances of the given kinds, in creation order (commits and
   * credits as they were created). The cursor is the creation ordinal of the
   * last one returned (a keyset: balances created during a walk come at its
   * end, none is skipped or repeated), sealed with a digest of the whole body
   * minus `next_page`, so a cursor only continues the query it came from; one
   * extra match is looked ahead so that the last page says `next_page: null`
   * exactly.
   */
  async function page<S extends DescMessage>(
    ctx: HandlerContext,
    schema: S,
    msg: MessageShape<S>,
    b: ListBody,
    kinds: readonly BalanceKind[],
  ): Promise<{ data: BalanceMsg[]; nextPage?: string }> {
    const tenantId = reader(principalOf(ctx), b.customerId);
    const limit = b.limit ?? DEFAULT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      throw invalidArgument("invalid_limit", `limit must be between 1 and ${MAX_LIMIT}`);
    }
    const query = [schema.typeName, Buffer.from(toBinary(schema, { ...msg, nextPage: "" } as MessageShape<S>)).toString("base64url")];
    let after = b.nextPage === "" ? 0n : ordinalCursor(pageTokens.open(b.nextPage, tenantId, query));
    const q = {
      customerId: b.customerId,
      id: b.id,
      coveringDate: micros(b.coveringDate, "covering_date"),
      startingAt: micros(b.startingAt, "starting_at"),
      effectiveBefore: micros(b.effectiveBefore, "effective_before"),
      includeContractBalances: b.includeContract,
      includeArchived: b.includeArchived,
      includeLedgers: b.includeLedgers,
      includeBalance: b.includeBalance,
      excludeZeroBalances: b.excludeZeroBalances,
      at: micros(b.balanceAt, "balance_at") ?? credits.now(),
    };
    const found: BalanceView[] = [];
    for (;;) {
      const { items, more } = await credits.list(tenantId, { ...q, afterOrdinal: after, limit: MAX_LIMIT });
      for (const v of items) if (kinds.includes(v.balance.kind)) found.push(v);
      if (found.length > limit || !more || items.length === 0) break;
      after = items[items.length - 1]!.balance.ordinal;
    }
    const shown = found.slice(0, limit);
    const data: BalanceMsg[] = [];
    for (const v of shown) data.push(await toMessage(credits, tenantId, v));
    if (found.length <= limit) return { data };
    return { data, nextPage: pageTokens.seal(tenantId, query, String(shown[shown.length - 1]!.balance.ordinal)) };
  }

  /** The fields of a create request as the domain takes them, amounts converted at the credit type's scale. */
  async function createInput(
    tenantId: string,
    r: {
      customerId: string;
      contractId: string;
      name: string;
      description: string;
      priority: bigint;
      productId: string;
      productName: string;
      accessSchedule?: AccessScheduleInput | undefined;
      applicableProductIds: string[];
      applicableProductTags: string[];
      customFields: { [k: string]: string };
      uniquenessKey: string;
    },
  ) {
    const asset = assetOf(r.accessSchedule?.creditTypeId || USD_CREDIT_TYPE_ID);
    const scale = await credits.scaleOf(tenantId, asset);
    return {
      customerId: r.customerId,
      contractId: r.contractId,
      name: r.name,
      description: r.description,
      priority: r.priority,
      productId: r.productId,
      productName: r.productName === "" ? r.productId : r.productName,
      creditTypeId: asset,
      segments: (r.accessSchedule?.scheduleItems ?? []).map((s, i) => ({
        id: "",
        amount: fromWire(s.amount, asset, scale, `access_schedule.schedule_items[${i}].amount`),
        startingAt: micros(s.startingAt, `access_schedule.schedule_items[${i}].starting_at`),
        endingBefore: micros(s.endingBefore, `access_schedule.schedule_items[${i}].ending_before`),
      })),
      applicableProductIds: r.applicableProductIds,
      applicableProductTags: r.applicableProductTags,
      customFields: r.customFields,
      uniquenessKey: r.uniquenessKey,
    };
  }

  router.service(BalancesService, {
    async listBalances(req, ctx) {
      const { data, nextPage } = await page(ctx, BalancesService.method.listBalances.input, req, { ...req, includeContract: req.includeContractBalances }, ALL_KINDS);
      return { data, ...(nextPage !== undefined ? { nextPage } : {}) };
    },

    async listCommits(req, ctx) {
      const b = { ...req, id: req.commitId, includeContract: req.includeContractCommits, excludeZeroBalances: false };
      const { data, nextPage } = await page(ctx, BalancesService.method.listCommits.input, req, b, COMMIT_KINDS);
      return { data, ...(nextPage !== undefined ? { nextPage } : {}) };
    },

    async listCredits(req, ctx) {
      const b = { ...req, id: req.creditId, includeContract: req.includeContractCredits, excludeZeroBalances: false };
      const { data, nextPage } = await page(ctx, BalancesService.method.listCredits.input, req, b, CREDIT_KINDS);
      return { data, ...(nextPage !== undefined ? { nextPage } : {}) };
    },

    async getNetBalance(req, ctx) {
      const tenantId = reader(principalOf(ctx), req.customerId);
      if (req.invoiceInclusionMode !== "" && req.invoiceInclusionMode !== "FINALIZED" && req.invoiceInclusionMode !== "FINALIZED_AND_DRAFT") {
        throw invalidArgument("invalid_invoice_inclusion_mode", "invoice_inclusion_mode must be FINALIZED or FINALIZED_AND_DRAFT");
      }
      const asset = assetOf(req.creditTypeId || USD_CREDIT_TYPE_ID);
      const r = await credits.netBalance(
        tenantId,
        req.customerId,
        asset,
        req.filters.map((f) => ({ balanceTypes: f.balanceTypes, customFields: f.customFields, ids: f.ids })),
        micros(req.balanceAt, "balance_at") ?? credits.now(),
      );
      const scale = await credits.scaleOf(tenantId, r.asset);
      return { data: { balance: toWire(r.balance, r.asset, scale), creditTypeId: creditTypeIdOf(r.asset) } };
    },

    async createCommit(req, ctx) {
      const tenantId = writer(principalOf(ctx));
      if (req.type !== "PREPAID" && req.type !== "POSTPAID") throw invalidArgument("invalid_commit_type", "type must be PREPAID or POSTPAID");
      const b = await credits.create(tenantId, req.type, await createInput(tenantId, req));
      return { data: { id: b.id } };
    },

    async createCredit(req, ctx) {
      const tenantId = writer(principalOf(ctx));
      const b = await credits.create(tenantId, "CREDIT", await createInput(tenantId, req));
      return { data: { id: b.id } };
    },

    async addManualBalanceLedgerEntry(req, ctx) {
      const tenantId = writer(principalOf(ctx));
      // The balance's credit type decides how the amount converts; it must be this customer's (and contract's).
      const { items } = await credits.list(tenantId, {
        customerId: req.customerId,
        id: req.id,
        includeContractBalances: true,
        includeArchived: true,
        includeLedgers: false,
        includeBalance: false,
        excludeZeroBalances: false,
        at: credits.now(),
        afterOrdinal: 0n,
        limit: 1,
        coveringDate: undefined,
        startingAt: undefined,
        effectiveBefore: undefined,
      });
      const b = items[0]?.balance;
      if (!b || (req.contractId !== "" && b.contractId !== req.contractId)) throw notFound("balance", req.id);
      const scale = await credits.scaleOf(tenantId, b.asset);
      await credits.addManualEntry(tenantId, {
        balanceId: b.id,
        customerId: req.customerId,
        segmentId: req.segmentId,
        amount: fromWire(req.amount, b.asset, scale, "amount"),
        reason: req.reason,
        timestamp: micros(req.timestamp, "timestamp"),
      });
      return {};
    },
  });
}

async function toMessage(credits: Credits, tenantId: string, v: BalanceView): Promise<BalanceMsg> {
  const b: CreditBalance = v.balance;
  const scale = await credits.scaleOf(tenantId, b.asset);
  return create(BalanceSchema, {
    id: b.id,
    type: b.kind,
    name: b.name,
    description: b.description,
    priority: b.priority,
    product: { id: b.productId, name: b.productName },
    accessSchedule: {
      creditType: { id: creditTypeIdOf(b.asset), name: creditTypeName(b.asset) },
      scheduleItems: b.segments.map((s) => ({
        id: s.id,
        amount: toWire(s.amount, b.asset, scale),
        startingAt: timestampFromMicros(s.startingAt),
        endingBefore: timestampFromMicros(s.endingBefore),
      })),
    },
    applicableProductIds: [...b.applicableProductIds],
    applicableProductTags: [...b.applicableProductTags],
    contract: b.contractId === null ? undefined : { id: b.contractId },
    customFields: { ...b.customFields },
    // Both are effective times (credits/effective-time.ts): a balance imported
    // with a backdated effective_at shows when it was created or archived in
    // the ledger it came from, not when Tally recorded it.
    archivedAt: b.archivedAt === null ? undefined : timestampFromMicros(b.archivedAt),
    // Credits have no created_at in Metronome's schema (its SDK's Credit has none either).
    createdAt: b.kind === "CREDIT" ? undefined : timestampFromMicros(b.createdAt),
    uniquenessKey: b.uniquenessKey ?? "",
    balance: v.amount === undefined ? undefined : toWire(v.amount, b.asset, scale),
    ledger: (v.ledger ?? []).map((e) => entryMessage(e, b.asset, scale)),
  });
}

/**
 * One ledger entry in Metronome's shape. A manual entry is `{type, timestamp,
 * amount, reason}` (CreditManualLedgerEntry, PrepaidCommitManualLedgerEntry
 * in Metronome's SDK): it has no segment_id on this wire, although Tally
 * keeps the segment it was written on (the native API shows it).
 */
function entryMessage(e: CreditEntry, asset: string, scale: number): LedgerEntryMsg {
  return create(LedgerEntrySchema, {
    type: e.type,
    timestamp: timestampFromMicros(e.timestamp),
    amount: toWire(e.amount, asset, scale),
    segmentId: e.type.endsWith("_MANUAL") ? "" : e.segmentId,
    invoiceId: e.invoiceId ?? "",
    reason: e.reason ?? "",
  });
}
