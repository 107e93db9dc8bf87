import { createHash } from "node:crypto";
import type { IdempotencyRecord, Transfer } from "./model.js";

/**
 * The idempotency record of a newly created transfer: the request's digest,
 * the transfer's id and what of the first answer its row may later lose.
 */
export function idempotencyRecordOf(transfer: Transfer, requestHash: string): IdempotencyRecord {
  return {
    tenantId: transfer.tenantId,
    key: transfer.idempotencyKey,
    requestHash,
    transferId: transfer.id,
    sequence: transfer.sequence,
    debitBalanceAfter: transfer.debitBalanceAfter,
    creditBalanceAfter: transfer.creditBalanceAfter,
  };
}

/**
 * The transfer exactly as the first call answered it, from its current row
 * and its idempotency record. A row only changes when a pending transfer is
 * posted or voided, and that moves its sequence; so a row whose sequence is
 * the recorded one is as it was created, and any other was created pending
 * with nothing posted yet.
 */
export function replayedTransfer(current: Transfer, record: IdempotencyRecord): Transfer {
  if (current.sequence === record.sequence) return current;
  return {
    ...current,
    status: "PENDING",
    postedAmount: 0n,
    updatedAt: current.createdAt,
    sequence: record.sequence,
    debitBalanceAfter: record.debitBalanceAfter,
    creditBalanceAfter: record.creditBalanceAfter,
  };
}

/**
 * A digest of everything that defines a transfer request (its effective
 * time and an imported id included: the same key with another effective time is another request). Two requests with
 * one idempotency key are "the same request" exactly when their digests match.
 * Metadata keys are sorted so that map order on the wire does not matter.
 */
export function transferRequestHash(input: {
  debitAccountId: string;
  creditAccountId: string;
  asset: string;
  amount: bigint;
  kind: string;
  note: string;
  metadata: Readonly<Record<string, string>>;
  pending: boolean;
  effectiveAt?: bigint | undefined;
  id?: string | undefined;
}): string {
  const metadata = Object.keys(input.metadata)
    .sort()
    .map((k) => [k, input.metadata[k]]);
  const canonical = JSON.stringify([
    "transfer/v1",
    input.debitAccountId,
    input.creditAccountId,
    input.asset,
    input.amount.toString(),
    input.kind,
    input.note,
    metadata,
    input.pending,
    // Only when given, so every request without one keeps the digest it had
    // before effective times existed (a replay of an old key still matches).
    ...(input.effectiveAt === undefined ? [] : [input.effectiveAt.toString()]),
    // An imported transfer's own id (an object, so it can never read as an effective time).
    ...(input.id === undefined ? [] : [{ id: input.id }]),
  ]);
  return createHash("sha256").update(canonical).digest("base64url");
}
