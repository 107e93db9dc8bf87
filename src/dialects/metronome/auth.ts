import type { Principal } from "../../domain/access.js";
import type { CredentialKind, Credentials } from "../../domain/credentials.js";
import { LedgerError, invalidArgument, withCredentialId } from "../../domain/errors.js";
import type { CredentialRecord } from "../../domain/model.js";
import type { Authenticator } from "../dialect.js";

/** The credential kind of a Metronome platform key. */
export const METRONOME_KEY_KIND = "metronome_platform_key";

/** `mtr_<20 hex id>_<40 hex secret>`: the id finds the record, the secret is checked against its stored hash. */
const TOKEN = /^mtr_([0-9a-f]{20})_([0-9a-f]{40})$/;

/** The Bearer token a client presents for a credential. */
export function tokenOf(record: CredentialRecord, secret: string): string {
  return `mtr_${record.id}_${secret}`;
}

/**
 * Issues Metronome platform keys: tenant-wide (a Metronome key acts for every
 * customer of its client), so no account, org or scopes.
 */
export function metronomeKeyKind(credentials: Credentials): CredentialKind {
  return {
    kind: METRONOME_KEY_KIND,
    async issue(tenantId, req) {
      if (req.accountId !== "") throw invalidArgument("account_id_not_allowed", `${METRONOME_KEY_KIND} is tenant-wide; account_id is not used`);
      if (req.orgId !== "") throw invalidArgument("org_id_not_allowed", `${METRONOME_KEY_KIND} is tenant-wide; org_id is not used`);
      if (req.publicKey.length > 0) throw invalidArgument("public_key_not_allowed", `${METRONOME_KEY_KIND} is a secret key; public_key is not used`);
      // The token carries its id and is read before any tenant is known, so ids are
      // server-wide and always generated (their hex form is part of the token's syntax).
      if (req.id !== "") throw invalidArgument("id_not_allowed", `${METRONOME_KEY_KIND} ids are generated; id must be empty`);
      if (req.scopes.length > 0) throw invalidArgument("scopes_not_allowed", `${METRONOME_KEY_KIND} has no scopes`);
      const issued = await credentials.issue(tenantId, { kind: METRONOME_KEY_KIND, label: req.label, withSecret: true });
      return { record: issued.record, secret: tokenOf(issued.record, issued.secret!) };
    },
  };
}

/**
 * Resolves an `Authorization` header. A Tally API key (`tly_...`) is left to
 * the RPC's own interceptor (undefined); a platform key becomes a tenant-wide
 * principal; anything else is unauthenticated, with one message for every
 * kind of bad key so that it reveals nothing.
 */
export async function principalFromAuthorization(credentials: Credentials, header: string | undefined): Promise<Principal | undefined> {
  if (header === undefined || header === "") {
    throw new LedgerError("unauthenticated", "missing_credentials", "Unauthorized");
  }
  const token = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
  if (token?.startsWith("tly_")) return undefined;
  const m = token === undefined ? null : TOKEN.exec(token);
  // Looked up even when malformed, so every refusal takes the same work.
  const c = await credentials.verifySecret(METRONOME_KEY_KIND, m?.[1] ?? "", m?.[2] ?? "");
  if (!m || !c) throw withCredentialId(new LedgerError("unauthenticated", "invalid_api_key", "Unauthorized"), m?.[1]);
  return {
    tenantId: c.tenantId,
    keyId: c.id,
    scope: "tenant_admin",
    accountId: null,
    operator: false,
    credential: { kind: c.kind, id: c.id, orgId: c.orgId, scopes: c.scopes },
  };
}

/**
 * Metronome's authenticator: its platform keys over REST, Connect and gRPC. A
 * REST request without Authorization is refused in Metronome's words; an RPC
 * without one is left to Tally's Bearer keys (whose refusal says the same).
 */
export function metronomeAuthenticator(credentials: Credentials): Authenticator {
  return async ({ headers, http }) => {
    const h = headers.get("authorization");
    if (h === null && http === undefined) return undefined;
    return principalFromAuthorization(credentials, h ?? undefined);
  };
}
