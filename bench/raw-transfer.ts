import type { Transfer } from "../src/domain/model.js";

/** What the raw baselines (raw-sqlite.ts, raw-pg.ts) know of a transfer they write by hand. */
export interface RawTransfer {
  readonly tenant: string;
  readonly id: string;
  readonly key: string;
  readonly payer: string;
  readonly payee: string;
  readonly asset: string;
  readonly now: bigint;
  /** The credit entry's sequence, as Tally records it on the transfer. */
  readonly sequence: bigint;
  readonly debitAfter: bigint;
  readonly creditAfter: bigint;
}

/** The transfer row Tally would write for a posted 1-unit payment: the same row, not a smaller one. */
export function rawTransfer(r: RawTransfer): Transfer {
  return {
    tenantId: r.tenant,
    id: r.id,
    idempotencyKey: r.key,
    debitAccountId: r.payer,
    creditAccountId: r.payee,
    asset: r.asset,
    amount: 1n,
    postedAmount: 1n,
    kind: "payment",
    note: "",
    metadata: {},
    status: "POSTED",
    createdAt: r.now,
    updatedAt: r.now,
    effectiveAt: r.now,
    sequence: r.sequence,
    debitBalanceAfter: r.debitAfter,
    creditBalanceAfter: r.creditAfter,
  };
}

/** Moves one unit from payer to payee in the baselines' in-memory balances and returns both balances after. */
export function moveOne(posted: Map<string, bigint>, payer: string, payee: string): { debitAfter: bigint; creditAfter: bigint } {
  const debitAfter = (posted.get(payer) ?? 0n) - 1n;
  const creditAfter = (posted.get(payee) ?? 0n) + 1n;
  posted.set(payer, debitAfter);
  posted.set(payee, creditAfter);
  return { debitAfter, creditAfter };
}
