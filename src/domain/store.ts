import type { AccessReader, AccessTx } from "./access-port.js";
import type { CreditReader, CreditTx } from "./credits/credit-port.js";
import type { LedgerReader, LedgerTx } from "./ledger-port.js";
import type { WriteOptions } from "./transactional.js";

export type { AccessReader, AccessTx } from "./access-port.js";
export type { CreditReader, CreditTx } from "./credits/credit-port.js";
export type {
  AccountBalance,
  EntryPageQuery,
  EntryTailQuery,
  JournalSum,
  JournalSums,
  JournalWrite,
  LedgerReader,
  LedgerTx,
  PostedEntryPageQuery,
  RunningSum,
} from "./ledger-port.js";
export type { WriteOptions } from "./transactional.js";

/**
 * Every read of every port, for a store to implement. The domain's consumers
 * each take only their own port (LedgerPort, AccessPort, CreditPort).
 */
export interface StoreReader extends LedgerReader, AccessReader, CreditReader {}

/** Every operation of every port inside one atomic write, for a store to implement. */
export interface WriteTx extends LedgerTx, AccessTx, CreditTx {}

/** The persistence the domain needs. SQLite and PostgreSQL implement it; it satisfies every port. */
export interface Store extends StoreReader {
  /**
   * Runs `fn` atomically and resolves only after its changes are durably
   * committed. Rejects (and keeps nothing) when `fn` throws or the commit fails.
   */
  write<T>(fn: (tx: WriteTx) => Promise<T>, options?: WriteOptions): Promise<T>;
  /** Resolves when the store answers a trivial query (readiness probes); rejects when it cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
