import type { Interceptor } from "@connectrpc/connect";
import type { Access, Principal } from "../domain/access.js";
import { LedgerError } from "../domain/errors.js";
import { principalKey } from "../services/principal.js";

/**
 * Resolves `Authorization: Bearer <api key>` into a principal for the handlers.
 * Every procedure needs a key; a missing or bad one is unauthenticated before
 * any handler runs.
 */
export function authInterceptor(
  access: Access,
  resolvers: ReadonlyMap<string, (headers: Headers, procedure: string) => Promise<Principal | undefined>> = new Map(),
): Interceptor {
  return (next) => async (req) => {
    if (req.contextValues.get(principalKey) === undefined) {
      // A dialect's own scheme (HTTP Basic for Frontier, say) comes first for its services.
      const resolve = resolvers.get(req.service.typeName);
      let principal: Principal | undefined;
      if (resolve) {
        principal = await resolve(req.header, `/${req.service.typeName}/${req.method.name}`);
      }
      if (principal) {
        req.contextValues.set(principalKey, principal);
        return next(req);
      }
      const header = req.header.get("authorization");
      if (!header) throw new LedgerError("unauthenticated", "missing_credentials", "missing credentials: send Authorization: Bearer <api key>");
      const m = /^Bearer\s+(\S+)$/i.exec(header);
      if (!m) throw new LedgerError("unauthenticated", "invalid_authorization", "the Authorization header must be: Bearer <api key>");
      req.contextValues.set(principalKey, await access.authenticate(m[1]!));
    }
    return next(req);
  };
}
