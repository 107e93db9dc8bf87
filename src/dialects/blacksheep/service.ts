import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { AccountBalanceSchema, AccountBalanceService } from "../../../gen/blacksheep/v1/blacksheep_pb.js";
import type { AccountBalance } from "../../../gen/blacksheep/v1/blacksheep_pb.js";
import type { Principal } from "../../domain/access.js";
import { LedgerError } from "../../domain/errors.js";
import type { Ledger } from "../../domain/ledger.js";
import { principalOf } from "../../services/principal.js";
import { BLACKSHEEP_KEY_KIND } from "./auth.js";

/**
 * The stable id of an account's balance in one currency: SHA-256 of
 * "blacksheep.balance", tenant, account and currency (NUL-separated), its
 * first 16 bytes shaped as an RFC 9562 version-8 UUID. The same balance always
 * has the same id, and no two (tenant, account, currency) share one.
 */
export function balanceId(tenantId: string, accountId: string, code: string): string {
  const b = createHash("sha256").update(["blacksheep.balance", tenantId, accountId, code].join("\0"), "utf8").digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x80;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * The account a caller may read: a Blacksheep signing key's, or a Tally
 * account-scoped key's. Anything else (an admin key, another dialect's
 * credential) is refused outright; there is no id in the request to probe.
 */
function accountOf(p: Principal): string {
  const ours = p.credential?.kind === BLACKSHEEP_KEY_KIND;
  const tallyAccountKey = p.credential === undefined && p.scope === "account_read";
  if ((ours || tallyAccountKey) && p.accountId !== null) return p.accountId;
  throw new LedgerError("permission_denied", "forbidden", "this key cannot read account balances");
}

/** Registers AccountBalanceService over the ledger. */
export function registerBlacksheep(router: ConnectRouter, ledger: Ledger): void {
  router.service(AccountBalanceService, {
    async getMany(_req, ctx) {
      const p = principalOf(ctx);
      const accountId = accountOf(p);
      const balances = await ledger.getMany(p.tenantId, accountId);
      // `value` is the settled (posted) balance: Blacksheep balances change when
      // a transaction completes, so a pending-only currency is not "held" yet.
      const data: AccountBalance[] = balances
        .filter((b) => b.posted !== 0n)
        .sort((a, b) => (a.asset < b.asset ? -1 : a.asset > b.asset ? 1 : 0))
        .map((b) =>
          create(AccountBalanceSchema, {
            id: balanceId(p.tenantId, accountId, b.asset),
            accountId,
            balance: { value: b.posted, code: b.asset, decimals: b.scale },
          }),
        );
      return { data };
    },
  });
}
