import type { AccessPort } from "../../src/domain/access-port.js";
import { LedgerError } from "../../src/domain/errors.js";
import type { CredentialRecord } from "../../src/domain/model.js";

/**
 * Credentials, accounts and nonces in maps: just what Credentials and the
 * dialects' authenticators use, for specs that need no store. Every account
 * exists; `taken` makes ids look taken by someone else (a clash).
 */
export function memoryAccess(taken: (kind: string, id: string) => boolean = () => false) {
  const rows = new Map<string, CredentialRecord>();
  const nonces = new Set<string>();
  const get = async (kind: string, id: string) => rows.get(`${kind}\0${id}`) ?? (taken(kind, id) ? ({ kind, id } as CredentialRecord) : undefined);
  const tx = {
    getAccount: async () => ({}),
    getCredential: get,
    insertCredential: async (c: CredentialRecord) => void rows.set(`${c.kind}\0${c.id}`, c),
    revokeCredential: async (kind: string, id: string, revokedAt: bigint) => {
      const c = rows.get(`${kind}\0${id}`)!;
      rows.set(`${kind}\0${id}`, { ...c, revokedAt });
    },
    claimNonce: async (scope: string, nonce: string) => {
      const key = `${scope} ${nonce}`;
      if (nonces.has(key)) return false;
      nonces.add(key);
      return true;
    },
  };
  const port = {
    getCredential: get,
    listCredentials: async (kind: string) => [...rows.values()].filter((c) => c.kind === kind),
    write: async <V>(fn: (t: typeof tx) => Promise<V>) => fn(tx),
  };
  return { port: port as unknown as AccessPort, rows };
}

/** The LedgerError a call or promise refused with; throws if it succeeded. */
export async function refusal(p: Promise<unknown> | (() => unknown)): Promise<LedgerError> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    if (e instanceof LedgerError) return e;
    throw e;
  }
  throw new Error("expected a refusal");
}

/** What a caller sees of a refusal. */
export const shape = (e: LedgerError) => ({ code: e.code, reason: e.reason, message: e.message, metadata: e.metadata });

