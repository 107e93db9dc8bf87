import type { Principal } from "../../domain/access.js";
import { chosenCredentialId } from "../../domain/credential-ids.js";
import type { CredentialKind, CredentialRequest, Credentials, IssuedCredential } from "../../domain/credentials.js";
import { LedgerError, invalidArgument, withCredentialId } from "../../domain/errors.js";
import { validateAccountId } from "../../domain/ids.js";
import type { Authenticator } from "../dialect.js";

/** The credential kind of Frontier's service-user client id / client secret pairs. */
export const FRONTIER_CLIENT = "frontier_client";

const BASIC = /^Basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i;

/**
 * Issues Frontier client credentials: a client id and a generated secret,
 * bound to one organization. They are not bound to an account (a Frontier
 * client reads every billing account of its organization) and carry no
 * scopes or keys, so asking for those is refused rather than silently ignored.
 */
export function frontierClientKind(credentials: Credentials): CredentialKind {
  return {
    kind: FRONTIER_CLIENT,
    async issue(tenantId: string, req: CredentialRequest): Promise<IssuedCredential> {
      if (req.orgId === "") throw invalidArgument("missing_org_id", `a ${FRONTIER_CLIENT} credential needs org_id: the organization it acts for`);
      if (req.accountId !== "") {
        throw invalidArgument("invalid_account_id", `a ${FRONTIER_CLIENT} credential is bound to an organization, not an account: leave account_id empty`);
      }
      if (req.publicKey.length > 0) throw invalidArgument("invalid_public_key", `a ${FRONTIER_CLIENT} credential has a secret, not a public key`);
      if (req.scopes.length > 0) throw invalidArgument("invalid_scopes", `a ${FRONTIER_CLIENT} credential takes no scopes`);
      // Basic names only the client id, so ids are server-wide: generated, or the
      // operator's choice. A chosen one becomes the user part of HTTP Basic, so it
      // must not hold a colon; the account-id alphabet guarantees that.
      const id = chosenCredentialId(FRONTIER_CLIENT, req, (chosen) => validateAccountId(chosen, "id"));
      return credentials.issue(tenantId, { kind: FRONTIER_CLIENT, orgId: req.orgId, label: req.label, withSecret: true, id });
    },
  };
}

/** Why a Basic header was refused; one message for every bad credential so that none is an oracle. */
const BAD_CREDENTIALS = "not authenticated: invalid client id or client secret";

/**
 * Resolves `Authorization: Basic base64(client_id:client_secret)`. Returns
 * undefined when the header is not Basic (a Tally Bearer key is then checked
 * by the RPC's own interceptor); throws unauthenticated for a Basic header
 * that does not name a live frontier_client credential.
 */
async function principalFromBasic(credentials: Credentials, authorization: string | undefined): Promise<Principal | undefined> {
  if (authorization === undefined || !/^Basic(\s|$)/i.test(authorization)) return undefined;
  const m = BASIC.exec(authorization);
  const decoded = m ? Buffer.from(m[1]!, "base64").toString("utf8") : "";
  const colon = decoded.indexOf(":");
  if (colon <= 0) throw new LedgerError("unauthenticated", "invalid_client_credentials", BAD_CREDENTIALS);
  const c = await credentials.verifySecret(FRONTIER_CLIENT, decoded.slice(0, colon), decoded.slice(colon + 1));
  if (!c) throw withCredentialId(new LedgerError("unauthenticated", "invalid_client_credentials", BAD_CREDENTIALS), decoded.slice(0, colon));
  return {
    tenantId: c.tenantId,
    keyId: c.id,
    // Read-only, and bound to no account: requireAccountRead would refuse every
    // Tally account, so this principal can reach nothing but Frontier's service.
    scope: "account_read",
    accountId: null,
    operator: false,
    credential: { kind: c.kind, id: c.id, orgId: c.orgId, scopes: c.scopes },
  };
}

/**
 * Frontier's authenticator: Basic is its scheme, over REST and over Connect
 * and gRPC alike. A REST request with no Authorization at all is refused
 * here, in Frontier's words; an RPC without one, and any other scheme, is
 * left to Tally's Bearer keys.
 */
export function frontierAuthenticator(credentials: Credentials): Authenticator {
  return async ({ headers, http }) => {
    const header = headers.get("authorization") ?? undefined;
    if (http !== undefined && (header === undefined || header.trim() === "")) {
      throw new LedgerError(
        "unauthenticated",
        "missing_credentials",
        "not authenticated: send Authorization: Basic base64(client_id:client_secret)",
      );
    }
    return principalFromBasic(credentials, header);
  };
}
