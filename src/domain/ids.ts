import { randomFillSync } from "node:crypto";
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

/**
 * A form that the ids of some accounts must have, chosen by the account's
 * metadata. A dialect whose clients can name accounts only in one form
 * declares one (Frontier reads billing accounts by UUID), so that every
 * such account is created with an id those clients can read.
 */
export interface AccountIdRule {
  /** Whether the rule governs an account opened with this metadata. */
  applies(metadata: Readonly<Record<string, string>>): boolean;
  /** The id of such an account opened without one. */
  generate(): string;
  /** Throws invalid_argument for a client-chosen id (already a valid account id) the rule refuses. */
  check(id: string): void;
}

/** Transfer ids an import brings: the same form as client-chosen account ids (generated ones are `tr_` + base32). */
export function validateTransferId(id: string, field = "transfer_id"): string {
  if (!CLIENT_ID.test(id)) {
    throw invalidArgument("invalid_transfer_id", `${field} must be 1-128 characters of [A-Za-z0-9_-], got ${JSON.stringify(truncate(id))}`, { field });
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

// Crockford-style base32 in ascending character order, so that ids sort as their bits do.
const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
/** Characters of an id's time part: 10 base32 digits carry 50 bits of milliseconds (until the year 37,648). */
const TIME_CHARS = 10;
/** Characters of an id's random part: 16 base32 digits, 80 bits. */
const RANDOM_CHARS = 16;

// Random bytes are drawn in blocks: one getrandom call per 256 ids instead of
// one per id (it cost ~30 µs per call on the benchmark machine).
const pool = Buffer.alloc(RANDOM_CHARS * 256);
let poolAt = pool.length;

/**
 * A new id with a readable prefix: `prefix_` + 10 characters of the
 * creation time in milliseconds + 16 random characters (80 bits), all
 * lower-case base32. Ids sort by creation time to the millisecond (UUIDv7's
 * idea), so new rows go to the right edge of a B-tree index instead of
 * splitting pages all over it; the random part makes them unique without
 * coordination between replicas (two ids in the same millisecond collide
 * with probability 2^-80).
 */
export function newId(prefix: string, nowMs: number = Date.now()): string {
  if (poolAt + RANDOM_CHARS > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  // Most significant digit first, so that the string order is the time order.
  let time = "";
  for (let i = 0, t = Math.max(0, Math.floor(nowMs)); i < TIME_CHARS; i++, t = Math.floor(t / 32)) time = ALPHABET[t % 32]! + time;
  let random = "";
  for (let i = 0; i < RANDOM_CHARS; i++) random += ALPHABET[pool[poolAt++]! & 31];
  return `${prefix}_${time}${random}`;
}

function truncate(s: string): string {
  return s.length > 40 ? s.slice(0, 40) + "…" : s;
}
