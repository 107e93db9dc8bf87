import { createHash } from "node:crypto";
import type { Transfer, TransferStatus } from "./model.js";

/**
 * Encodes a transfer for the idempotency table, bigints as decimal strings, so
 * that a replay returns exactly what the first call returned.
 */
export function encodeTransfer(t: Transfer): string {
  return JSON.stringify({
    ...t,
    amount: t.amount.toString(),
    postedAmount: t.postedAmount.toString(),
    createdAt: t.createdAt.toString(),
    updatedAt: t.updatedAt.toString(),
    sequence: t.sequence.toString(),
    debitBalanceAfter: t.debitBalanceAfter.toString(),
    creditBalanceAfter: t.creditBalanceAfter.toString(),
  });
}

/** The inverse of {@link encodeTransfer}. */
export function decodeTransfer(s: string): Transfer {
  const o = JSON.parse(s) as Record<string, unknown>;
  const big = (k: string) => BigInt(o[k] as string);
  return {
    tenantId: o.tenantId as string,
    id: o.id as string,
    idempotencyKey: o.idempotencyKey as string,
    debitAccountId: o.debitAccountId as string,
    creditAccountId: o.creditAccountId as string,
    asset: o.asset as string,
    amount: big("amount"),
    postedAmount: big("postedAmount"),
    kind: o.kind as string,
    note: o.note as string,
    metadata: o.metadata as Record<string, string>,
    status: o.status as TransferStatus,
    createdAt: big("createdAt"),
    updatedAt: big("updatedAt"),
    sequence: big("sequence"),
    debitBalanceAfter: big("debitBalanceAfter"),
    creditBalanceAfter: big("creditBalanceAfter"),
  };
}

/**
 * A digest of everything that defines a transfer request. Two requests with
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
  ]);
  return createHash("sha256").update(canonical).digest("base64url");
}
