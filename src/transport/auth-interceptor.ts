import type { Interceptor } from "@connectrpc/connect";
import type { Access, Principal } from "../domain/access.js";
import { LedgerError } from "../domain/errors.js";
import { principalKey } from "../services/principal.js";
import { authorizationKey } from "./auth-context.js";

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
        // A transcoded REST call carries its Authorization header in the context, not in req.header.
        const headers = new Headers(req.header);
        const fromRest = req.contextValues.get(authorizationKey);
        if (fromRest !== undefined && !headers.has("authorization")) headers.set("authorization", fromRest);
        principal = await resolve(headers, `/${req.service.typeName}/${req.method.name}`);
      }
      if (principal) {
        req.contextValues.set(principalKey, principal);
        return next(req);
      }
      const header = req.header.get("authorization") ?? req.contextValues.get(authorizationKey);
      if (!header) throw new LedgerError("unauthenticated", "missing_credentials", "missing credentials: send Authorization: Bearer <api key>");
      const m = /^Bearer\s+(\S+)$/i.exec(header);
      if (!m) throw new LedgerError("unauthenticated", "invalid_authorization", "the Authorization header must be: Bearer <api key>");
      req.contextValues.set(principalKey, await access.authenticate(m[1]!));
    }
    return next(req);
  };
}
