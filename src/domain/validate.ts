import { invalidArgument } from "./errors.js";

/** Bounds on what a client may attach to accounts and transfers. */
export const LIMITS = {
  metadataEntries: 64,
  metadataKeyLength: 128,
  metadataValueLength: 1024,
  noteLength: 1024,
  kindLength: 64,
  idempotencyKeyLength: 255,
  batchSize: 1000,
} as const;

/**
 * Refuses text holding a NUL character: PostgreSQL text cannot store one and
 * SQLite can, and the two stores must accept exactly the same input.
 */
export function validateText(v: string, field: string): string {
  if (v.includes("\u0000")) throw invalidArgument("invalid_text", `${field} must not contain NUL characters`, { field });
  return v;
}

/** Refuses metadata that is too large or has empty keys. */
export function validateMetadata(metadata: Readonly<Record<string, string>>, field = "metadata"): Record<string, string> {
  const keys = Object.keys(metadata);
  if (keys.length > LIMITS.metadataEntries) {
    throw invalidArgument("invalid_metadata", `${field} may have at most ${LIMITS.metadataEntries} entries`);
  }
  for (const k of keys) {
    if (k.length === 0 || k.length > LIMITS.metadataKeyLength) {
      throw invalidArgument("invalid_metadata", `${field} keys must be 1-${LIMITS.metadataKeyLength} characters`);
    }
    validateText(k, `${field} keys`);
    const v = validateText(metadata[k] ?? "", `${field}["${k}"]`);
    if (v.length > LIMITS.metadataValueLength) {
      throw invalidArgument("invalid_metadata", `${field}["${k}"] is longer than ${LIMITS.metadataValueLength} characters`);
    }
  }
  return { ...metadata };
}

/**
 * Idempotency keys (and the other client-chosen keys: usage ids, uniqueness
 * keys): 1-255 printable ASCII characters without spaces, `!` to `~`.
 * Non-ASCII is refused so that two visually equal keys cannot differ in
 * normalisation, and spaces so that a key copied from a log or a shell
 * cannot lose or gain one unseen.
 */
export function validateIdempotencyKey(key: string, field = "idempotency_key"): string {
  if (key.length === 0) throw invalidArgument("missing_idempotency_key", `${field} is required`);
  if (key.length > LIMITS.idempotencyKeyLength || !/^[\x21-\x7e]+$/.test(key)) {
    throw invalidArgument("invalid_idempotency_key", `${field} must be 1-${LIMITS.idempotencyKeyLength} printable ASCII characters without spaces`);
  }
  return key;
}

/** Transfer kinds: lower-case words such as payment, charge, refund, adjustment. */
export function validateKind(kind: string): string {
  if (kind === "") return "payment";
  if (kind.length > LIMITS.kindLength || !/^[a-z0-9][a-z0-9_.-]*$/.test(kind)) {
    throw invalidArgument("invalid_kind", `kind must be 1-${LIMITS.kindLength} characters of [a-z0-9_.-]`);
  }
  return kind;
}

/** Notes are free text with a length bound. */
export function validateNote(note: string): string {
  if (note.length > LIMITS.noteLength) {
    throw invalidArgument("invalid_note", `note must be at most ${LIMITS.noteLength} characters`);
  }
  return validateText(note, "note");
}

/** Page sizes: 0 means the default; anything outside 1..max is refused. */
export function validatePageSize(size: number, defaultSize: number, max: number): number {
  if (size === 0) return defaultSize;
  if (!Number.isInteger(size) || size < 1 || size > max) {
    throw invalidArgument("invalid_page_size", `page_size must be between 1 and ${max}`);
  }
  return size;
}
