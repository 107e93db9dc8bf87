import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import type { Principal } from "../../domain/access.js";
import { LedgerError, invalidArgument } from "../../domain/errors.js";
import type { Ledger } from "../../domain/ledger.js";
import { timestampFromMicros } from "../../services/convert.js";
import { principalOf } from "../../services/principal.js";
import { BalanceService, TransactionSchema } from "../../../gen/threeplguys/v0/balance_pb.js";
import { INVOICES_SCOPE, THREEPLGUYS_KEY_KIND } from "./auth.js";
import { entryCents, unitsToCents } from "./money.js";

/** The only currency of this API. */
const USD = "USD";
/** `take` when the client sends none. */
export const DEFAULT_TAKE = 10;
/** The largest `take`; more is refused with 400, not clamped. */
export const MAX_TAKE = 50;

/**
 * The account a caller acts for: a 3PLGuys key with the `invoices` scope, or
 * a Tally account-scoped key. Anything else (a tenant admin key, a key without
 * the scope) is 403, which says nothing about any account.
 */
export function accountOf(p: Principal): string {
  if (p.credential !== undefined) {
    if (p.credential.kind !== THREEPLGUYS_KEY_KIND || p.accountId === null) {
      throw new LedgerError("permission_denied", "wrong_credential", "This credential cannot use the balance API");
    }
    if (!p.credential.scopes.includes(INVOICES_SCOPE)) {
      throw new LedgerError("permission_denied", "missing_scope", `This API key lacks the required scope: ${INVOICES_SCOPE}`);
    }
    return p.accountId;
  }
  if (p.scope === "account_read" && p.accountId !== null) return p.accountId;
  throw new LedgerError("permission_denied", "account_key_required", "This API key is not bound to an account");
}

/** Registers threeplguys.v0.BalanceService. */
export function registerBalanceService(router: ConnectRouter, ledger: Ledger): void {
  router.service(BalanceService, {
    async getBalance(_req, ctx: HandlerContext) {
      const p = principalOf(ctx);
      const accountId = accountOf(p);
      const b = await ledger.getBalance(p.tenantId, accountId, USD);
      // Posted only: a pending hold is not a transaction here, so it does not move the balance either.
      return { balance: unitsToCents(b.posted, b.scale), currency: USD };
    },

    async listTransactions(req, ctx: HandlerContext) {
      const p = principalOf(ctx);
      const accountId = accountOf(p);
      const skip = req.skip ?? 0n;
      const take = req.take ?? BigInt(DEFAULT_TAKE);
      if (skip < 0n) throw invalidArgument("invalid_skip", "skip must be a non-negative integer");
      if (take < 1n || take > BigInt(MAX_TAKE)) throw invalidArgument("invalid_take", `take must be an integer between 1 and ${MAX_TAKE}`);
      // Also proves the account exists; its scale is what the entries are in.
      const { scale } = await ledger.getBalance(p.tenantId, accountId, USD);
      // Pending reservations and voids do not move the posted balance, so they are
      // not transactions: the page is of POSTED entries, and skipping is a seek.
      const page = await ledger.listPostedEntries(p.tenantId, accountId, USD, skip, Number(take));
      return {
        transactions: page.map((e) =>
          create(TransactionSchema, {
            id: e.transferId,
            amount: entryCents(e.postedAfter, e.amount, scale),
            note: e.note,
            currency: USD,
            createdAt: timestampFromMicros(e.effectiveAt),
          }),
        ),
      };
    },
  });
}
