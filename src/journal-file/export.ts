import { WORLD_ACCOUNT_ID } from "../domain/ids.js";
import type { Account } from "../domain/model.js";
import type { JournalWrite, StoreReader } from "../domain/store.js";
import { HEADER, type FreezeRecord, type JournalRecord, type UnfreezeRecord } from "./records.js";

/** What an export reads. */
export type JournalSource = Pick<StoreReader, "listTenantIds" | "getTenant" | "listAssets" | "listAccounts" | "journalWrites" | "journalHead">;

/** How far an export has got. */
export interface ExportProgress {
  /** Journal writes exported so far. */
  readonly writes: number;
  /** The sequence reached, of `head`. */
  readonly sequence: bigint;
  readonly head: bigint;
}

/** Options for {@link journalRecords}. */
export interface ExportOptions {
  /** The tenants to export, in this order; all of them (in id order) when empty or absent. */
  readonly tenants?: readonly string[] | undefined;
  /** Called after each page of the journal. */
  readonly onProgress?: ((p: ExportProgress) => void) | undefined;
  /** Journal writes read per query (default 1,000). */
  readonly pageSize?: number | undefined;
}

/**
 * The records of a journal file for the given tenants, in the order an
 * import must apply them (see records.ts). The export stops at the journal's
 * head when it starts: writes committed while it runs are left for the next
 * one. An account's freeze (or the lifting of one) goes just before the
 * first write touching the account that is effective after it: the ledger
 * refuses writes effective before an account's last freeze or unfreeze, and
 * a frozen account's later writes (credits) must see it frozen.
 */
export async function* journalRecords(source: JournalSource, options: ExportOptions = {}): AsyncGenerator<JournalRecord> {
  const pageSize = options.pageSize ?? 1000;
  const head = await source.journalHead();
  const tenants = options.tenants !== undefined && options.tenants.length > 0 ? options.tenants : await source.listTenantIds();
  let records = 0n;
  let writes = 0;
  yield HEADER;
  for (const tenantId of tenants) {
    const tenant = await source.getTenant(tenantId);
    if (!tenant) throw new Error(`tenant "${tenantId}" not found`);
    yield { type: "tenant", id: tenant.id, name: tenant.name };
    records++;
    for (const asset of [...(await source.listAssets(tenantId))].sort((a, b) => (a.code < b.code ? -1 : a.code > b.code ? 1 : 0))) {
      yield { type: "asset", code: asset.code, scale: asset.scale };
      records++;
    }
    // Account-level events still to place in the journal, by account.
    const states = new Map<string, FreezeRecord | UnfreezeRecord>();
    for (let after = ""; ; ) {
      const page = await source.listAccounts(tenantId, after, pageSize);
      for (const a of page) {
        // @world comes with every tenant: the importing ledger has its own.
        if (a.id === WORLD_ACCOUNT_ID) continue;
        yield {
          type: "account",
          id: a.id,
          overdraftLimit: a.overdraftLimit,
          overdraftUnlimited: a.overdraftUnlimited,
          metadata: a.metadata,
          openedAt: a.createdAt,
        };
        records++;
        const state = accountState(a);
        if (state) states.set(a.id, state);
      }
      if (page.length < pageSize) break;
      after = page[page.length - 1]!.id;
    }
    for (let after = 0n; after < head; ) {
      const page = (await source.journalWrites(tenantId, after, pageSize)).filter((w) => w.entry.sequence <= head);
      for (const w of page) {
        for (const id of [w.transfer.debitAccountId, w.transfer.creditAccountId]) {
          const state = states.get(id);
          if (state && state.effectiveAt < w.entry.effectiveAt) {
            yield state;
            records++;
            states.delete(id);
          }
        }
        yield writeRecord(w);
        records++;
        writes++;
      }
      after = page.length < pageSize ? head : page[page.length - 1]!.entry.sequence;
      options.onProgress?.({ writes, sequence: after, head });
    }
    for (const state of states.values()) {
      yield state;
      records++;
    }
  }
  yield { type: "end", records };
}

/** The account-level event an account's state records, if any (see UnfreezeRecord). */
function accountState(a: Account): FreezeRecord | UnfreezeRecord | undefined {
  if (a.frozenAt !== null) return { type: "freeze", accountId: a.id, effectiveAt: a.effectiveAt };
  if (a.effectiveAt > a.createdAt) return { type: "unfreeze", accountId: a.id, effectiveAt: a.effectiveAt };
  return undefined;
}

/**
 * The record of one journal write, told apart by its credit-side entry: a
 * creation reserves (PENDING) or moves with no pending change (POSTED); a
 * settlement releases the reservation (pending change < 0).
 */
function writeRecord(w: JournalWrite): JournalRecord {
  const { entry: e, transfer: t } = w;
  if (e.status === "VOIDED") return { type: "void", transferId: t.id, effectiveAt: e.effectiveAt };
  if (e.status === "POSTED" && e.pendingChange < 0n) return { type: "post", transferId: t.id, amount: e.amount, effectiveAt: e.effectiveAt };
  return {
    type: "transfer",
    id: t.id,
    idempotencyKey: t.idempotencyKey,
    debitAccountId: t.debitAccountId,
    creditAccountId: t.creditAccountId,
    asset: t.asset,
    amount: t.amount,
    pending: e.status === "PENDING",
    kind: t.kind,
    note: t.note,
    metadata: t.metadata,
    effectiveAt: e.effectiveAt,
  };
}
