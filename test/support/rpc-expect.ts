import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../../gen/tally/ledger/v1/ledger_pb.js";

/** A failed call flattened to what a client can observe, so two failures can be compared field by field. */
export interface RpcFailure {
  readonly code: Code;
  /** The code's name, such as "NotFound", for readable assertion diffs. */
  readonly codeName: string;
  /** The message without Connect's "[code]" prefix. */
  readonly message: string;
  /** The reason of the attached ErrorDetail, when there is one. */
  readonly reason: string | undefined;
  readonly metadata: Readonly<Record<string, string>>;
}

/** The outcome of one call: its value, or what its failure looked like. */
export type Settled<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly failure: RpcFailure };

/** Flattens anything a client call threw into an {@link RpcFailure}. */
export function describeFailure(e: unknown): RpcFailure {
  const ce = ConnectError.from(e);
  const detail = ce.findDetails(ErrorDetailSchema)[0];
  return {
    code: ce.code,
    codeName: Code[ce.code],
    message: ce.rawMessage,
    reason: detail?.reason,
    metadata: { ...(detail?.metadata ?? {}) },
  };
}

/** Runs a call and reports how it ended, never throwing for an RPC error. */
export async function settle<T>(call: () => Promise<T>): Promise<Settled<T>> {
  try {
    return { ok: true, value: await call() };
  } catch (e) {
    return { ok: false, failure: describeFailure(e) };
  }
}

/** Runs a call that must fail and returns its failure; a success fails the test with the value it returned. */
export async function failureOf(call: () => Promise<unknown>): Promise<RpcFailure> {
  const r = await settle(call);
  if (r.ok) throw new Error(`expected the call to fail, but it succeeded with ${safeJson(r.value)}`);
  return r.failure;
}

/**
 * The failure with every occurrence of `ids` replaced by a placeholder: two
 * failures with the same shape differ only in the id the caller sent, which
 * is what "indistinguishable from a nonexistent id" means on the wire.
 */
export function shapeOf(f: RpcFailure, ids: readonly string[]): RpcFailure {
  const scrub = (s: string) => ids.reduce((acc, id) => (id === "" ? acc : acc.split(id).join("<id>")), s);
  return {
    ...f,
    message: scrub(f.message),
    metadata: Object.fromEntries(Object.entries(f.metadata).map(([k, v]) => [k, scrub(v)])),
  };
}

/** The first message of a server stream, then cancels the stream (by leaving the loop). */
export async function firstMessage<T>(stream: AsyncIterable<T>): Promise<T> {
  for await (const m of stream) return m;
  throw new Error("the stream ended without a message");
}

/** JSON.stringify that survives bigint, for failure messages. */
export function safeJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? `${x}n` : x));
}
