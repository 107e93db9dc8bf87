import { randomBytes } from "node:crypto";
import { invalidArgument } from "./errors.js";

const CLIENT_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** The tenant's source of funds: an account with no lower bound. */
export const WORLD_ACCOUNT_ID = "@world";

/** Client-chosen account ids: 1-128 chars of [A-Za-z0-9_-]. */
export function validateAccountId(id: string, field = "account_id"): string {
  if (!CLIENT_ID.test(id)) {
    throw invalidArgument("invalid_account_id", `${field} must be 1-128 characters of [A-Za-z0-9_-], got ${JSON.stringify(truncate(id))}`, { field });
  }
  return id;
}

/** Account ids as they may appear in a transfer: client ids or system ids. */
export function validateAccountRef(id: string, field: string): string {
  if (id === WORLD_ACCOUNT_ID) return id;
  return validateAccountId(id, field);
}

/** Tenant ids: 1-64 chars of [A-Za-z0-9_-]. */
export function validateTenantId(id: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
    throw invalidArgument("invalid_tenant_id", "tenant id must be 1-64 characters of [A-Za-z0-9_-]");
  }
  return id;
}

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

/**
 * A random id with a readable prefix. 20 chars of base32 carry 100 bits of
 * randomness, so ids can be created without coordination between replicas.
 */
export function newId(prefix: string): string {
  const bytes = randomBytes(20);
  let out = prefix + "_";
  for (const b of bytes) out += ALPHABET[b & 31];
  return out;
}

function truncate(s: string): string {
  return s.length > 40 ? s.slice(0, 40) + "…" : s;
}
