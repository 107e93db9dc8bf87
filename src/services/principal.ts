import type { HandlerContext } from "@connectrpc/connect";
import { createContextKey } from "@connectrpc/connect";
import type { Principal } from "../domain/access.js";
import { LedgerError } from "../domain/errors.js";

/** Where the transport's auth puts the authenticated caller. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "tally principal" });

/** The caller, or unauthenticated when no credentials were checked. */
export function principalOf(ctx: HandlerContext): Principal {
  const p = ctx.values.get(principalKey);
  if (!p) throw new LedgerError("unauthenticated", "missing_credentials", "missing credentials: send Authorization: Bearer <api key>");
  return p;
}

/** Writes and admin reads need a tenant-wide key. */
export function requireAdmin(p: Principal): void {
  if (p.scope !== "tenant_admin") {
    throw new LedgerError("permission_denied", "admin_key_required", "this call needs a tenant admin key");
  }
}

/**
 * An account-scoped key may read only its own account. Any other account looks
 * exactly like one that does not exist, so a key cannot probe for ids.
 */
export function requireAccountRead(p: Principal, accountId: string): void {
  if (p.scope === "account_read" && p.accountId !== accountId) {
    throw new LedgerError("not_found", "account_not_found", `account "${accountId}" not found`);
  }
}
