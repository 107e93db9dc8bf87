import { create } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import type {
  Account as AccountMsg,
  Balance as BalanceMsg,
  Transaction as TransactionMsg,
  Transfer as TransferMsg,
} from "../../gen/tally/ledger/v1/ledger_pb.js";
import {
  AccountSchema,
  BalanceSchema,
  TransactionSchema,
  TransferSchema,
  TransferStatus,
} from "../../gen/tally/ledger/v1/ledger_pb.js";
import type { Account, Balance, EntryView, Transfer } from "../domain/model.js";
import { invalidArgument } from "../domain/errors.js";
import { splitMicros } from "../domain/micros.js";

/** Epoch microseconds to a Timestamp, exactly. */
export function timestampFromMicros(us: bigint): Timestamp {
  const { seconds, micros } = splitMicros(us);
  return create(TimestampSchema, { seconds, nanos: Number(micros) * 1000 });
}

/**
 * An optional Timestamp field to epoch microseconds, exactly: undefined when
 * unset; a time before 1970 or with sub-microsecond nanos is refused rather
 * than rounded (the ledger keeps microseconds).
 */
export function microsFromTimestamp(ts: Timestamp | undefined, field: string): bigint | undefined {
  if (ts === undefined) return undefined;
  if (ts.seconds < 0n || ts.nanos < 0 || ts.nanos > 999_999_999) {
    throw invalidArgument(`invalid_${field}`, `${field} must be a valid time at or after 1970-01-01T00:00:00Z`);
  }
  if (ts.nanos % 1000 !== 0) throw invalidArgument(`invalid_${field}`, `${field} must be a whole number of microseconds`);
  // Timestamp's own range ends at 9999-12-31; beyond it a client sent something no clock reads.
  if (ts.seconds > 253_402_300_799n) throw invalidArgument(`invalid_${field}`, `${field} must be before year 10000`);
  return ts.seconds * 1_000_000n + BigInt(ts.nanos / 1000);
}

const STATUS: Record<Transfer["status"], TransferStatus> = {
  PENDING: TransferStatus.PENDING,
  POSTED: TransferStatus.POSTED,
  VOIDED: TransferStatus.VOIDED,
};

/** Domain account to its wire form. */
export function accountToProto(a: Account): AccountMsg {
  return create(AccountSchema, {
    id: a.id,
    overdraftLimit: a.overdraftLimit,
    overdraftUnlimited: a.overdraftUnlimited,
    metadata: { ...a.metadata },
    locked: a.frozenAt !== null,
    lockedAt: a.frozenAt === null ? undefined : timestampFromMicros(a.frozenAt),
    createdAt: timestampFromMicros(a.createdAt),
  });
}

/** Domain balance to its wire form. */
export function balanceToProto(b: Balance): BalanceMsg {
  return create(BalanceSchema, {
    accountId: b.accountId,
    asset: b.asset,
    scale: b.scale,
    posted: b.posted,
    pendingIn: b.pendingIn,
    pendingOut: b.pendingOut,
    available: b.available,
    locked: b.frozenAt !== null,
    lockedAt: b.frozenAt === null ? undefined : timestampFromMicros(b.frozenAt),
    updatedAt: timestampFromMicros(b.updatedAt),
    sequence: b.sequence,
  });
}

/** Domain transfer to its wire form. */
export function transferToProto(t: Transfer): TransferMsg {
  return create(TransferSchema, {
    id: t.id,
    idempotencyKey: t.idempotencyKey,
    debitAccountId: t.debitAccountId,
    creditAccountId: t.creditAccountId,
    asset: t.asset,
    amount: t.amount,
    postedAmount: t.postedAmount,
    kind: t.kind,
    note: t.note,
    metadata: { ...t.metadata },
    status: STATUS[t.status],
    createdAt: timestampFromMicros(t.createdAt),
    updatedAt: timestampFromMicros(t.updatedAt),
    sequence: t.sequence,
    debitBalanceAfter: t.debitBalanceAfter,
    creditBalanceAfter: t.creditBalanceAfter,
    effectiveAt: timestampFromMicros(t.effectiveAt),
  });
}

/** A journal entry to its wire form. */
export function entryToProto(e: EntryView): TransactionMsg {
  return create(TransactionSchema, {
    id: e.sequence.toString(),
    transferId: e.transferId,
    accountId: e.accountId,
    counterpartyAccountId: e.counterpartyId,
    asset: e.asset,
    amount: e.amount,
    kind: e.kind,
    note: e.note,
    status: STATUS[e.status],
    balanceAfter: e.postedAfter,
    sequence: e.sequence,
    createdAt: timestampFromMicros(e.createdAt),
    metadata: { ...e.metadata },
    effectiveAt: timestampFromMicros(e.effectiveAt),
  });
}
