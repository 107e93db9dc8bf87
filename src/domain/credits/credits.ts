import { createHash } from "node:crypto";
import { defaultScale, validateAssetCode } from "../asset.js";
import { LedgerError, failedPrecondition, invalidArgument, notFound } from "../errors.js";
import { newId, validateAccountId } from "../ids.js";
import { formatMicros } from "../micros.js";
import type { Clock } from "../ledger.js";
import { checkedAdd, isInt64, requirePositiveAmount } from "../money.js";
import type { CreditPort, CreditWrite } from "./credit-port.js";
import { changeFloors, creationFloors, creditEffectiveTime } from "./effective-time.js";
import { refuseFuture } from "../effective-time.js";
import { validateIdempotencyKey, validateMetadata, validateText } from "../validate.js";
import type { BalanceKind, CreditBalance, CreditEntry, CreditEntryType, Draw, NewCreditEntry, Segment, UsageResult } from "./model.js";
import { balanceAt, bySegment, deductionDate, dueClosings, entryTypeFor, isActive, isClosing, ledgerAt, planDrawDown, remaining } from "./rules.js";

/** The credit type when a client names none: Metronome's "USD (cents)", held as the asset USD. */
export const DEFAULT_CREDIT_TYPE = "USD";

/** At most this many segments per access schedule. */
export const MAX_SEGMENTS = 100;

/** One day in epoch microseconds. */
const DAY = 86_400_000_000n;

/**
 * How long after a segment ends usage may still be billed to it: its closing
 * entry (expiration, true-up) is recorded this long after its ending_before,
 * and until then reads show the closing it will get. A usage is billed when
 * its invoice is final, after its service period has ended, and an invoice
 * of several usages is recorded one usage at a time; the window lets all of
 * them reach the segments that were in effect for the period. 35 days: a
 * monthly service period that started on the segment's last day, plus four
 * days to finalise its invoice.
 */
export const DEFAULT_USAGE_WINDOW = 35n * DAY;

/** The longest service period a usage may have: an annual invoice in a leap year. */
export const MAX_SERVICE_PERIOD = 366n * DAY;

/** The instants a google.protobuf.Timestamp can hold (0001-01-01 to 9999-12-31), in epoch microseconds. */
const MIN_INSTANT = -62_135_596_800_000_000n;
const MAX_INSTANT = 253_402_300_799_999_999n;

/** How Credits is tuned. */
export interface CreditsOptions {
  /** See {@link DEFAULT_USAGE_WINDOW}; 0 closes segments the instant they end. */
  readonly usageWindow?: bigint;
  /** Told of each write answered from its idempotency record instead of applied (for metrics). */
  readonly onReplay?: (operation: "usage" | "rollover" | "credit_back") => void;
}

const TEXT_MAX = 1024;
const LIST_MAX = 64;

/** A segment as a client asks for it; an empty id is generated. */
export interface SegmentInput {
  readonly id: string;
  readonly amount: bigint;
  readonly startingAt: bigint | undefined;
  readonly endingBefore: bigint | undefined;
}

/** What a client sends to create a commit or credit. */
export interface BalanceInput {
  readonly customerId: string;
  readonly contractId: string;
  readonly name: string;
  readonly description: string;
  readonly priority: bigint;
  readonly productId: string;
  readonly productName: string;
  readonly creditTypeId: string;
  readonly segments: readonly SegmentInput[];
  readonly applicableProductIds: readonly string[];
  readonly applicableProductTags: readonly string[];
  readonly customFields: Readonly<Record<string, string>>;
  readonly uniquenessKey: string;
  /** When it was created, if not now (backdated: its created_at; see effective-time.ts). */
  readonly effectiveAt?: bigint | undefined;
}

/** A manual ledger entry as a client asks for it. */
export interface ManualEntryInput {
  readonly balanceId: string;
  /** When non-empty, must be the balance's customer. */
  readonly customerId: string;
  readonly segmentId: string;
  readonly amount: bigint;
  readonly reason: string;
  /** Default: now. */
  readonly timestamp: bigint | undefined;
  /**
   * Optional (empty: none). The same key with the same request returns the
   * entry first written; with a different request it is already_exists.
   */
  readonly idempotencyKey?: string;
}

/** A usage as a client reports it. */
export interface UsageRequest {
  readonly usageId: string;
  readonly customerId: string;
  readonly productId: string;
  readonly productTags: readonly string[];
  readonly contractId: string;
  readonly creditTypeId: string;
  readonly amount: bigint;
  /**
   * The service period [startingAt, endingBefore) the usage was billed for;
   * both required. The segments in effect at startingAt pay, and their
   * deductions are dated endingBefore (the invoice's finalisation).
   */
  readonly startingAt: bigint | undefined;
  readonly endingBefore: bigint | undefined;
  /** Default: the usage id. */
  readonly invoiceId: string;
}

/** A rollover as a client asks for it (see Credits.rollover). */
export interface RolloverInput {
  readonly balanceId: string;
  /** When non-empty, must be the balance's customer. */
  readonly customerId: string;
  /** Default: now; never in the future. */
  readonly at: bigint | undefined;
  /** One segment [at, endingBefore) holding everything rolled over... */
  readonly endingBefore: bigint | undefined;
  /** ...or these segments, totalling exactly what is left (exactly one of the two). */
  readonly segments: readonly SegmentInput[];
  /** Required. */
  readonly idempotencyKey: string;
  /**
   * When the rollover was done, if not now (backdated; see
   * effective-time.ts): the new balance's created_at and the default of `at`.
   */
  readonly effectiveAt?: bigint | undefined;
}

/** What a rollover did: the new balance, the source's *_ROLLOVER entries and their total. */
export interface RolloverResult {
  readonly balance: CreditBalance;
  readonly entries: readonly CreditEntry[];
  readonly amount: bigint;
  readonly replayed: boolean;
}

/** A credit-back as a client asks for it (see Credits.creditBackUsage). */
export interface CreditBackInput {
  readonly usageId: string;
  readonly customerId: string;
  readonly amount: bigint;
  /** Empty: not checked. */
  readonly invoiceId: string;
  /** Required. */
  readonly idempotencyKey: string;
  /** When the deductions were returned, if not now (backdated; see effective-time.ts). */
  readonly effectiveAt?: bigint | undefined;
}

/** What a credit-back returned to each segment, and what of the usage is still not credited back. */
export interface CreditBackResult {
  readonly credits: readonly Draw[];
  readonly uncredited: bigint;
  readonly replayed: boolean;
}

/** The filters of a balance listing (Metronome's customerBalances/list). */
export interface ListQuery {
  readonly customerId: string;
  readonly id: string;
  readonly coveringDate: bigint | undefined;
  readonly startingAt: bigint | undefined;
  readonly effectiveBefore: bigint | undefined;
  readonly includeContractBalances: boolean;
  readonly includeArchived: boolean;
  readonly includeLedgers: boolean;
  readonly includeBalance: boolean;
  readonly excludeZeroBalances: boolean;
  /** The instant balances and ledgers are computed at. */
  readonly at: bigint;
  /** Keyset cursor: balances created after the one with this ordinal (0n: from the first). */
  readonly afterOrdinal: bigint;
  readonly limit: number;
}

/** A listed balance with what was asked for. */
export interface BalanceView {
  readonly balance: CreditBalance;
  readonly amount?: bigint;
  readonly ledger?: readonly CreditEntry[];
}

/** One filter of a net balance: conditions AND'd; filters OR'd. */
export interface NetFilter {
  /** PREPAID_COMMIT, POSTPAID_COMMIT, CREDIT. */
  readonly balanceTypes: readonly string[];
  readonly customFields: Readonly<Record<string, string>>;
  readonly ids: readonly string[];
}

const BALANCE_TYPES: Record<string, BalanceKind> = { PREPAID_COMMIT: "PREPAID", POSTPAID_COMMIT: "POSTPAID", CREDIT: "CREDIT" };

/**
 * Commits and credits over the store: creation, archiving, manual entries,
 * usage draw-down, listings and net balances. Every write runs inside one
 * store write (atomic, group-committed); the rules themselves are in rules.ts.
 */
export class Credits {
  private readonly usageWindow: bigint;
  private readonly onReplay: CreditsOptions["onReplay"];

  constructor(
    private readonly store: CreditPort,
    private readonly clock: Clock,
    options: CreditsOptions = {},
  ) {
    this.usageWindow = options.usageWindow ?? DEFAULT_USAGE_WINDOW;
    this.onReplay = options.onReplay;
    if (this.usageWindow < 0n) throw new Error("usageWindow must not be negative");
  }

  /**
   * Segments that ended at or before this instant are closed (their closing
   * entry is recorded) by writes at `now`: the usage window has passed.
   */
  private closingCutoff(now: bigint): bigint {
    return now - this.usageWindow;
  }

  /** Counts a replayed answer once its write has committed (a store may run a write's function more than once). */
  private async counted<T extends { readonly replayed: boolean }>(operation: "usage" | "rollover" | "credit_back", write: Promise<T>): Promise<T> {
    const r = await write;
    if (r.replayed) this.onReplay?.(operation);
    return r;
  }

  /** The current time, as the ledger records it. */
  now(): bigint {
    return this.clock();
  }

  /** The scale of a credit type's asset (its default when not yet defined). */
  async scaleOf(tenantId: string, asset: string): Promise<number> {
    return (await this.store.getAsset(tenantId, asset))?.scale ?? defaultScale(asset);
  }

  /**
   * Creates a commit (PREPAID, POSTPAID) or credit (CREDIT) with its start
   * entries, now or at a past effective time (its created_at) no earlier than
   * the customer's opening and latest creation (effective-time.ts).
   */
  async create(tenantId: string, kind: BalanceKind, input: BalanceInput): Promise<CreditBalance> {
    const now = this.clock();
    if (input.effectiveAt !== undefined) refuseFuture(input.effectiveAt, now);
    const customerId = validateAccountId(input.customerId, "customer_id");
    const contractId = input.contractId === "" ? null : validateId(input.contractId, "contract_id");
    const asset = validateAssetCode(input.creditTypeId === "" ? DEFAULT_CREDIT_TYPE : input.creditTypeId);
    if (!isInt64(input.priority)) throw invalidArgument("invalid_priority", "priority is outside the int64 range");
    const segments = validateSegments(input.segments);
    const uniquenessKey = input.uniquenessKey === "" ? null : validateIdempotencyKey(input.uniquenessKey, "uniqueness_key");
    // created_at is set under the customer's lock, against its floors.
    const draft: Omit<CreditBalance, "ordinal" | "createdAt"> = {
      tenantId,
      id: newId(kind === "CREDIT" ? "cred" : "cmt"),
      kind,
      customerId,
      contractId,
      name: text(input.name, "name"),
      description: text(input.description, "description"),
      priority: input.priority,
      productId: text(input.productId, "product.id"),
      productName: text(input.productName, "product.name"),
      asset,
      applicableProductIds: list(input.applicableProductIds, "applicable_product_ids"),
      applicableProductTags: list(input.applicableProductTags, "applicable_product_tags"),
      customFields: validateMetadata(input.customFields, "custom_fields"),
      uniquenessKey,
      segments,
      archivedAt: null,
    };
    return this.store.write(async (tx) => {
      // The customer's lock first: every credit write of one customer is serialised.
      await tx.lockAccounts(tenantId, [customerId]);
      const customer = await tx.getAccount(tenantId, customerId);
      if (!customer) throw notFound("customer", customerId);
      const createdAt = creditEffectiveTime(input.effectiveAt, now, creationFloors(customer, await tx.latestCreditCreatedAt(tenantId, customerId)));
      if (uniquenessKey !== null && (await tx.getCreditBalanceByUniquenessKey(tenantId, uniquenessKey))) {
        throw new LedgerError("already_exists", "uniqueness_key_reused", `uniqueness_key "${uniquenessKey}" was already used`, {
          uniqueness_key: uniquenessKey,
        });
      }
      await ensureAsset(tx, tenantId, asset, now);
      const balance = await insertBalance(tx, { ...draft, createdAt }, now);
      // After the insert, so that a schedule created with segments that ended
      // before the usage window closes them at once, with the customer's
      // other due segments.
      await closeDue(tx, tenantId, customerId, this.closingCutoff(now), now);
      return balance;
    });
  }

  /**
   * Archives a balance: it no longer draws down and counts 0 from now on.
   * Segments that ended are closed as usual (expiration, true-up); what is
   * left of active and future segments is canceled at the archive instant
   * (*_CANCELED; POSTPAID_COMMIT_TRUEUP for a postpaid commit, which has no
   * CANCELED type). Archiving twice keeps the first time and writes nothing.
   *
   * `effectiveAt` backdates the archive (effective-time.ts): archived_at and
   * the cancellations take it, and a segment that ended after it but is not
   * closed yet is canceled then rather than expired, since it was still in
   * effect. Not before the balance's created_at nor before the latest dated
   * entry on its segments, closings due now included.
   */
  async archive(tenantId: string, id: string, effectiveAt?: bigint): Promise<CreditBalance> {
    const now = this.clock();
    if (effectiveAt !== undefined) refuseFuture(effectiveAt, now);
    return this.store.write(async (tx) => {
      const b = await lockedBalance(tx, tenantId, id);
      if (b.archivedAt !== null) return b;
      // Before the floors are read: a closing due now is part of what the
      // archive may not go behind (a refusal rolls it back with the rest).
      await closeDue(tx, tenantId, b.customerId, this.closingCutoff(now), now);
      const entries = await tx.listCreditEntries(tenantId, b.id);
      const at = effectiveAt === undefined ? now : creditEffectiveTime(effectiveAt, now, changeFloors(b, entries));
      // An archived balance takes no more usage, so its segments that ended
      // by the archive but inside the usage window have nothing left to wait
      // for: they expire now, dated ending_before as always (no sweep closes
      // an archived balance later).
      const expired = await tx.appendCreditEntries(dueClosings(b, entries, at, now));
      const seg = bySegment([...entries, ...expired]);
      const cancels: NewCreditEntry[] = [];
      for (const s of b.segments) {
        if (s.endingBefore <= at) continue; // expired above (or nothing was left)
        const mine = seg.get(s.id);
        if (mine?.some(isClosing)) continue;
        const left = remaining(mine);
        if (left > 0n) cancels.push(entry(b, s.id, "cancel", -left, at, now, {}));
      }
      await tx.archiveCreditBalance(tenantId, b.id, at);
      await tx.appendCreditEntries(cancels);
      return { ...b, archivedAt: at };
    });
  }

  /**
   * Writes the closing entries of every segment that ended at or before `now`
   * (default: the clock) less the usage window ({@link DEFAULT_USAGE_WINDOW})
   * and is not closed yet, in every tenant: the expiration sweeper. Call it periodically; reads compute the same entries
   * until then, so how often only decides when they are stored. Each customer
   * is one write under the customer's lock that re-reads what is due, so
   * concurrent or repeated sweeps (and credit writes, which close first) never
   * write an entry twice; a unique index on closing entries per segment is the
   * store's backstop. Returns the number of entries written.
   */
  async materialiseExpirations(now: bigint = this.clock()): Promise<number> {
    let written = 0;
    const cutoff = this.closingCutoff(now);
    for (;;) {
      const due = await this.store.dueCreditClosings(cutoff, 100);
      if (due.length === 0) return written;
      let pass = 0;
      for (const d of due) {
        pass += await this.store.write(async (tx) => {
          await tx.lockAccounts(d.tenantId, [d.customerId]);
          return closeDue(tx, d.tenantId, d.customerId, cutoff, now);
        });
      }
      // Nothing written for what the store listed as due means another writer
      // got there first or the listing disagrees with the rules: stop rather than spin.
      if (pass === 0) return written;
      written += pass;
    }
  }

  /**
   * Appends a *_MANUAL entry to a segment (negative draws down). Refused on an
   * archived balance and on a segment that has ended: its closing entry has
   * settled what was left, and a later change would contradict it.
   * Idempotent when `idempotencyKey` is given.
   */
  async addManualEntry(tenantId: string, input: ManualEntryInput): Promise<CreditEntry> {
    const now = this.clock();
    if (!isInt64(input.amount) || input.amount === 0n) throw invalidArgument("invalid_amount", "amount must be a non-zero int64");
    if (input.reason === "") throw invalidArgument("missing_reason", "reason is required");
    const reason = text(input.reason, "reason");
    const key = input.idempotencyKey === undefined || input.idempotencyKey === "" ? null : validateIdempotencyKey(input.idempotencyKey, "idempotency_key");
    const timestamp = input.timestamp ?? now;
    // The default timestamp is part of the request only when given: a retry
    // without one is the same request even though the clock moved.
    const hash = createHash("sha256")
      .update(JSON.stringify([input.balanceId, input.customerId, input.segmentId, String(input.amount), reason, input.timestamp === undefined ? null : String(input.timestamp)]))
      .digest("base64url");
    const replay = async (tx: CreditWrite): Promise<CreditEntry | undefined> => {
      if (key === null) return undefined;
      const prior = await tx.getCreditManualKey(tenantId, key);
      if (!prior) return undefined;
      if (prior.requestHash !== hash) {
        throw new LedgerError("already_exists", "idempotency_key_reused", `idempotency_key "${key}" was already used for a different entry`, {
          idempotency_key: key,
        });
      }
      return decodeEntry(prior.result);
    };
    return this.store.write(async (tx) => {
      const early = await replay(tx);
      if (early) return early;
      const b = await lockedBalance(tx, tenantId, input.balanceId);
      if (input.customerId !== "" && b.customerId !== input.customerId) throw notFound("balance", input.balanceId);
      // Again under the lock: a concurrent twin may have committed meanwhile.
      const again = await replay(tx);
      if (again) return again;
      const segment = b.segments.find((s) => s.id === input.segmentId);
      if (!segment) throw notFound("segment", input.segmentId);
      if (b.archivedAt !== null) throw failedPrecondition("balance_archived", `balance "${b.id}" is archived`);
      if (segment.endingBefore <= now) throw failedPrecondition("segment_ended", `schedule item "${segment.id}" has ended`);
      await closeDue(tx, tenantId, b.customerId, this.closingCutoff(now), now);
      const mine = (await tx.listCreditEntries(tenantId, b.id)).filter((e) => e.segmentId === segment.id);
      // Closed without having ended or been archived: rolled over. What was
      // left moved to another balance, so nothing may be added here any more.
      if (mine.some(isClosing)) throw failedPrecondition("segment_closed", `schedule item "${segment.id}" was rolled over`);
      // The segment's running sum must stay an int64 whatever the order of entries.
      let sum = input.amount;
      for (const e of mine) sum = checkedAdd(sum, e.amount, "segment balance");
      const [written] = await tx.appendCreditEntries([entry(b, segment.id, "manual", input.amount, timestamp, now, { reason })]);
      if (key !== null) await tx.putCreditManualKey({ tenantId, key, requestHash: hash, result: encodeEntry(written!), createdAt: now });
      return written!;
    });
  }

  /**
   * Draws a usage down from the customer's applicable balances (rules.ts,
   * planDrawDown): the segments in effect at the start of its service period
   * pay, in draw order, and each deduction is dated the period's end (the
   * invoice's finalisation; a segment that ends first takes it at its own
   * end), so at one instant it comes before the segment's expiration.
   *
   * A segment ended inside the usage window still takes the deduction, and
   * its expiration (derived on read until then) is what is left after it.
   * Once its closing entry is recorded the amount is settled: a usage that
   * would draw from it is refused (failed_precondition / segment_closed) and
   * nothing is written, rather than billed to another balance.
   *
   * Idempotent by usage id: the same usage again returns the first result; a
   * different usage under the same id is already_exists.
   */
  async recordUsage(tenantId: string, input: UsageRequest): Promise<UsageResult & { replayed: boolean }> {
    const now = this.clock();
    const usageId = validateIdempotencyKey(input.usageId, "usage_id");
    const customerId = validateAccountId(input.customerId, "customer_id");
    const period = validateServicePeriod(input.startingAt, input.endingBefore);
    const usage = {
      productId: text(input.productId, "product_id"),
      productTags: list(input.productTags, "product_tags"),
      contractId: input.contractId === "" ? null : validateId(input.contractId, "contract_id"),
      asset: validateAssetCode(input.creditTypeId === "" ? DEFAULT_CREDIT_TYPE : input.creditTypeId),
      amount: requirePositiveAmount(input.amount, "amount"),
      ...period,
    };
    const invoiceId = input.invoiceId === "" ? usageId : text(input.invoiceId, "invoice_id");
    const hash = requestHash([
      customerId,
      usage.productId,
      usage.productTags,
      usage.contractId,
      usage.asset,
      String(usage.amount),
      String(usage.startingAt),
      String(usage.endingBefore),
      invoiceId,
    ]);
    return this.counted("usage", this.store.write(async (tx) => {
      // The lock before the usage-id check, so that twins of one usage serialise on it.
      await tx.lockAccounts(tenantId, [customerId]);
      const prior = await tx.getCreditUsage(tenantId, usageId);
      if (prior) {
        if (prior.requestHash !== hash) {
          throw new LedgerError("already_exists", "usage_id_reused", `usage_id "${usageId}" was already used for a different usage`, {
            usage_id: usageId,
          });
        }
        return { ...decodeUsage(prior.result), replayed: true };
      }
      if (!(await tx.getAccount(tenantId, customerId))) throw notFound("customer", customerId);
      // Close what is past the usage window first, whether or not a sweep got
      // there before: what a usage may draw then depends on the clock alone.
      await closeDue(tx, tenantId, customerId, this.closingCutoff(now), now);
      const candidates = [];
      for (const balance of await tx.activeCreditBalances(tenantId, customerId)) {
        candidates.push({ balance, entries: await tx.listCreditEntries(tenantId, balance.id) });
      }
      const { closed, ...result } = planDrawDown(candidates, usage);
      if (closed.length > 0) {
        const c = closed[0]!;
        throw failedPrecondition(
          "segment_closed",
          `schedule item "${c.segment.id}" of balance "${c.balance.id}" was in effect at the start of the service period, but its ${c.closing.type} ` +
            `was recorded and settled what it held: usage of that period can no longer be drawn from it (${c.amount} would have been)`,
          { balance_id: c.balance.id, segment_id: c.segment.id },
        );
      }
      const byId = new Map(candidates.map((c) => [c.balance.id, c.balance]));
      await tx.appendCreditEntries(
        result.draws.map((d) => {
          const b = byId.get(d.balanceId)!;
          const segment = b.segments.find((s) => s.id === d.segmentId)!;
          return entry(b, d.segmentId, "deduction", -d.amount, deductionDate(segment, usage), now, { invoiceId, usageId });
        }),
      );
      await tx.putCreditUsage({ tenantId, usageId, requestHash: hash, result: encodeUsage(result), createdAt: now });
      return { ...result, replayed: false };
    }));
  }

  /**
   * Rolls what is left of a commit or credit over into a new balance of the
   * same kind, customer, contract, product, priority, credit type, applicable
   * products and custom fields. Every segment active at `at` that still holds
   * something gets a *_ROLLOVER entry of minus what it holds, dated `at`,
   * which closes it (it needs no expiration, is not drawn from, not rolled
   * again and takes no manual entry or credit-back); the new balance's
   * segments open with the amount rolled over. One write: all or nothing.
   *
   * Refused with nothing written: `at` in the future; an archived balance;
   * nothing left (failed_precondition / nothing_to_roll_over); a source segment
   * with an entry other than a manual one dated after `at` (what was left at
   * `at` would not be what it holds); a schedule that starts before `at` or
   * whose amounts do not total what is left. Idempotent by the required key.
   *
   * `effectiveAt` backdates the rollover (effective-time.ts): it is the new
   * balance's created_at, under the rule of a creation, and the default of
   * `at`, which may not be after it.
   */
  async rollover(tenantId: string, input: RolloverInput): Promise<RolloverResult> {
    const now = this.clock();
    const key = validateIdempotencyKey(input.idempotencyKey, "idempotency_key");
    if (input.effectiveAt !== undefined) refuseFuture(input.effectiveAt, now);
    const done = input.effectiveAt ?? now;
    const at = input.at ?? done;
    if (at > done) {
      throw invalidArgument(
        "invalid_at",
        input.effectiveAt === undefined
          ? "at must not be in the future: what is left later is not known yet"
          : "at must not be after effective_at: what is left later was not known when the rollover was done",
      );
    }
    const oneSegment = input.endingBefore !== undefined;
    if (oneSegment === (input.segments.length > 0)) {
      throw invalidArgument("invalid_schedule", "give either ending_before or schedule_items for the new balance, not both nor neither");
    }
    if (oneSegment && input.endingBefore! <= at) throw invalidArgument("invalid_schedule", "ending_before must be after at");
    // Validated before the write (generated ids are not part of the request).
    const items = oneSegment ? [] : validateSegments(input.segments);
    for (const [i, s] of items.entries()) {
      if (s.startingAt < at) throw invalidArgument("invalid_schedule", `schedule_items[${i}].starting_at is before at: the amount would count twice`);
    }
    // A retry without `at` is the same request even though the clock moved.
    const hash = requestHash([
      input.balanceId,
      input.customerId,
      input.at === undefined ? null : String(input.at),
      input.endingBefore === undefined ? null : String(input.endingBefore),
      input.segments.map((s) => [s.id, String(s.amount), String(s.startingAt), String(s.endingBefore)]),
      // Only when given, so a request without one keeps the digest it had
      // before effective times existed (an old key still replays).
      ...(input.effectiveAt === undefined ? [] : [String(input.effectiveAt)]),
    ]);
    const stored = `${ROLLOVER_KEYS}${key}`;
    const replay = async (tx: CreditWrite): Promise<RolloverResult | undefined> => {
      const prior = await keyed(tx, tenantId, stored, key, hash);
      if (prior === undefined) return undefined;
      const x = JSON.parse(prior) as { b: string; e: string[]; a: string };
      const balance = await tx.getCreditBalance(tenantId, x.b);
      if (!balance) throw new Error(`rollover ${key}: balance ${x.b} is missing`);
      return { balance, entries: x.e.map(decodeEntry), amount: BigInt(x.a), replayed: true };
    };
    return this.counted("rollover", this.store.write(async (tx) => {
      const early = await replay(tx);
      if (early) return early;
      const b = await lockedBalance(tx, tenantId, input.balanceId);
      if (input.customerId !== "" && b.customerId !== input.customerId) throw notFound("balance", input.balanceId);
      const again = await replay(tx);
      if (again) return again;
      if (b.archivedAt !== null) throw failedPrecondition("balance_archived", `balance "${b.id}" is archived`);
      // Segments past the usage window are closed first: they expired, they
      // do not roll over (nor do ended ones inside it: they are not active at `at`).
      await closeDue(tx, tenantId, b.customerId, this.closingCutoff(now), now);
      const seg = bySegment(await tx.listCreditEntries(tenantId, b.id));
      const rolls: NewCreditEntry[] = [];
      let left = 0n;
      for (const s of b.segments) {
        // A segment that had ended when the rollover was done (now, or its
        // effective time) expires, it does not roll over, even while its usage
        // window keeps its expiration open.
        if (!isActive(s, at) || s.endingBefore <= done) continue;
        const mine = seg.get(s.id) ?? [];
        if (mine.some(isClosing)) continue;
        const late = mine.find((e) => e.timestamp > at && !e.type.endsWith("_MANUAL"));
        if (late && input.at === undefined && input.effectiveAt !== undefined) {
          // `at` is the effective time the client gave: the refusal names that.
          throw failedPrecondition(
            "effective_at_too_early",
            `effective_at ${formatMicros(at)} is before ${formatMicros(late.timestamp)}, the date of the ${late.type} entry on schedule item "${s.id}" of balance "${b.id}"`,
            { balance_id: b.id, segment_id: s.id, latest_effective_at: formatMicros(late.timestamp) },
          );
        }
        if (late) {
          throw failedPrecondition("entries_after_rollover", `schedule item "${s.id}" has a ${late.type} entry dated after at: roll over at a later instant`);
        }
        const held = remaining(mine);
        if (held === 0n) continue;
        rolls.push(entry(b, s.id, "rollover", -held, at, now, {}));
        left = checkedAdd(left, held, "rollover amount");
      }
      if (left === 0n) throw failedPrecondition("nothing_to_roll_over", `balance "${b.id}" has nothing left at that instant`);
      const segments: Segment[] = oneSegment ? [{ id: newId("seg"), amount: left, startingAt: at, endingBefore: input.endingBefore! }] : items;
      const total = segments.reduce((x, s) => x + s.amount, 0n);
      if (total !== left) {
        throw failedPrecondition("rollover_amount_mismatch", `schedule_items total ${total} but ${left} is left to roll over`, { left: String(left) });
      }
      const customer = await tx.getAccount(tenantId, b.customerId);
      if (!customer) throw new Error(`balance ${b.id}: customer ${b.customerId} is missing`);
      const createdAt = creditEffectiveTime(input.effectiveAt, now, creationFloors(customer, await tx.latestCreditCreatedAt(tenantId, b.customerId)));
      const { ordinal: _ordinal, ...source } = b;
      const balance = await insertBalance(
        tx,
        { ...source, id: newId(b.kind === "CREDIT" ? "cred" : "cmt"), uniquenessKey: null, segments, archivedAt: null, createdAt },
        now,
      );
      const entries = await tx.appendCreditEntries(rolls);
      // A new schedule with segments ended before the usage window closes them at once, as on create.
      await closeDue(tx, tenantId, b.customerId, this.closingCutoff(now), now);
      const result = JSON.stringify({ b: balance.id, e: entries.map(encodeEntry), a: String(left) });
      await tx.putCreditManualKey({ tenantId, key: stored, requestHash: hash, result, createdAt: now });
      return { balance, entries, amount: left, replayed: false };
    }));
  }

  /**
   * Credits back part or all of a usage's automated invoice deductions (an
   * invoice was voided): *_CREDITED entries of +amount, dated now, with the
   * deductions' invoice id, on the segments the usage drew from, the last
   * drawn first (so crediting back X of a usage of A leaves the segments as a
   * usage of A - X would have). Never more than was deducted, over all
   * credit-backs of the usage. A segment that has ended, was closed (expired,
   * canceled, rolled over) or whose balance is archived takes nothing back, nor
   * does a postpaid commit (Metronome has no POSTPAID_COMMIT_CREDITED): what
   * was drawn from those is lost, and asking for it is failed_precondition.
   * Idempotent by the required key.
   *
   * `effectiveAt` backdates it (effective-time.ts): the entries are dated
   * then, a segment that had ended by then is lost as above, and it is not
   * before the created_at of a balance it credits nor before the latest
   * dated entry on a segment it credits.
   */
  async creditBackUsage(tenantId: string, input: CreditBackInput): Promise<CreditBackResult> {
    const now = this.clock();
    const key = validateIdempotencyKey(input.idempotencyKey, "idempotency_key");
    const usageId = validateIdempotencyKey(input.usageId, "usage_id");
    const customerId = validateAccountId(input.customerId, "customer_id");
    const amount = requirePositiveAmount(input.amount, "amount");
    const invoiceId = input.invoiceId === "" ? null : text(input.invoiceId, "invoice_id");
    if (input.effectiveAt !== undefined) refuseFuture(input.effectiveAt, now);
    const at = input.effectiveAt ?? now;
    // effective_at only when given, as in rollover.
    const hash = requestHash([usageId, customerId, String(amount), invoiceId, ...(input.effectiveAt === undefined ? [] : [String(input.effectiveAt)])]);
    const stored = `${CREDIT_BACK_KEYS}${key}`;
    return this.counted("credit_back", this.store.write(async (tx) => {
      // The lock first, as in recordUsage: credit-backs of one usage serialise on it.
      await tx.lockAccounts(tenantId, [customerId]);
      const prior = await keyed(tx, tenantId, stored, key, hash);
      if (prior !== undefined) {
        const x = JSON.parse(prior) as { d: [string, string, string][]; u: string };
        return { credits: x.d.map(([balanceId, segmentId, a]) => ({ balanceId, segmentId, amount: BigInt(a) })), uncredited: BigInt(x.u), replayed: true };
      }
      if (!(await tx.getAccount(tenantId, customerId))) throw notFound("customer", customerId);
      const usage = await tx.getCreditUsage(tenantId, usageId);
      if (!usage) throw notFound("usage", usageId);
      const draws = decodeUsage(usage.result).draws;
      const balances = new Map<string, CreditBalance>();
      for (const d of draws) {
        if (balances.has(d.balanceId)) continue;
        const b = await tx.getCreditBalance(tenantId, d.balanceId);
        if (!b) throw new Error(`usage ${usageId}: balance ${d.balanceId} is missing`);
        balances.set(b.id, b);
      }
      // The usage of another customer looks like one that does not exist.
      if ([...balances.values()].some((b) => b.customerId !== customerId)) throw notFound("usage", usageId);
      await closeDue(tx, tenantId, customerId, this.closingCutoff(now), now);
      const entries = new Map<string, CreditEntry[]>();
      for (const id of balances.keys()) entries.set(id, await tx.listCreditEntries(tenantId, id));
      const ofUsage = [...entries.values()].flat().filter((e) => e.usageId === usageId);
      const deductionInvoice = ofUsage.find((e) => e.type.endsWith("_AUTOMATED_INVOICE_DEDUCTION"))?.invoiceId ?? null;
      if (invoiceId !== null && invoiceId !== deductionInvoice) {
        throw invalidArgument("invoice_id_mismatch", `usage "${usageId}" was not deducted on invoice "${invoiceId}"`);
      }
      // What each draw can still take back, the last drawn first.
      let deducted = 0n;
      let credited = 0n;
      const slots: { balance: CreditBalance; segmentId: string; open: bigint; why: string | null }[] = [];
      for (const d of [...draws].reverse()) {
        const b = balances.get(d.balanceId)!;
        const mine = entries.get(b.id)!.filter((e) => e.segmentId === d.segmentId);
        const back = mine.filter((e) => e.usageId === usageId && e.type.endsWith("_CREDITED")).reduce((x, e) => x + e.amount, 0n);
        deducted += d.amount;
        credited += back;
        const segment = b.segments.find((s) => s.id === d.segmentId)!;
        const why =
          b.kind === "POSTPAID"
            ? "is a postpaid commit's (Metronome has no POSTPAID_COMMIT_CREDITED)"
            : b.archivedAt !== null
              ? "belongs to an archived balance"
              : segment.endingBefore <= at
                ? "has ended"
                : mine.some(isClosing)
                  ? "was closed"
                  : null;
        slots.push({ balance: b, segmentId: d.segmentId, open: d.amount - back, why });
      }
      const uncredited = deducted - credited;
      if (amount > uncredited) {
        throw failedPrecondition(
          "credit_back_exceeds_deduction",
          `usage "${usageId}" had ${deducted} deducted from balances and ${credited} credited back: at most ${uncredited} can be credited back, not ${amount}`,
          { deducted: String(deducted), credited: String(credited) },
        );
      }
      const creditable = slots.filter((s) => s.why === null).reduce((x, s) => x + s.open, 0n);
      if (amount > creditable) {
        const lost = slots.filter((s) => s.why !== null && s.open > 0n).map((s) => `${s.open} on schedule item "${s.segmentId}", which ${s.why}`);
        throw failedPrecondition(
          "segment_closed",
          `usage "${usageId}": ${lost.join("; ")}. That amount is lost and cannot be credited back; at most ${creditable} can be`,
          { creditable: String(creditable) },
        );
      }
      let need = amount;
      const credits: Draw[] = [];
      for (const s of slots) {
        if (need === 0n) break;
        if (s.why !== null || s.open === 0n) continue;
        const take = s.open < need ? s.open : need;
        credits.push({ balanceId: s.balance.id, segmentId: s.segmentId, amount: take });
        need -= take;
      }
      if (input.effectiveAt !== undefined) {
        const floors = [...balances.values()].flatMap((b) => {
          const mine = new Set(credits.filter((c) => c.balanceId === b.id).map((c) => c.segmentId));
          return mine.size === 0 ? [] : changeFloors(b, entries.get(b.id)!, mine);
        });
        creditEffectiveTime(input.effectiveAt, now, floors);
      }
      await tx.appendCreditEntries(
        credits.map((c) => entry(balances.get(c.balanceId)!, c.segmentId, "credited", c.amount, at, now, { invoiceId: deductionInvoice ?? usageId, usageId })),
      );
      const left = uncredited - amount;
      const result = JSON.stringify({ d: credits.map((c) => [c.balanceId, c.segmentId, String(c.amount)]), u: String(left) });
      await tx.putCreditManualKey({ tenantId, key: stored, requestHash: hash, result, createdAt: now });
      return { credits, uncredited: left, replayed: false };
    }));
  }

  /**
   * One page of a customer's balances matching the query, in creation order
   * (the store's ordinal: balances created during a walk come after it), and
   * whether more follow. Filters are applied while scanning, so a page is
   * always full unless the listing is done.
   */
  async list(tenantId: string, q: ListQuery): Promise<{ items: BalanceView[]; more: boolean }> {
    await this.requireCustomer(tenantId, q.customerId);
    const items: BalanceView[] = [];
    let after = q.afterOrdinal;
    const batch = 100;
    for (;;) {
      const rows = q.id !== "" ? await this.byId(tenantId, q.customerId, q.id, after) : await this.store.listCreditBalances(tenantId, q.customerId, after, batch);
      for (const b of rows) {
        const view = await this.view(tenantId, b, q);
        if (!view) continue;
        if (items.length === q.limit) return { items, more: true };
        items.push(view);
      }
      if (q.id !== "" || rows.length < batch) return { items, more: false };
      after = rows[rows.length - 1]!.ordinal;
    }
  }

  private async byId(tenantId: string, customerId: string, id: string, after: bigint): Promise<CreditBalance[]> {
    const b = await this.store.getCreditBalance(tenantId, id);
    return b && b.customerId === customerId && b.ordinal > after ? [b] : [];
  }

  private async view(tenantId: string, b: CreditBalance, q: ListQuery): Promise<BalanceView | undefined> {
    if (!q.includeContractBalances && b.contractId !== null) return undefined;
    if (!q.includeArchived && b.archivedAt !== null) return undefined;
    const d = q.coveringDate;
    if (d !== undefined && !b.segments.some((s) => isActive(s, d))) return undefined;
    const from = q.startingAt;
    if (from !== undefined && !b.segments.some((s) => s.endingBefore > from)) return undefined;
    const before = q.effectiveBefore;
    if (before !== undefined && !b.segments.some((s) => s.startingAt < before)) return undefined;
    if (!q.includeBalance && !q.includeLedgers && !q.excludeZeroBalances) return { balance: b };
    const entries = await this.store.listCreditEntries(tenantId, b.id);
    const amount = balanceAt(b, entries, q.at);
    if (q.excludeZeroBalances && amount === 0n) return undefined;
    return {
      balance: b,
      ...(q.includeBalance ? { amount } : {}),
      ...(q.includeLedgers ? { ledger: ledgerAt(b, entries, q.at) } : {}),
    };
  }

  /**
   * The sum of a customer's unarchived balances of one credit type at `at`
   * that match any filter (all when there is none); each segment counts at
   * least zero.
   */
  async netBalance(tenantId: string, customerId: string, creditTypeId: string, filters: readonly NetFilter[], at: bigint): Promise<{ balance: bigint; asset: string }> {
    const asset = validateAssetCode(creditTypeId === "" ? DEFAULT_CREDIT_TYPE : creditTypeId);
    for (const f of filters) {
      for (const t of f.balanceTypes) {
        if (!(t in BALANCE_TYPES)) throw invalidArgument("invalid_balance_type", `balance_types must be PREPAID_COMMIT, POSTPAID_COMMIT or CREDIT, got ${JSON.stringify(t)}`);
      }
    }
    await this.requireCustomer(tenantId, customerId);
    let total = 0n;
    let after = 0n;
    for (;;) {
      const rows = await this.store.listCreditBalances(tenantId, customerId, after, 500);
      for (const b of rows) {
        if (b.archivedAt !== null || b.asset !== asset) continue;
        if (filters.length > 0 && !filters.some((f) => matches(b, f))) continue;
        total = checkedAdd(total, balanceAt(b, await this.store.listCreditEntries(tenantId, b.id), at), "net balance");
      }
      if (rows.length < 500) return { balance: total, asset };
      after = rows[rows.length - 1]!.ordinal;
    }
  }

  private async requireCustomer(tenantId: string, customerId: string): Promise<void> {
    validateAccountId(customerId, "customer_id");
    if (!(await this.store.getAccount(tenantId, customerId))) throw notFound("customer", customerId);
  }
}

function matches(b: CreditBalance, f: NetFilter): boolean {
  if (f.balanceTypes.length > 0 && !f.balanceTypes.some((t) => BALANCE_TYPES[t] === b.kind)) return false;
  if (f.ids.length > 0 && !f.ids.includes(b.id)) return false;
  for (const [k, v] of Object.entries(f.customFields)) if (b.customFields[k] !== v) return false;
  return true;
}

/**
 * Reads a balance, takes its customer's lock, and reads it again: only what is
 * read under the lock (archived_at above all) can be relied on.
 */
async function lockedBalance(tx: CreditWrite, tenantId: string, id: string): Promise<CreditBalance> {
  const first = id === "" ? undefined : await tx.getCreditBalance(tenantId, id);
  if (!first) throw notFound("balance", id);
  await tx.lockAccounts(tenantId, [first.customerId]);
  const b = await tx.getCreditBalance(tenantId, id);
  if (!b) throw notFound("balance", id);
  return b;
}

/**
 * Inserts a balance and its segments' opening entries (written at `now`, the
 * commit time, whatever the balance's created_at), refusing a segment id
 * already taken in the tenant. The caller holds the customer's lock.
 */
async function insertBalance(tx: CreditWrite, draft: Omit<CreditBalance, "ordinal">, now: bigint): Promise<CreditBalance> {
  for (const s of draft.segments) {
    if (await tx.creditSegmentExists(draft.tenantId, s.id)) {
      throw new LedgerError("already_exists", "segment_exists", `schedule item "${s.id}" already exists`);
    }
  }
  const balance = await tx.insertCreditBalance(draft);
  await tx.appendCreditEntries(draft.segments.map((s) => entry(balance, s.id, "start", s.amount, s.startingAt, now, {})));
  return balance;
}

/**
 * Rollovers' and credit-backs' idempotency keys live in the manual entries'
 * key table, each under its own prefix. Client keys have no spaces
 * (validateIdempotencyKey), so a prefix ending in a space can never collide
 * with a manual entry's key or with the other operation's.
 */
const ROLLOVER_KEYS = "rollover ";
const CREDIT_BACK_KEYS = "credit-back ";

/**
 * The stored result under a key when the request is the same; undefined when
 * the key is new; already_exists / idempotency_key_reused for another request.
 */
async function keyed(tx: CreditWrite, tenantId: string, stored: string, key: string, hash: string): Promise<string | undefined> {
  const prior = await tx.getCreditManualKey(tenantId, stored);
  if (!prior) return undefined;
  if (prior.requestHash !== hash) {
    throw new LedgerError("already_exists", "idempotency_key_reused", `idempotency_key "${key}" was already used for a different request`, {
      idempotency_key: key,
    });
  }
  return prior.result;
}

function requestHash(parts: unknown): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("base64url");
}

/**
 * Stores the closing entries of the customer's unarchived balances whose
 * segments ended at or before `cutoff` (now less the usage window; rules.ts,
 * dueClosings), written at `now`. The caller holds the customer's lock.
 * Returns how many were written.
 */
async function closeDue(tx: CreditWrite, tenantId: string, customerId: string, cutoff: bigint, now: bigint): Promise<number> {
  const due: NewCreditEntry[] = [];
  for (const b of await tx.activeCreditBalances(tenantId, customerId)) {
    if (!b.segments.some((s) => s.endingBefore <= cutoff)) continue;
    due.push(...dueClosings(b, await tx.listCreditEntries(tenantId, b.id), cutoff, now));
  }
  await tx.appendCreditEntries(due);
  return due.length;
}

function entry(
  b: CreditBalance | Omit<CreditBalance, "ordinal">,
  segmentId: string,
  action: "start" | "deduction" | "manual" | "cancel" | "rollover" | "credited",
  amount: bigint,
  timestamp: bigint,
  now: bigint,
  extra: { invoiceId?: string; reason?: string; usageId?: string },
): NewCreditEntry {
  return {
    tenantId: b.tenantId,
    balanceId: b.id,
    segmentId,
    type: entryTypeFor(b.kind, action),
    amount,
    timestamp,
    invoiceId: extra.invoiceId ?? null,
    reason: extra.reason ?? null,
    usageId: extra.usageId ?? null,
    createdAt: now,
  };
}

async function ensureAsset(tx: CreditWrite, tenantId: string, code: string, now: bigint): Promise<void> {
  if (await tx.getAsset(tenantId, code)) return;
  await tx.insertAsset(tenantId, { code, scale: defaultScale(code) }, now);
}

/** Contract and segment ids: 1-128 chars of [A-Za-z0-9_-] (UUIDs fit). */
function validateId(id: string, field: string): string {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(id)) {
    throw invalidArgument("invalid_id", `${field} must be 1-128 characters of [A-Za-z0-9_-]`, { field });
  }
  return id;
}

/**
 * The creation-order cursor a signed page token carries (the last ordinal
 * listed). A token signed before listings followed creation order carried an
 * id instead: it is refused like any token that does not fit the query.
 */
export function ordinalCursor(cursor: string): bigint {
  if (!/^[1-9][0-9]{0,18}$/.test(cursor)) throw invalidArgument("invalid_page_token", "page_token is invalid for this request");
  return BigInt(cursor);
}

/**
 * A usage's service period: both ends given and representable, the start
 * before the end, at most {@link MAX_SERVICE_PERIOD} long. It may end after
 * now (an invoice still open): its deductions are then dated in the future,
 * count in balances from then, and in what a segment can still give at once.
 */
function validateServicePeriod(startingAt: bigint | undefined, endingBefore: bigint | undefined): { startingAt: bigint; endingBefore: bigint } {
  const bad = (m: string) => invalidArgument("invalid_service_period", m);
  if (startingAt === undefined || endingBefore === undefined) {
    throw bad("starting_at and ending_before (the usage's service period) are required");
  }
  for (const [v, field] of [[startingAt, "starting_at"], [endingBefore, "ending_before"]] as const) {
    if (v < MIN_INSTANT || v > MAX_INSTANT) throw invalidArgument("invalid_timestamp", `${field} is outside 0001-01-01..9999-12-31`, { field });
  }
  if (endingBefore <= startingAt) throw bad("ending_before must be after starting_at");
  if (endingBefore - startingAt > MAX_SERVICE_PERIOD) throw bad("a service period may be at most 366 days long");
  return { startingAt, endingBefore };
}

function validateSegments(input: readonly SegmentInput[]): Segment[] {
  if (input.length === 0) throw invalidArgument("invalid_schedule", "schedule_items must not be empty");
  if (input.length > MAX_SEGMENTS) throw invalidArgument("invalid_schedule", `at most ${MAX_SEGMENTS} schedule_items`);
  const ids = new Set<string>();
  let total = 0n;
  return input.map((s, i) => {
    const field = `schedule_items[${i}]`;
    const id = s.id === "" ? newId("seg") : validateId(s.id, `${field}.id`);
    if (ids.has(id)) throw invalidArgument("invalid_schedule", `${field}.id "${id}" appears twice`);
    ids.add(id);
    if (s.startingAt === undefined || s.endingBefore === undefined) {
      throw invalidArgument("invalid_schedule", `${field} needs starting_at and ending_before`);
    }
    if (s.startingAt >= s.endingBefore) throw invalidArgument("invalid_schedule", `${field}.starting_at must be before ending_before`);
    const amount = requirePositiveAmount(s.amount, `${field}.amount`);
    // The whole schedule must fit in int64, so no balance of it can overflow on the wire.
    total = checkedAdd(total, amount, "schedule total");
    return { id, amount, startingAt: s.startingAt, endingBefore: s.endingBefore };
  });
}

function text(v: string, field: string): string {
  if (v.length > TEXT_MAX) throw invalidArgument("invalid_argument", `${field} must be at most ${TEXT_MAX} characters`, { field });
  return validateText(v, field);
}

function list(v: readonly string[], field: string): string[] {
  if (v.length > LIST_MAX) throw invalidArgument("invalid_argument", `${field} may have at most ${LIST_MAX} entries`, { field });
  for (const x of v) text(x, field);
  return [...v];
}

function encodeUsage(r: UsageResult): string {
  return JSON.stringify({ d: r.draws.map((d) => [d.balanceId, d.segmentId, String(d.amount)]), u: String(r.uncovered) });
}

function decodeUsage(s: string): UsageResult {
  const x = JSON.parse(s) as { d: [string, string, string][]; u: string };
  return { draws: x.d.map(([balanceId, segmentId, amount]) => ({ balanceId, segmentId, amount: BigInt(amount) })), uncovered: BigInt(x.u) };
}

function encodeEntry(e: CreditEntry): string {
  return JSON.stringify({ ...e, amount: String(e.amount), timestamp: String(e.timestamp), createdAt: String(e.createdAt), sequence: String(e.sequence) });
}

function decodeEntry(s: string): CreditEntry {
  const x = JSON.parse(s) as Omit<CreditEntry, "amount" | "timestamp" | "createdAt" | "sequence" | "type"> & {
    type: CreditEntryType;
    amount: string;
    timestamp: string;
    createdAt: string;
    sequence: string;
  };
  return { ...x, amount: BigInt(x.amount), timestamp: BigInt(x.timestamp), createdAt: BigInt(x.createdAt), sequence: BigInt(x.sequence) };
}
