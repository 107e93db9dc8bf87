import { effectiveTimeOf } from "../effective-time.js";
import type { Account } from "../model.js";
import type { CreditBalance, CreditEntry } from "./model.js";

/**
 * The effective-time rule of commits and credits. A credits write may say
 * when it took effect (`effective_at`, epoch microseconds), so that an
 * existing ledger (a Metronome customer's commits and credits, say) can be
 * brought in with its own history: creating a commit or credit (its
 * created_at), archiving (archived_at and the cancellations), rolling over
 * (the new balance's created_at, and the default of `at`) and crediting back
 * (the *_CREDITED entries).
 *
 * - An effective time is not in the future (the ledger's clock at commit).
 * - A creation is not before the customer's account was opened, nor before
 *   the created_at of the customer's latest commit or credit.
 * - A change of existing balances (archive, credit-back) is not before the
 *   balance's created_at, nor before the latest dated entry on a segment it
 *   changes (every segment of the balance, for an archive): a deduction, a
 *   closing (expiration, true-up, cancellation, rollover; stored, or due
 *   because its usage window has passed) or a credit-back. Openings and
 *   manual entries do not count (below). A rollover's `at` has had the same
 *   floor on the segments it closes all along (entries_after_rollover;
 *   effective_at_too_early when `at` defaults to effective_at).
 *
 * Why this rule: a commit or credit keeps no running-balance column; what a
 * segment held is the sum of its entries, and the entries computed from it
 * store it. A closing is minus what its segment held at its timestamp, a
 * deduction took at most what was left, and verify replays each segment in
 * write order and checks exactly that. Those stored amounts are true at their
 * timestamps only while, along a segment's write order, its dated entries
 * are in time order too, so that "what was left before it in write order" is
 * "what the segment held at its timestamp". A backdated change written behind
 * one of them would count before it in time without having counted in it: a
 * cancellation dated before a deduction already billed would have the
 * archived balance pay for usage after its archive; an archive before a
 * stored expiration would contradict what the expiration says was left then;
 * a credit-back dated before a later deduction would give that segment more
 * at the deduction's time than the deduction saw. The floor is the segments'
 * latest dated entry, and it keeps every one of those amounts true.
 *
 * Two kinds of entry carry no such history and are left out: a segment's
 * opening is dated by its schedule (`starting_at`, in the future or before
 * the balance was created alike), and a manual entry counts whatever its date
 * (Metronome's rule), so its timestamp never moves a balance. Counting them
 * would refuse ordinary imports (a future segment would block any backdated
 * archive) and protect no amount.
 *
 * A creation writes on no existing segment. What it could rewrite is the
 * customer's order of creation, which listings follow and the draw-down uses
 * for its last tie-break ("the balance created first"): with its floors,
 * created_at never decreases along a customer's creation order, and no
 * balance is older than its customer.
 *
 * A write without effective_at is effective when it commits, as before; a
 * creation, if the customer's latest created_at is later (another replica's
 * clock ran ahead), at that time instead, so the order above still holds. The
 * floors of a change bind backdated changes only: a change now may still come
 * before an entry that its own rule dates in the future (the deduction of a
 * service period still open), as it always could. RecordUsage and
 * AddManualLedgerEntry take no effective_at: a usage is dated by its service
 * period and a manual entry by its own `timestamp`.
 */

/** A time a credits write must not be effective before, and what recorded it. */
export interface CreditFloor {
  readonly at: bigint;
  /** What recorded it, as the refusal names it. */
  readonly what: string;
  /** Ids for the refusal's metadata. */
  readonly metadata: Readonly<Record<string, string>>;
}

/**
 * The time a credits write takes effect under the rule above: the requested
 * time when it is neither in the future (invalid_argument /
 * effective_at_in_future) nor before a floor (failed_precondition /
 * effective_at_too_early, naming it); without one, now, or the latest floor
 * if that is later.
 */
export function creditEffectiveTime(requested: bigint | undefined, now: bigint, floors: readonly CreditFloor[]): bigint {
  return effectiveTimeOf(requested, now, floors, (f) => f);
}

/** What a new commit or credit of a customer must not be created before. */
export function creationFloors(customer: Account, latestCreatedAt: bigint | undefined): CreditFloor[] {
  const floors: CreditFloor[] = [
    { at: customer.createdAt, what: `when the customer's account "${customer.id}" was opened`, metadata: { customer_id: customer.id } },
  ];
  if (latestCreatedAt !== undefined) {
    floors.push({ at: latestCreatedAt, what: `the created_at of customer "${customer.id}"'s latest commit or credit`, metadata: { customer_id: customer.id } });
  }
  return floors;
}

/**
 * What a change of a balance must not be effective before: its created_at
 * and the latest dated entry on the given segments (all of them when none
 * are given).
 */
export function changeFloors(b: CreditBalance, entries: readonly CreditEntry[], segmentIds?: ReadonlySet<string>): CreditFloor[] {
  const floors: CreditFloor[] = [{ at: b.createdAt, what: `the created_at of balance "${b.id}"`, metadata: { balance_id: b.id } }];
  let latest: CreditEntry | undefined;
  for (const e of entries) {
    if (segmentIds !== undefined && !segmentIds.has(e.segmentId)) continue;
    if (!datesHistory(e)) continue;
    if (latest === undefined || e.timestamp > latest.timestamp) latest = e;
  }
  if (latest !== undefined) {
    floors.push({
      at: latest.timestamp,
      what: `the date of the ${latest.type} entry on schedule item "${latest.segmentId}" of balance "${b.id}"`,
      metadata: { balance_id: b.id, segment_id: latest.segmentId },
    });
  }
  return floors;
}

/** Whether an entry's timestamp is a point of its segment's history (not an opening, not a manual entry: see above). */
function datesHistory(e: CreditEntry): boolean {
  return !(e.type.endsWith("_SEGMENT_START") || e.type === "POSTPAID_COMMIT_INITIAL_BALANCE" || e.type.endsWith("_MANUAL"));
}
