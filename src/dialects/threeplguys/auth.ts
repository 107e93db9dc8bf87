import type { Principal } from "../../domain/access.js";
import type { CredentialKind, Credentials } from "../../domain/credentials.js";
import { LedgerError, invalidArgument, withCredentialId } from "../../domain/errors.js";
import type { CredentialRecord } from "../../domain/model.js";
import type { Authenticator } from "../dialect.js";

/** The credential kind of a 3PLGuys API key. */
export const THREEPLGUYS_KEY_KIND = "3plguys_api_key";

/** The scope the balance endpoints need. */
export const INVOICES_SCOPE = "invoices";

/** `3pg_<20 hex id>_<40 hex secret>`: the id finds the record, the secret is checked against its hash. */
const TOKEN = /^3pg_([0-9a-f]{20})_([0-9a-f]{40})$/;
const SCOPE = /^[a-z][a-z0-9_.:-]{0,63}$/;
const MAX_SCOPES = 32;

/** The Bearer token a client presents for a credential. */
export function tokenOf(record: CredentialRecord, secret: string): string {
  return `3pg_${record.id}_${secret}`;
}

/**
 * Issues 3PLGuys API keys: bound to one account (the vendor's "organization")
 * and carrying scopes. The secret returned is the whole Bearer token.
 */
export function threeplguysKeyKind(credentials: Credentials): CredentialKind {
  return {
    kind: THREEPLGUYS_KEY_KIND,
    async issue(tenantId, req) {
      if (req.accountId === "") throw invalidArgument("missing_account_id", `${THREEPLGUYS_KEY_KIND} needs account_id: the account the key acts for`);
      if (req.orgId !== "") throw invalidArgument("org_id_not_allowed", `${THREEPLGUYS_KEY_KIND} is bound to an account; org_id is not used`);
      if (req.publicKey.length > 0) throw invalidArgument("public_key_not_allowed", `${THREEPLGUYS_KEY_KIND} is a secret key; public_key is not used`);
      // The token carries its id and is read before any tenant is known, so ids are
      // server-wide and always generated (their hex form is part of the token's syntax).
      if (req.id !== "") throw invalidArgument("id_not_allowed", `${THREEPLGUYS_KEY_KIND} ids are generated; id must be empty`);
      if (req.scopes.length > MAX_SCOPES) throw invalidArgument("too_many_scopes", `at most ${MAX_SCOPES} scopes`);
      for (const s of req.scopes) {
        if (!SCOPE.test(s)) throw invalidArgument("invalid_scope", `scope must be 1-64 characters of [a-z0-9_.:-] starting with a letter, got ${JSON.stringify(s)}`);
      }
      const issued = await credentials.issue(tenantId, {
        kind: THREEPLGUYS_KEY_KIND,
        accountId: req.accountId,
        scopes: [...new Set(req.scopes)],
        label: req.label,
        withSecret: true,
      });
      return { record: issued.record, secret: tokenOf(issued.record, issued.secret!) };
    },
  };
}

/**
 * Resolves an `Authorization` header. A Tally API key (`tly_...`) is left to
 * the RPC's own interceptor (undefined); a 3PLGuys key becomes a principal
 * bound to its account; anything else is unauthenticated.
 */
export async function principalFromAuthorization(credentials: Credentials, header: string | undefined): Promise<Principal | undefined> {
  if (header === undefined || header === "") {
    throw new LedgerError("unauthenticated", "missing_credentials", "missing credentials: send Authorization: Bearer <api key>");
  }
  const token = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
  if (token?.startsWith("tly_")) return undefined;
  const m = token === undefined ? null : TOKEN.exec(token);
  // Looked up even when malformed, so every refusal takes the same work.
  const c = await credentials.verifySecret(THREEPLGUYS_KEY_KIND, m?.[1] ?? "", m?.[2] ?? "");
  if (!m || !c || c.accountId === null) {
    throw withCredentialId(new LedgerError("unauthenticated", "invalid_api_key", "invalid or revoked API key"), m?.[1]);
  }
  return {
    tenantId: c.tenantId,
    keyId: c.id,
    scope: "account_read",
    accountId: c.accountId,
    operator: false,
    credential: { kind: c.kind, id: c.id, orgId: c.orgId, scopes: c.scopes },
  };
}

/**
 * 3PLGuys' authenticator: its API keys over REST, Connect and gRPC. A REST
 * request without Authorization is refused in 3PLGuys' envelope; an RPC
 * without one is left to Tally's Bearer keys.
 */
export function threeplguysAuthenticator(credentials: Credentials): Authenticator {
  return async ({ headers, http }) => {
    const h = headers.get("authorization");
    if (h === null && http === undefined) return undefined;
    return principalFromAuthorization(credentials, h ?? undefined);
  };
}
