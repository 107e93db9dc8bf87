import { create } from "@bufbuild/protobuf";
import { BalanceSchema, EntryKind } from "../../../gen/triport/v1/triport_pb.js";
import type { Balance } from "../../../gen/triport/v1/triport_pb.js";
import { defaultScale } from "../../domain/asset.js";
import { LedgerError } from "../../domain/errors.js";
import type { Ledger } from "../../domain/ledger.js";
import { isInt64 } from "../../domain/money.js";
import { timestampFromMicros } from "../../services/convert.js";

/** Triport balances are the user's balance in this Tally asset. */
export const ASSET = "USD";

/** Micro-USD: 6 decimal places. */
const MICRO_SCALE = 6;

/** The tenant's USD scale (6 unless the tenant defined USD otherwise). */
export async function usdScale(ledger: Ledger, tenantId: string): Promise<number> {
  return (await ledger.listAssets(tenantId)).find((a) => a.code === ASSET)?.scale ?? defaultScale(ASSET);
}

/**
 * Smallest USD units at `scale` to micro-USD, exactly. A finer scale that does
 * not land on a whole micro, or a value past int64, is a server-side problem:
 * the API promises exact integers, so it refuses rather than rounds.
 */
export function toMicro(v: bigint, scale: number): bigint {
  let out: bigint;
  if (scale <= MICRO_SCALE) {
    out = v * 10n ** BigInt(MICRO_SCALE - scale);
  } else {
    const f = 10n ** BigInt(scale - MICRO_SCALE);
    if (v % f !== 0n) throw new LedgerError("internal", "not_micro_exact", `USD amount ${v} at scale ${scale} is not a whole micro-USD`);
    out = v / f;
  }
  if (!isInt64(out)) throw new LedgerError("internal", "micro_overflow", "USD amount does not fit int64 micro-USD");
  return out;
}

/** Micro-USD to smallest USD units at `scale`; refused (internal) when not exact. */
export function fromMicro(micro: bigint, scale: number): bigint {
  if (scale >= MICRO_SCALE) {
    const out = micro * 10n ** BigInt(scale - MICRO_SCALE);
    if (!isInt64(out)) throw new LedgerError("internal", "micro_overflow", "amount does not fit int64 at the USD scale");
    return out;
  }
  const f = 10n ** BigInt(MICRO_SCALE - scale);
  if (micro % f !== 0n) throw new LedgerError("internal", "not_scale_exact", `${micro} micro-USD is not a whole unit at USD scale ${scale}`);
  return micro / f;
}

/** The wire balance: posted amount, lock state and last-change time. */
export function balanceMessage(postedMicro: bigint, frozenAt: bigint | null, updatedAt: bigint): Balance {
  return create(BalanceSchema, {
    amountMicro: postedMicro,
    locked: frozenAt !== null,
    ...(frozenAt !== null ? { lockedAt: timestampFromMicros(frozenAt) } : {}),
    updatedAt: timestampFromMicros(updatedAt),
  });
}

const PAYMENT = new Set(["payment_credit", "payment", "deposit", "topup", "top_up", "top-up"]);
const INVOICE = new Set(["invoice_debit", "invoice", "charge", "usage"]);
const REFUND = new Set(["refund"]);

/**
 * The Triport kind of a posted entry, from its transfer's kind and the sign
 * of the change: payment kinds that credit the user are payment_credit,
 * invoice kinds that debit the user are invoice_debit, refund is refund; any
 * other combination is adjust (see docs/dialects/triport.md).
 */
export function entryKind(transferKind: string, delta: bigint): EntryKind {
  if (REFUND.has(transferKind)) return EntryKind.REFUND;
  if (PAYMENT.has(transferKind) && delta > 0n) return EntryKind.PAYMENT_CREDIT;
  if (INVOICE.has(transferKind) && delta < 0n) return EntryKind.INVOICE_DEBIT;
  return EntryKind.ADJUST;
}
