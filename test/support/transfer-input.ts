import type { TransferInput } from "../../src/domain/ledger.js";

/**
 * A posted USD payment as the domain takes it, for tests that drive the Ledger
 * directly (no socket): everything but the key, the two accounts and the amount
 * is the plain default.
 */
export function payment(idempotencyKey: string, debitAccountId: string, creditAccountId: string, amount: bigint): TransferInput {
  return { idempotencyKey, debitAccountId, creditAccountId, asset: "USD", amount, kind: "payment", note: "", metadata: {}, pending: false };
}
