import type { Interceptor } from "@connectrpc/connect";
import type { Access, Principal } from "../domain/access.js";
import { LedgerError } from "../domain/errors.js";
import type { AuthRequest, Authenticator } from "../dialects/dialect.js";
import { principalKey } from "../services/principal.js";
import { restCallKey } from "./rest-call.js";

/** Resolves the caller of a call to a service, or throws unauthenticated. */
export type Authenticate = (service: string, req: AuthRequest) => Promise<Principal>;

/**
 * Authentication in one place: a dialect's authenticator for calls to its
 * services, then Tally's default, `Authorization: Bearer <api key>`. Every
 * procedure needs a caller; a missing or bad credential is unauthenticated
 * before any handler runs.
 */
export function createAuthenticate(access: Access, dialects: ReadonlyMap<string, Authenticator> = new Map()): Authenticate {
  return async (service, req) => {
    const dialect = dialects.get(service);
    const principal = dialect === undefined ? undefined : await dialect(req);
    if (principal !== undefined) return principal;
    const header = req.headers.get("authorization");
    if (!header) throw new LedgerError("unauthenticated", "missing_credentials", "missing credentials: send Authorization: Bearer <api key>");
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw new LedgerError("unauthenticated", "invalid_authorization", "the Authorization header must be: Bearer <api key>");
    return access.authenticate(m[1]!);
  };
}

/**
 * The interceptor that runs {@link Authenticate} for every call and gives
 * handlers the principal. A REST call arrives already authenticated (the
 * transcoder runs the same function before it parses the body), and is not
 * checked twice. Calls to `publicServices` (health, reflection) need no
 * caller and get no principal.
 */
export function authInterceptor(authenticate: Authenticate, publicServices: ReadonlySet<string> = new Set()): Interceptor {
  return (next) => async (req) => {
    if (req.contextValues.get(principalKey) === undefined && !publicServices.has(req.service.typeName)) {
      const principal = await authenticate(req.service.typeName, {
        headers: req.header,
        procedure: `/${req.service.typeName}/${req.method.name}`,
        http: req.contextValues.get(restCallKey),
      });
      req.contextValues.set(principalKey, principal);
    }
    return next(req);
  };
}
