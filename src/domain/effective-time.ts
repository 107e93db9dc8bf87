import { failedPrecondition, invalidArgument } from "./errors.js";
import { formatMicros } from "./micros.js";

/**
 * The effective-time rule, after TigerBeetle's imported events: a write may
 * say when it took effect (`effective_at`, epoch microseconds), so that an
 * existing ledger can be brought in with its own history.
 *
 * - An effective time is not in the future (the ledger's clock at commit).
 * - It is not earlier than the latest effective time already recorded on
 *   anything the write touches: the balance rows of its accounts in its asset
 *   and the accounts' own last account-level event (opening, freeze,
 *   unfreeze). So within one (account, asset) effective times never go back
 *   along the journal's sequence, and every entry's post-entry balance is the
 *   account's balance at that entry's effective time.
 * - A write without one is effective at commit time; if something it touches
 *   already carries a later effective time (another replica's clock ran
 *   ahead), at that time instead, so the order above still holds.
 */

/** A latest effective time a write must not go before, and whose it is. */
export interface EffectiveFloor {
  readonly at: bigint;
  /** The account it belongs to, named in the refusal. */
  readonly accountId: string;
}

/** The time a write takes effect under the rule above. */
export function effectiveTime(requested: bigint | undefined, now: bigint, floors: readonly EffectiveFloor[]): bigint {
  return effectiveTimeOf(requested, now, floors, (f) => ({
    what: `the latest effective time already recorded on account "${f.accountId}"`,
    metadata: { account_id: f.accountId },
  }));
}

/**
 * The rule over any kind of floor (the ledger's, the credits'): the requested
 * time when it is neither in the future (invalid_argument /
 * effective_at_in_future) nor before the latest floor (failed_precondition /
 * effective_at_too_early, naming it as `describe` says); without one, now, or
 * the latest floor if that is later (a clock that ran behind).
 */
export function effectiveTimeOf<F extends { readonly at: bigint }>(
  requested: bigint | undefined,
  now: bigint,
  floors: readonly F[],
  describe: (floor: F) => { readonly what: string; readonly metadata: Readonly<Record<string, string>> },
): bigint {
  let floor: F | undefined;
  for (const f of floors) if (floor === undefined || f.at > floor.at) floor = f;
  if (requested === undefined) return floor !== undefined && floor.at > now ? floor.at : now;
  refuseFuture(requested, now);
  if (floor !== undefined && requested < floor.at) {
    const { what, metadata } = describe(floor);
    throw failedPrecondition("effective_at_too_early", `effective_at ${formatMicros(requested)} is before ${formatMicros(floor.at)}, ${what}`, {
      ...metadata,
      latest_effective_at: formatMicros(floor.at),
    });
  }
  return requested;
}

/** Refuses an effective time after the ledger's clock: invalid_argument / effective_at_in_future. */
export function refuseFuture(requested: bigint, now: bigint): void {
  if (requested > now) {
    throw invalidArgument("effective_at_in_future", `effective_at ${formatMicros(requested)} is in the future (the ledger's time is ${formatMicros(now)})`);
  }
}

/** Checks an `as_of` read time: a past or present instant. */
export function requireReadableTime(asOf: bigint, now: bigint): bigint {
  if (asOf > now) throw invalidArgument("as_of_in_future", `as_of ${formatMicros(asOf)} is in the future (the ledger's time is ${formatMicros(now)})`);
  return asOf;
}
