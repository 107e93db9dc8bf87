import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Principal } from "../../domain/access.js";
import { chosenCredentialId } from "../../domain/credential-ids.js";
import type { CredentialKind, Credentials } from "../../domain/credentials.js";
import { LedgerError, invalidArgument } from "../../domain/errors.js";
import type { Authenticator } from "../dialect.js";

/** The credential kind whose verify_key is a tenant's session-signing HMAC key. */
export const SESSION_KEY_KIND = "triport_session_key";

/** The cookie that carries the session token. */
export const SESSION_COOKIE = "triport_session";

/** What a session token says, once its signature checked out. */
export interface SessionClaims {
  /** The id of the triport_session_key credential that signed it. */
  readonly kid: string;
  /** The account the session acts for. */
  readonly sub: string;
  /** Expiry, Unix seconds. */
  readonly exp: number;
}

/**
 * Turns a session cookie into a principal. Configurable so that a deployment
 * can plug in its own session store; the default verifies HMAC-signed tokens.
 */
export interface SessionResolver {
  /** The principal of a token, or undefined for any bad, expired or unknown token. */
  resolve(token: string): Promise<Principal | undefined>;
  /** False when no session can resolve at all (no key configured): the API answers 503. */
  configured(): Promise<boolean>;
}

const KID = /^[A-Za-z0-9_-]{1,64}$/;
const SUB = /^[A-Za-z0-9_-]{1,128}$/;
const B64URL = /^[A-Za-z0-9_-]+$/;

/** base64url without padding. */
function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64url");
}

/** The MAC over the token's first part (the base64url payload text, as sent). */
function mac(key: Uint8Array, payloadPart: string): Buffer {
  return createHmac("sha256", key).update(payloadPart, "ascii").digest();
}

/** Splits a token and parses its payload; undefined when it is malformed (nothing is trusted yet). */
function parseToken(token: string): { payloadPart: string; sig: Buffer; claims: SessionClaims } | undefined {
  const parts = token.split(".");
  if (parts.length !== 2) return undefined;
  const [payloadPart, sigPart] = parts as [string, string];
  if (!B64URL.test(payloadPart) || !B64URL.test(sigPart) || payloadPart.length > 2048) return undefined;
  const sig = Buffer.from(sigPart, "base64url");
  // Re-encoding must give back the same text: no alternative spellings of one MAC.
  if (sig.length !== 32 || b64url(sig) !== sigPart) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(payloadPart, "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return undefined;
  const { kid, sub, exp } = parsed as Record<string, unknown>;
  if (typeof kid !== "string" || !KID.test(kid)) return undefined;
  if (typeof sub !== "string" || !SUB.test(sub)) return undefined;
  if (typeof exp !== "number" || !Number.isSafeInteger(exp)) return undefined;
  return { payloadPart, sig, claims: { kid, sub, exp } };
}

/**
 * A key no token is signed with: a `kid` that names no live key has its MAC
 * checked against this one, so that it costs what a known `kid` costs and is
 * refused like a forged token.
 */
const DUMMY_SESSION_KEY: Uint8Array = new Uint8Array(randomBytes(32));

/**
 * The default resolver: tokens signed with a tenant's triport_session_key.
 * The key's credential fixes the tenant; `sub` is the account. `hasAnyKey`
 * answers whether any tenant has a live key (for the 503).
 */
export function hmacSessionResolver(credentials: Credentials, hasAnyKey: () => Promise<boolean>): SessionResolver {
  return {
    async resolve(token) {
      const t = parseToken(token);
      if (!t) return undefined;
      const found = await credentials.find(SESSION_KEY_KIND, t.claims.kid);
      const key = found?.verifyKey ? found : undefined;
      const good = timingSafeEqual(mac(key?.verifyKey ?? DUMMY_SESSION_KEY, t.payloadPart), t.sig);
      if (!key || !good) return undefined;
      const nowSeconds = Number(credentials.now() / 1_000_000n);
      if (t.claims.exp <= nowSeconds) return undefined;
      return {
        tenantId: key.tenantId,
        keyId: key.id,
        scope: "account_read",
        accountId: t.claims.sub,
        operator: false,
        credential: { kind: SESSION_KEY_KIND, id: key.id, orgId: null, scopes: [] },
      };
    },
    configured: hasAnyKey,
  };
}

/** Whether any tenant has a live session key: without one, no session can be resolved at all. */
export function anySessionKey(credentials: Credentials): () => Promise<boolean> {
  return () => credentials.anyLive(SESSION_KEY_KIND);
}

/** Reads one cookie from a Cookie header; undefined when absent. */
export function readCookie(header: string | string[] | undefined, name: string): string | undefined {
  const text = Array.isArray(header) ? header.join("; ") : header;
  if (!text) return undefined;
  for (const part of text.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    return value;
  }
  return undefined;
}

/**
 * The triport_session_key kind: a tenant-wide HMAC-SHA256 key. The key is
 * stored as the credential's verify_key (it is needed to verify) and returned
 * once, base64url, as the secret, for the customer's login system to sign
 * sessions with. `public_key` may supply the key (32-64 bytes) instead. A
 * token names only its `kid`, so ids are server-wide: generated (`tsk_<hex>`),
 * and chosen by the operator only.
 */
export function sessionKeyKind(credentials: Credentials): CredentialKind {
  return {
    kind: SESSION_KEY_KIND,
    async issue(tenantId, req) {
      if (req.accountId !== "") throw invalidArgument("invalid_account_id", "a triport_session_key is tenant-wide: account_id must be empty");
      if (req.orgId !== "") throw invalidArgument("invalid_org_id", "a triport_session_key takes no org_id");
      if (req.scopes.length > 0) throw invalidArgument("invalid_scopes", "a triport_session_key takes no scopes");
      const id = chosenCredentialId(SESSION_KEY_KIND, req, (chosen) => {
        if (!KID.test(chosen)) throw invalidArgument("invalid_id", "id must be 1-64 characters of [A-Za-z0-9_-]");
        return chosen;
      });
      if (req.publicKey.length !== 0 && (req.publicKey.length < 32 || req.publicKey.length > 64)) {
        throw invalidArgument("invalid_public_key", "a supplied session key must be 32-64 bytes");
      }
      const key = req.publicKey.length > 0 ? new Uint8Array(req.publicKey) : new Uint8Array(randomBytes(32));
      const issued = await credentials.issue(tenantId, { kind: SESSION_KEY_KIND, id, idPrefix: "tsk_", label: req.label, verifyKey: key });
      return { record: issued.record, secret: b64url(key) };
    },
  };
}

/** 401: no valid session (the vendor's exact message). */
export function authRequired(): LedgerError {
  return new LedgerError("unauthenticated", "auth_required", "auth required");
}

/** 503: no tenant has a session key, so no session can be resolved. */
export function resolverNotConfigured(): LedgerError {
  return new LedgerError("unavailable", "session_resolver_not_configured", "session resolver not configured");
}

/**
 * The session authenticator: the `triport_session` cookie names the user. A
 * request with `Authorization` and no session cookie is left to Tally's
 * Bearer API keys (an account-scoped key acts for its account), and so are
 * calls over Connect and gRPC: the session is the browser's REST credential.
 */
export function sessionAuthenticator(resolver: SessionResolver): Authenticator {
  return async ({ headers, http }) => {
    if (http === undefined) return undefined;
    const token = readCookie(headers.get("cookie") ?? undefined, SESSION_COOKIE);
    if (token === undefined && headers.has("authorization")) return undefined;
    const principal = token ? await resolver.resolve(token) : undefined;
    if (principal) return principal;
    if (!(await resolver.configured())) throw resolverNotConfigured();
    throw authRequired();
  };
}
