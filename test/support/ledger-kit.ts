import type { Client } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { AdminService } from "../../gen/tally/admin/v1/admin_pb.js";
import { ErrorDetailSchema, LedgerService } from "../../gen/tally/ledger/v1/ledger_pb.js";
import type { Transaction } from "../../gen/tally/ledger/v1/ledger_pb.js";
import { create } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import type { Timestamp } from "@bufbuild/protobuf/wkt";

/** A typed LedgerService client. */
export type LedgerClient = Client<typeof LedgerService>;
/** A typed AdminService client. */
export type AdminClient = Client<typeof AdminService>;

/** What a refused call looked like on the wire: its code and the ErrorDetail reason. */
export interface Refusal {
  readonly error: ConnectError;
  readonly code: Code;
  /** The ErrorDetail reason, or undefined when the error carried none. */
  readonly reason: string | undefined;
  readonly metadata: Readonly<Record<string, string>>;
}

/** Reads code and ErrorDetail from anything a client threw. */
export function refusalOf(e: unknown): Refusal {
  const error = ConnectError.from(e);
  const [detail] = error.findDetails(ErrorDetailSchema);
  return { error, code: error.code, reason: detail?.reason, metadata: detail?.metadata ?? {} };
}

/**
 * Awaits a call that must fail and returns how it failed. A call that succeeds
 * fails the test with its result, so a missing refusal can never pass silently.
 */
export async function refused(call: Promise<unknown>): Promise<Refusal> {
  let result: unknown;
  try {
    result = await call;
  } catch (e) {
    return refusalOf(e);
  }
  throw new Error(`expected the call to be refused, but it succeeded with ${safeJson(result)}`);
}

/**
 * Asserts that a call fails with `code` and, when given, ErrorDetail `reason`.
 * Returns the refusal for further checks.
 */
export async function expectRefused(call: Promise<unknown>, code: Code, reason?: string): Promise<Refusal> {
  const r = await refused(call);
  if (r.code !== code || (reason !== undefined && r.reason !== reason)) {
    throw new Error(
      `expected ${Code[code]}${reason === undefined ? "" : `/${reason}`}, got ${Code[r.code]}/${r.reason ?? "(no detail)"}: ${r.error.rawMessage}`,
    );
  }
  return r;
}

/** Every journal entry of an account, newest first, walking all pages of `pageSize`. */
export async function allTransactions(
  client: LedgerClient,
  accountId: string,
  opts: { asset?: string; pageSize?: number } = {},
): Promise<Transaction[]> {
  const out: Transaction[] = [];
  let pageToken = "";
  // Bounded so that a token that never ends (a paging bug) fails instead of hanging.
  for (let page = 0; page < 100_000; page++) {
    const res = await client.listTransactions({
      accountId,
      asset: opts.asset ?? "",
      pageSize: opts.pageSize ?? 1000,
      pageToken,
    });
    out.push(...res.transactions);
    if (res.nextPageToken === "") return out;
    pageToken = res.nextPageToken;
  }
  throw new Error(`listTransactions(${accountId}) did not end`);
}

/** A short random suffix, so ids of one run never collide with another run's on a shared server. */
export function uniq(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}

/**
 * A seeded PRNG (mulberry32). Randomized tests use it so that a failure can be
 * replayed exactly from the printed seed.
 */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [lo, hi] from a PRNG. */
export function randInt(next: () => number, lo: number, hi: number): number {
  return lo + Math.floor(next() * (hi - lo + 1));
}

/**
 * The seed of a randomized test: `TALLY_SEED` (or `<name>_SEED`) when set, so a
 * failure can be replayed, else a fresh one. Always printed.
 */
export function seedFor(name: string): number {
  const raw = process.env[`${name.toUpperCase().replace(/[^A-Z0-9]/g, "_")}_SEED`] ?? process.env.TALLY_SEED;
  const seed = raw !== undefined && raw !== "" ? Number(raw) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
  console.log(`[${name}] seed=${seed} (replay with TALLY_SEED=${seed})`);
  return seed;
}

/** Runs `worker(i)` for i in [0, n) with every worker in flight at once. */
export function parallel<T>(n: number, worker: (i: number) => Promise<T>): Promise<T[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => worker(i)));
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x));
  } catch {
    return String(v);
  }
}

/**
 * A one-second service period starting at `t`, for RecordUsage: the usage
 * draws from the segments in effect at `t` and is dated a second later (the
 * period's end). Tests that date a usage exactly spell out their period.
 */
export function secondFrom(t: Timestamp): { startingAt: Timestamp; endingBefore: Timestamp } {
  return { startingAt: t, endingBefore: create(TimestampSchema, { seconds: t.seconds + 1n, nanos: t.nanos }) };
}
