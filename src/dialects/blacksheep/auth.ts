import { createHash, createPublicKey, generateKeyPairSync, verify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import type { Principal } from "../../domain/access.js";
import { chosenCredentialId } from "../../domain/credential-ids.js";
import type { CredentialKind, Credentials } from "../../domain/credentials.js";
import { LedgerError, invalidArgument, withCredentialId } from "../../domain/errors.js";
import type { Authenticator } from "../dialect.js";

/** The credential kind of a Blacksheep signing key (a registered Ed25519 public key). */
export const BLACKSHEEP_KEY_KIND = "blacksheep_public_key";

/** How far Bs-Timestamp may be from the server's clock, either way, in seconds. */
export const TIMESTAMP_WINDOW_SECONDS = 300n;

/** The headers of a signed request (its Bs-* headers and Content-Digest), as a browser must be allowed to send them. */
export const SIGNED_REQUEST_HEADERS: readonly string[] = ["bs-key-id", "bs-timestamp", "bs-nonce", "bs-signature", "content-digest"];

/** Client-chosen key ids: what can travel in a header and read well in logs. */
const KEY_ID = /^[A-Za-z0-9._~-]{1,128}$/;
/** Unix seconds, canonical digits (the value is signed as sent, so no other spelling is needed). */
const TIMESTAMP = /^(0|[1-9][0-9]{0,11})$/;
/** 16 bytes in padded standard base64. */
const NONCE = /^[A-Za-z0-9+/]{21}[AQgw]==$/;
/** 64 bytes (an Ed25519 signature) in padded standard base64. */
const SIGNATURE = /^[A-Za-z0-9+/]{85}[AQgw]==$/;
/** RFC 9530 Content-Digest with exactly one member, sha-256. */
const DIGEST = /^sha-256=:([A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=):$/;

/** A refused signature: 401 with `{"error": "<code>"}`. */
function refused(code: string, message: string): LedgerError {
  return new LedgerError("unauthenticated", code, message);
}

/**
 * The one answer for a request that no live registered key signed: a key id
 * that is malformed, unknown, revoked or another tenant's, and a signature
 * that does not verify with the key. Telling these apart (as `unknown_key`
 * and `invalid_signature` once did) let anyone enumerate the key ids in use.
 */
function notSigned(): LedgerError {
  return refused("invalid_signature", "invalid signature");
}

/**
 * The string a Blacksheep client signs. Lengths are UTF-8 byte counts; every
 * part a client controls freely is length-prefixed, so no two requests share
 * a signed string. `contentDigest` is the Content-Digest header as sent, or
 * "" when the request has none.
 */
export function signedString(keyId: string, timestamp: string, nonce: string, method: string, pathAndQuery: string, contentDigest: string): string {
  const lp = (s: string) => `${Buffer.byteLength(s, "utf8")}:${s}`;
  return `${lp(keyId)}:${lp(timestamp)}:${lp(nonce)}:${method}:${lp(pathAndQuery)}:${contentDigest}`;
}

/** The Content-Digest header value for a body: `sha-256=:<base64>:`. */
export function contentDigestOf(body: Uint8Array): string {
  return `sha-256=:${createHash("sha256").update(body).digest("base64")}:`;
}

/** A KeyObject from a raw 32-byte Ed25519 public key; throws if it is not one. */
export function ed25519PublicKey(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new Error("an Ed25519 public key is 32 bytes");
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(raw).toString("base64url") }, format: "jwk" });
}

/**
 * A public key whose private half was thrown away at start-up: an unknown key
 * id is verified against it, so that it costs what a known one costs (a key
 * import and an Ed25519 verify) and fails as a bad signature fails.
 */
const DUMMY_KEY: Uint8Array = Buffer.from(generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" }).x!, "base64url");

/** Whether `signature` verifies `message` with a raw Ed25519 public key; false for a key that does not parse. */
function verifies(rawKey: Uint8Array, message: Buffer, signature: Buffer): boolean {
  try {
    return verify(null, message, ed25519PublicKey(rawKey), signature);
  } catch {
    return false;
  }
}

function header(headers: Headers, name: string): string | undefined {
  return headers.get(name) ?? undefined;
}

/**
 * Verifies a Blacksheep-signed request and resolves its key's account.
 *
 * Checks run cheapest first, and the stateful ones last: the nonce is claimed
 * only once the signature and timestamp are good, so a forged or stale
 * request can neither be replayed nor burn a legitimate client's nonce. A
 * request with none of the Bs-* headers but an `Authorization` header is left
 * to the Bearer (Tally API key) path, and so are calls over Connect and gRPC:
 * the signature covers an HTTP method, path and body they do not have.
 */
export function blacksheepAuthenticator(credentials: Credentials): Authenticator {
  const authenticate = signedRequestAuthenticator(credentials);
  return async (req) => {
    try {
      return await authenticate(req);
    } catch (e) {
      // The key id the request named, for the log: its form is checked, its existence told to nobody.
      const keyId = header(req.headers, "bs-key-id");
      if (e instanceof LedgerError && keyId !== undefined && KEY_ID.test(keyId)) withCredentialId(e, keyId);
      throw e;
    }
  };
}

function signedRequestAuthenticator(credentials: Credentials): Authenticator {
  return async ({ headers, http }) => {
    if (http === undefined) return undefined;
    const keyId = header(headers, "bs-key-id");
    const timestamp = header(headers, "bs-timestamp");
    const nonce = header(headers, "bs-nonce");
    const signature = header(headers, "bs-signature");
    const digest = header(headers, "content-digest");
    if (keyId === undefined && timestamp === undefined && nonce === undefined && signature === undefined && header(headers, "authorization") !== undefined) {
      return undefined;
    }
    if (!keyId || !timestamp || !nonce || !signature) {
      throw refused("missing_signature", "send Bs-Key-Id, Bs-Timestamp, Bs-Nonce and Bs-Signature");
    }
    // Checks of form alone tell a caller nothing it did not send: they may answer early.
    if (!KEY_ID.test(keyId)) throw notSigned();
    if (!TIMESTAMP.test(timestamp)) throw refused("invalid_timestamp", "Bs-Timestamp must be Unix seconds");
    if (!NONCE.test(nonce)) throw refused("invalid_nonce", "Bs-Nonce must be 16 bytes in base64");
    if (!SIGNATURE.test(signature)) throw notSigned();
    if (digest === undefined) {
      if (http.body.length > 0) throw refused("missing_digest", "a request with a body must send Content-Digest");
    } else {
      // Checked even for an empty body: whatever was signed must be true.
      if (!DIGEST.test(digest) || digest !== contentDigestOf(http.body)) throw refused("invalid_digest", "Content-Digest does not match the body");
    }

    // From here on an unknown key id takes the same path as a known one: the
    // same lookup, a signature verified (against the dummy key), one answer.
    const found = await credentials.find(BLACKSHEEP_KEY_KIND, keyId);
    const credential = found && found.verifyKey !== null && found.accountId !== null ? found : undefined;
    const message = Buffer.from(signedString(keyId, timestamp, nonce, http.method.toUpperCase(), http.url, digest ?? ""), "utf8");
    const ok = verifies(credential?.verifyKey ?? DUMMY_KEY, message, Buffer.from(signature, "base64"));
    if (!credential || !ok) throw notSigned();

    const now = credentials.now() / 1_000_000n;
    const ts = BigInt(timestamp);
    if (ts < now - TIMESTAMP_WINDOW_SECONDS || ts > now + TIMESTAMP_WINDOW_SECONDS) {
      throw refused("stale_timestamp", `Bs-Timestamp must be within ${TIMESTAMP_WINDOW_SECONDS} seconds of the server's clock`);
    }
    // Kept until the timestamp itself leaves the window; after that the
    // timestamp check alone refuses a replay.
    const expiresAt = (ts + TIMESTAMP_WINDOW_SECONDS + 1n) * 1_000_000n;
    if (!(await credentials.claimNonce(`${BLACKSHEEP_KEY_KIND}:${keyId}`, nonce, expiresAt))) {
      throw refused("nonce_reused", "this nonce was already used");
    }
    return {
      tenantId: credential.tenantId,
      keyId: credential.id,
      scope: "account_read",
      accountId: credential.accountId,
      operator: false,
      credential: { kind: credential.kind, id: credential.id, orgId: null, scopes: [...credential.scopes] },
    } satisfies Principal;
  };
}

/**
 * Registers Blacksheep signing keys: a raw 32-byte Ed25519 public key bound
 * to one account, under a generated key id. A signed request names only its
 * key id, so ids are server-wide and only the operator may choose one.
 */
export function blacksheepKeyKind(credentials: Credentials): CredentialKind {
  return {
    kind: BLACKSHEEP_KEY_KIND,
    async issue(tenantId, req) {
      if (req.accountId === "") throw invalidArgument("account_required", "a blacksheep_public_key needs an account_id");
      if (req.orgId !== "") throw invalidArgument("invalid_org_id", "a blacksheep_public_key takes no org_id");
      if (req.scopes.length > 0) throw invalidArgument("invalid_scopes", "a blacksheep_public_key takes no scopes: it reads its account");
      const id = chosenCredentialId(BLACKSHEEP_KEY_KIND, req, (chosen) => {
        if (!KEY_ID.test(chosen)) throw invalidArgument("invalid_key_id", "a key id is 1-128 characters of A-Z a-z 0-9 . _ ~ -");
        return chosen;
      });
      try {
        ed25519PublicKey(req.publicKey);
      } catch {
        throw invalidArgument("invalid_public_key", "public_key must be a raw 32-byte Ed25519 public key");
      }
      return credentials.issue(tenantId, {
        kind: BLACKSHEEP_KEY_KIND,
        accountId: req.accountId,
        label: req.label,
        verifyKey: new Uint8Array(req.publicKey),
        id,
      });
    },
  };
}
