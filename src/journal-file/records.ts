/**
 * The journal file: what `tally export` writes and `tally import` reads. One
 * JSON object per line (NDJSON), in the order an import must apply them:
 *
 *   {"type":"header","format":"tally-journal","version":1}
 *   {"type":"tenant","id":"acme","name":"Acme"}            (starts a tenant's section)
 *   {"type":"asset",...}  {"type":"account",...}           (then its assets and accounts)
 *   {"type":"transfer",...} {"type":"post",...} {"type":"void",...}
 *   {"type":"freeze",...} {"type":"unfreeze",...}          (its journal, in sequence order)
 *   {"type":"end","records":N}                             (N records between header and end)
 *
 * Amounts are int64 decimal strings and times RFC 3339 UTC with six
 * fractional digits: both exact, whatever reads them. Keys are written in a
 * fixed order and metadata with sorted keys, so that exporting the same
 * ledger twice gives the same bytes. Nothing here depends on a store's
 * commit times or sequences: those are the importing ledger's own.
 */
import { INT64_MAX, INT64_MIN } from "../domain/money.js";
import { formatMicros as formatTime } from "../domain/micros.js";

/** The format's name in the header line. */
export const JOURNAL_FORMAT = "tally-journal";
/** The version this code writes and reads. */
export const JOURNAL_VERSION = 1;

export interface HeaderRecord {
  readonly type: "header";
  readonly format: string;
  readonly version: number;
}
export interface TenantRecord {
  readonly type: "tenant";
  readonly id: string;
  readonly name: string;
}
export interface AssetRecord {
  readonly type: "asset";
  readonly code: string;
  readonly scale: number;
}
export interface AccountRecord {
  readonly type: "account";
  readonly id: string;
  readonly overdraftLimit: bigint;
  readonly overdraftUnlimited: boolean;
  readonly metadata: Readonly<Record<string, string>>;
  /** When the account was opened (its effective opening time). */
  readonly openedAt: bigint;
}
export interface TransferRecord {
  readonly type: "transfer";
  readonly id: string;
  readonly idempotencyKey: string;
  readonly debitAccountId: string;
  readonly creditAccountId: string;
  readonly asset: string;
  /** What was asked for; for a hold, the reservation (a later post says what moved). */
  readonly amount: bigint;
  readonly pending: boolean;
  readonly kind: string;
  readonly note: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly effectiveAt: bigint;
}
export interface PostRecord {
  readonly type: "post";
  readonly transferId: string;
  readonly amount: bigint;
  readonly effectiveAt: bigint;
}
export interface VoidRecord {
  readonly type: "void";
  readonly transferId: string;
  readonly effectiveAt: bigint;
}
/** An account frozen at a time (LockBalance). */
export interface FreezeRecord {
  readonly type: "freeze";
  readonly accountId: string;
  readonly effectiveAt: bigint;
}
/**
 * An account whose last account-level event was lifting a freeze: no write
 * touching it may be effective before that time. (The ledger keeps an
 * account's last freeze or unfreeze, not each one, so this is all there is.)
 */
export interface UnfreezeRecord {
  readonly type: "unfreeze";
  readonly accountId: string;
  readonly effectiveAt: bigint;
}
export interface EndRecord {
  readonly type: "end";
  /** Records between the header and this line: a truncated file is refused before anything is imported. */
  readonly records: bigint;
}

/** Any line of a journal file. */
export type JournalRecord =
  | HeaderRecord
  | TenantRecord
  | AssetRecord
  | AccountRecord
  | TransferRecord
  | PostRecord
  | VoidRecord
  | FreezeRecord
  | UnfreezeRecord
  | EndRecord;

/** A line that is not a valid record, with where it is. */
export class JournalFileError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(line > 0 ? `line ${line}: ${message}` : message);
    this.name = "JournalFileError";
  }
}

/** The header line every journal file starts with. */
export const HEADER: HeaderRecord = { type: "header", format: JOURNAL_FORMAT, version: JOURNAL_VERSION };

/** One record as its line (without the newline), keys in a fixed order. */
export function encodeRecord(r: JournalRecord): string {
  switch (r.type) {
    case "header":
      return JSON.stringify({ type: r.type, format: r.format, version: r.version });
    case "tenant":
      return JSON.stringify({ type: r.type, id: r.id, name: r.name });
    case "asset":
      return JSON.stringify({ type: r.type, code: r.code, scale: r.scale });
    case "account":
      return JSON.stringify({
        type: r.type,
        id: r.id,
        overdraft_limit: r.overdraftLimit.toString(),
        overdraft_unlimited: r.overdraftUnlimited,
        metadata: sortedMetadata(r.metadata),
        opened_at: formatTime(r.openedAt),
      });
    case "transfer":
      return JSON.stringify({
        type: r.type,
        id: r.id,
        idempotency_key: r.idempotencyKey,
        debit_account_id: r.debitAccountId,
        credit_account_id: r.creditAccountId,
        asset: r.asset,
        amount: r.amount.toString(),
        pending: r.pending,
        kind: r.kind,
        note: r.note,
        metadata: sortedMetadata(r.metadata),
        effective_at: formatTime(r.effectiveAt),
      });
    case "post":
      return JSON.stringify({ type: r.type, transfer_id: r.transferId, amount: r.amount.toString(), effective_at: formatTime(r.effectiveAt) });
    case "void":
      return JSON.stringify({ type: r.type, transfer_id: r.transferId, effective_at: formatTime(r.effectiveAt) });
    case "freeze":
    case "unfreeze":
      return JSON.stringify({ type: r.type, account_id: r.accountId, effective_at: formatTime(r.effectiveAt) });
    case "end":
      return JSON.stringify({ type: r.type, records: r.records.toString() });
  }
}

/** The fields each record type has, exactly: unknown fields are refused, so that a typo cannot be silently dropped. */
const FIELDS: Record<JournalRecord["type"], readonly string[]> = {
  header: ["format", "version"],
  tenant: ["id", "name"],
  asset: ["code", "scale"],
  account: ["id", "overdraft_limit", "overdraft_unlimited", "metadata", "opened_at"],
  transfer: ["id", "idempotency_key", "debit_account_id", "credit_account_id", "asset", "amount", "pending", "kind", "note", "metadata", "effective_at"],
  post: ["transfer_id", "amount", "effective_at"],
  void: ["transfer_id", "effective_at"],
  freeze: ["account_id", "effective_at"],
  unfreeze: ["account_id", "effective_at"],
  end: ["records"],
};

/**
 * Parses one line. Checks the shape and the exact forms of numbers and
 * times; the ledger's own rules (ids, limits, balances) are checked when the
 * record is applied.
 */
export function decodeRecord(text: string, line: number): JournalRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new JournalFileError(line, `not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new JournalFileError(line, "a record must be a JSON object");
  const o = value as Record<string, unknown>;
  const type = o.type;
  if (typeof type !== "string" || !Object.hasOwn(FIELDS, type)) throw new JournalFileError(line, `unknown record type ${JSON.stringify(type)}`);
  const t = type as JournalRecord["type"];
  const allowed = new Set(["type", ...FIELDS[t]]);
  for (const k of Object.keys(o)) if (!allowed.has(k)) throw new JournalFileError(line, `${t} record has an unknown field "${k}"`);
  const f = new Fields(o, line, t);
  switch (t) {
    case "header":
      return { type: t, format: f.string("format"), version: f.integer("version") };
    case "tenant":
      return { type: t, id: f.string("id"), name: f.string("name") };
    case "asset":
      return { type: t, code: f.string("code"), scale: f.integer("scale") };
    case "account":
      return {
        type: t,
        id: f.string("id"),
        overdraftLimit: f.int64("overdraft_limit"),
        overdraftUnlimited: f.boolean("overdraft_unlimited"),
        metadata: f.metadata("metadata"),
        openedAt: f.time("opened_at"),
      };
    case "transfer":
      return {
        type: t,
        id: f.string("id"),
        idempotencyKey: f.string("idempotency_key"),
        debitAccountId: f.string("debit_account_id"),
        creditAccountId: f.string("credit_account_id"),
        asset: f.string("asset"),
        amount: f.int64("amount"),
        pending: f.boolean("pending"),
        kind: f.string("kind"),
        note: f.string("note"),
        metadata: f.metadata("metadata"),
        effectiveAt: f.time("effective_at"),
      };
    case "post":
      return { type: t, transferId: f.string("transfer_id"), amount: f.int64("amount"), effectiveAt: f.time("effective_at") };
    case "void":
      return { type: t, transferId: f.string("transfer_id"), effectiveAt: f.time("effective_at") };
    case "freeze":
    case "unfreeze":
      return { type: t, accountId: f.string("account_id"), effectiveAt: f.time("effective_at") };
    case "end":
      return { type: t, records: f.int64("records") };
  }
}

/** Typed reads of a record's fields, each failing with the line and the field's name. */
class Fields {
  constructor(
    private readonly o: Record<string, unknown>,
    private readonly line: number,
    private readonly type: string,
  ) {}

  private fail(field: string, what: string): never {
    throw new JournalFileError(this.line, `${this.type}.${field} must be ${what}`);
  }
  string(k: string): string {
    const v = this.o[k];
    return typeof v === "string" ? v : this.fail(k, "a string");
  }
  boolean(k: string): boolean {
    const v = this.o[k];
    return typeof v === "boolean" ? v : this.fail(k, "true or false");
  }
  /** A small non-negative JSON integer (a scale, a version). */
  integer(k: string): number {
    const v = this.o[k];
    return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : this.fail(k, "a non-negative integer");
  }
  /** An int64 as a canonical decimal string: no sign on zero, no leading zeros, no exponent. */
  int64(k: string): bigint {
    const v = this.o[k];
    if (typeof v !== "string" || !/^(0|-?[1-9][0-9]{0,18})$/.test(v)) return this.fail(k, "an integer as a decimal string");
    const n = BigInt(v);
    return n >= INT64_MIN && n <= INT64_MAX ? n : this.fail(k, "within the int64 range");
  }
  metadata(k: string): Record<string, string> {
    const v = this.o[k];
    if (typeof v !== "object" || v === null || Array.isArray(v)) return this.fail(k, "an object of strings");
    const out: Record<string, string> = {};
    for (const [key, val] of Object.entries(v as Record<string, unknown>)) {
      if (typeof val !== "string") return this.fail(k, "an object of strings");
      out[key] = val;
    }
    return out;
  }
  time(k: string): bigint {
    const v = this.o[k];
    const us = typeof v === "string" ? parseTime(v) : undefined;
    return us ?? this.fail(k, 'an RFC 3339 UTC time such as "2026-09-01T00:00:00.000000Z" (1970 to 9999, at most six fractional digits)');
  }
}

function sortedMetadata(m: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(m).sort()) out[k] = m[k]!;
  return out;
}

const TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?Z$/;

/** The exact inverse of formatMicros (`YYYY-MM-DDTHH:MM:SS.ffffffZ`) (fewer fractional digits allowed); undefined for anything else. */
export function parseTime(s: string): bigint | undefined {
  const m = TIME.exec(s);
  if (!m) return undefined;
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (y < 1970) return undefined;
  const ms = Date.UTC(y, mo - 1, d, h, mi, se);
  // Date.UTC rolls 02-30 over into March: a calendar date that is not real is refused.
  const back = new Date(ms);
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || se > 59) return undefined;
  return BigInt(ms) * 1000n + BigInt((m[7] ?? "").padEnd(6, "0"));
}
