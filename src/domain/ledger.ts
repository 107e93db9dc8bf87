import type { Asset } from "./asset.js";
import { defaultScale, validateAssetCode, validateScale } from "./asset.js";
import { LedgerError, failedPrecondition, invalidArgument, notFound } from "./errors.js";
import type { BalanceFeed } from "./feed.js";
import { LocalBalanceFeed } from "./feed.js";
import type { EffectiveFloor } from "./effective-time.js";
import { effectiveTime, requireReadableTime } from "./effective-time.js";
import { WORLD_ACCOUNT_ID, newId, validateAccountId, validateAccountRef, validateTransferId } from "./ids.js";
import type { AccountIdRule } from "./ids.js";
import type {
  Account,
  Balance,
  BalanceRow,
  Entry,
  EntryView,
  NewEntry,
  Transfer,
  VerifyReport,
} from "./model.js";
import { checkedAdd, checkedSub, isInt64, requirePositiveAmount } from "./money.js";
import type { LedgerPort, LedgerTx } from "./ledger-port.js";
import { reconcile } from "./verify.js";
import { verifyCredits, withCredits } from "./credits/verify.js";
import { SharedReads } from "./shared-reads.js";
import { idempotencyRecordOf, replayedTransfer, transferRequestHash } from "./transfer-codec.js";
import {
  LIMITS,
  validateIdempotencyKey,
  validateKind,
  validateMetadata,
  validateNote,
} from "./validate.js";

/** A clock in Unix epoch microseconds. */
export type Clock = () => bigint;

/** The wall clock, in microseconds. */
export const systemClock: Clock = () => BigInt(Date.now()) * 1000n;

/** Options for {@link Ledger}. */
export interface LedgerOptions {
  readonly store: LedgerPort;
  /** Wakes balance watchers; defaults to an in-process feed. */
  readonly feed?: BalanceFeed;
  readonly clock?: Clock;
  /** Told of each transfer answered from its idempotency record instead of applied (for metrics). */
  readonly onReplay?: (operation: "transfer") => void;
}

/** What a client asks for when it moves money. */
export interface TransferInput {
  readonly idempotencyKey: string;
  readonly debitAccountId: string;
  readonly creditAccountId: string;
  readonly asset: string;
  readonly amount: bigint;
  readonly kind: string;
  readonly note: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly pending: boolean;
  /** When it took effect, if not now (backdated; see effective-time.ts). */
  readonly effectiveAt?: bigint | undefined;
  /**
   * The transfer's id, when it already has one: an import keeps the ids of
   * the ledger it brings in. No API sets it; new transfers get a new id.
   */
  readonly id?: string | undefined;
}

/** A transfer and whether it is the stored answer to an earlier identical request. */
export interface TransferResult {
  readonly transfer: Transfer;
  readonly replayed: boolean;
}

/** What a client asks for when it opens an account. */
export interface AccountInput {
  readonly id: string;
  readonly overdraftLimit: bigint;
  readonly overdraftUnlimited: boolean;
  readonly metadata: Readonly<Record<string, string>>;
  /** When the account was opened, if not now (backdated; see effective-time.ts). */
  readonly effectiveAt?: bigint | undefined;
}

/** One message of a balance watch. */
export type WatchEvent =
  | { readonly type: "snapshot"; readonly sequence: bigint; readonly balances: Balance[] }
  | { readonly type: "change"; readonly entry: EntryView; readonly balance: Balance };

/** Parameters of a balance watch. */
export interface WatchQuery {
  readonly tenantId: string;
  readonly accountId: string;
  readonly asset?: string | undefined;
  readonly afterSequence?: bigint | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** How many journal entries a watcher reads per query while catching up. */
const WATCH_BATCH = 500;

/**
 * The ledger's rules: double entry, overdraft limits, freezes, idempotency,
 * two-phase transfers. Every rule is checked inside the write it guards, so a
 * concurrent writer can never slip between a check and the change it allows.
 */
export class Ledger {
  readonly store: LedgerPort;
  readonly feed: BalanceFeed;
  private readonly clock: Clock;
  private readonly onReplay: LedgerOptions["onReplay"];
  /** Watchers of one account read each commit's entries (and the lock state) once between them. */
  private readonly watchReads = new SharedReads();
  /**
   * The change event of each journal entry a shared read returned: watchers
   * of one account that read the same batch get the same event object, so
   * what the layers above derive from it (the response message, its
   * encoding) can be made once and fanned out.
   */
  private readonly changeEvents = new WeakMap<EntryView, WatchEvent>();

  constructor(options: LedgerOptions) {
    this.store = options.store;
    this.feed = options.feed ?? new LocalBalanceFeed();
    this.clock = options.clock ?? systemClock;
    this.onReplay = options.onReplay;
  }

  /** The current time, as the ledger records it. */
  now(): bigint {
    return this.clock();
  }

  // ---- accounts -----------------------------------------------------------

  /**
   * Opens an account; ids are chosen by the client or generated. The first
   * of `idRules` that applies to the account's metadata generates its id, or
   * checks the client's.
   */
  async createAccount(tenantId: string, input: AccountInput, idRules: readonly AccountIdRule[] = []): Promise<Account> {
    const rule = idRules.find((r) => r.applies(input.metadata));
    const id = input.id === "" ? (rule?.generate() ?? newId("acct")) : validateAccountId(input.id, "id");
    if (input.id !== "") rule?.check(id);
    if (!isInt64(input.overdraftLimit) || input.overdraftLimit < 0n) {
      throw invalidArgument("invalid_overdraft_limit", "overdraft_limit must be zero or positive");
    }
    const openedAt = effectiveTime(input.effectiveAt, this.clock(), []);
    const account: Account = {
      tenantId,
      id,
      overdraftLimit: input.overdraftUnlimited ? 0n : input.overdraftLimit,
      overdraftUnlimited: input.overdraftUnlimited,
      metadata: validateMetadata(input.metadata),
      frozenAt: null,
      createdAt: openedAt,
      effectiveAt: openedAt,
    };
    return this.store.write(async (tx) => {
      if (await tx.getAccount(tenantId, id)) {
        throw new LedgerError("already_exists", "account_exists", `account "${id}" already exists`);
      }
      await tx.insertAccount(account);
      return account;
    });
  }

  /** Reads an account or fails with not_found. */
  async getAccount(tenantId: string, id: string): Promise<Account> {
    validateAccountRef(id, "id");
    const account = await this.store.getAccount(tenantId, id);
    if (!account) throw notFound("account", id);
    return account;
  }

  /** Accounts in id order after `afterId`. */
  listAccounts(tenantId: string, afterId: string, limit: number): Promise<Account[]> {
    return this.store.listAccounts(tenantId, afterId, limit);
  }

  /**
   * Freezes or unfreezes an account (the API's LockBalance / UnlockBalance),
   * now or at a past effective time no earlier than anything recorded on the
   * account. Freezing twice keeps the first frozenAt.
   */
  async setFrozen(tenantId: string, id: string, frozen: boolean, effectiveAt?: bigint): Promise<Account> {
    validateAccountRef(id, "account_id");
    const account = await this.store.write(async (tx) => {
      await tx.lockAccounts(tenantId, [id]);
      const current = await tx.getAccount(tenantId, id);
      if (!current) throw notFound("account", id);
      if (frozen === (current.frozenAt !== null)) return current;
      const floors = [
        { at: current.effectiveAt, accountId: id },
        { at: await tx.latestBalanceTime(tenantId, id), accountId: id },
      ];
      const at = effectiveTime(effectiveAt, this.clock(), floors);
      const frozenAt = frozen ? at : null;
      await tx.setAccountFrozen(tenantId, id, frozenAt, at);
      return { ...current, frozenAt, effectiveAt: at };
    });
    return account;
  }

  // ---- assets -------------------------------------------------------------

  /** Fixes an asset's scale. Defining it again with the same scale is a no-op. */
  async defineAsset(tenantId: string, code: string, scale: number): Promise<Asset> {
    validateAssetCode(code);
    validateScale(scale);
    return this.store.write(async (tx) => {
      const existing = await tx.getAsset(tenantId, code);
      if (existing) {
        if (existing.scale !== scale) {
          throw failedPrecondition("asset_scale_fixed", `asset ${code} already has scale ${existing.scale}`);
        }
        return existing;
      }
      const asset = { code, scale };
      await tx.insertAsset(tenantId, asset, this.clock());
      return asset;
    });
  }

  /** The tenant's assets. */
  listAssets(tenantId: string): Promise<Asset[]> {
    return this.store.listAssets(tenantId);
  }

  private async scaleOf(tenantId: string, code: string): Promise<number> {
    return (await this.store.getAsset(tenantId, code))?.scale ?? defaultScale(code);
  }

  private async ensureAsset(tx: LedgerTx, tenantId: string, code: string): Promise<Asset> {
    const existing = await tx.getAsset(tenantId, code);
    if (existing) return existing;
    const asset = { code, scale: defaultScale(code) };
    await tx.insertAsset(tenantId, asset, this.clock());
    return asset;
  }

  // ---- transfers ----------------------------------------------------------

  /** Posts one transfer. */
  async postTransfer(tenantId: string, input: TransferInput): Promise<TransferResult> {
    const [result] = await this.postTransfers(tenantId, [input]);
    return result!;
  }

  /**
   * Posts a batch atomically. Each item is idempotent on its own key: items
   * seen before are replayed, new ones applied, all in one transaction; if any
   * item is refused, nothing of the batch is written.
   */
  async postTransfers(tenantId: string, inputs: readonly TransferInput[]): Promise<TransferResult[]> {
    if (inputs.length === 0) throw invalidArgument("empty_batch", "transfers must not be empty");
    if (inputs.length > LIMITS.batchSize) {
      throw invalidArgument("batch_too_large", `a batch may hold at most ${LIMITS.batchSize} transfers`);
    }
    const normalized = inputs.map((input, i) => normalizeTransfer(input, inputs.length > 1 ? `transfers[${i}].` : ""));
    const keys = new Set<string>();
    for (const t of normalized) {
      if (keys.has(t.idempotencyKey)) {
        throw invalidArgument("duplicate_idempotency_key", `idempotency_key "${t.idempotencyKey}" appears twice in the batch`);
      }
      keys.add(t.idempotencyKey);
    }
    const hashes = normalized.map(transferRequestHash);
    const touched = new Set<string>();
    const accountIds = [...new Set(normalized.flatMap((t) => [t.debitAccountId, t.creditAccountId]))].sort();
    const results = await this.store.write(async (tx) => {
      await tx.lockAccounts(tenantId, accountIds);
      const out: TransferResult[] = [];
      for (let i = 0; i < normalized.length; i++) {
        const input = normalized[i]!;
        const hash = hashes[i]!;
        const prior = await tx.getIdempotency(tenantId, input.idempotencyKey);
        if (prior) {
          if (prior.requestHash !== hash) {
            throw new LedgerError(
              "already_exists",
              "idempotency_key_reused",
              `idempotency_key "${input.idempotencyKey}" was already used for a different request`,
              { idempotency_key: input.idempotencyKey, transfer_id: prior.transferId },
            );
          }
          const current = await tx.getTransfer(tenantId, prior.transferId);
          if (!current) throw new LedgerError("internal", "idempotency_without_transfer", `the transfer of idempotency_key "${input.idempotencyKey}" is missing`);
          out.push({ transfer: replayedTransfer(current, prior), replayed: true });
          continue;
        }
        const transfer = await this.applyTransfer(tx, tenantId, input);
        touched.add(transfer.debitAccountId).add(transfer.creditAccountId);
        await tx.putIdempotency(idempotencyRecordOf(transfer, hash));
        out.push({ transfer, replayed: false });
      }
      return out;
    }, { locks: { tenantId, accountIds }, idempotencyKeys: [...keys] });
    if (touched.size > 0) this.feed.publish(tenantId, touched);
    // Counted once the write is committed: a store may run a write's function more than once.
    if (this.onReplay !== undefined) for (const r of results) if (r.replayed) this.onReplay("transfer");
    return results;
  }

  private async applyTransfer(tx: LedgerTx, tenantId: string, input: TransferInput): Promise<Transfer> {
    const { debit, credit } = await this.loadParties(tx, tenantId, input.debitAccountId, input.creditAccountId);
    const asset = await this.ensureAsset(tx, tenantId, input.asset);
    const now = this.clock();
    const dRow = await tx.getBalance(tenantId, debit.id, asset.code);
    const cRow = await tx.getBalance(tenantId, credit.id, asset.code);
    const floors = floorsOf(debit, credit, dRow, cRow);
    if (input.effectiveAt !== undefined) {
      // A backdated write may not go before anything recorded on its accounts
      // in any asset. (A current one is at the ledger's time, later than all
      // of that already; its own balances cover a clock that ran behind.)
      for (const a of [debit, credit]) {
        if (a.id !== WORLD_ACCOUNT_ID) floors.push({ at: await tx.latestBalanceTime(tenantId, a.id), accountId: a.id });
      }
    }
    const at = effectiveTime(input.effectiveAt, now, floors);
    const d = dRow ?? zeroRow(tenantId, debit.id, asset.code, at);
    const c = cRow ?? zeroRow(tenantId, credit.id, asset.code, at);
    const amount = input.amount;
    let dNext: BalanceRow;
    let cNext: BalanceRow;
    if (input.pending) {
      dNext = { ...d, pendingOut: checkedAdd(d.pendingOut, amount, "pending_out") };
      cNext = { ...c, pendingIn: checkedAdd(c.pendingIn, amount, "pending_in") };
    } else {
      dNext = { ...d, posted: checkedSub(d.posted, amount, "debit balance") };
      cNext = { ...c, posted: checkedAdd(c.posted, amount, "credit balance") };
    }
    requireWithinOverdraft(debit, dNext, amount);
    const status = input.pending ? "PENDING" : "POSTED";
    const transferId = input.id ?? newId("tr");
    if (input.id !== undefined && (await tx.getTransfer(tenantId, input.id))) {
      throw new LedgerError("already_exists", "transfer_exists", `transfer "${input.id}" already exists`, { transfer_id: input.id });
    }
    const [de, ce] = await this.appendPair(tx, {
      tenantId,
      transferId,
      debitId: debit.id,
      creditId: credit.id,
      asset: asset.code,
      status,
      amount,
      pendingChange: input.pending ? amount : 0n,
      dNext,
      cNext,
      now,
      at,
    });
    const transfer: Transfer = {
      tenantId,
      id: transferId,
      idempotencyKey: input.idempotencyKey,
      debitAccountId: debit.id,
      creditAccountId: credit.id,
      asset: asset.code,
      amount,
      postedAmount: input.pending ? 0n : amount,
      kind: input.kind,
      note: input.note,
      metadata: input.metadata,
      status,
      createdAt: now,
      updatedAt: now,
      effectiveAt: at,
      sequence: ce.sequence,
      debitBalanceAfter: de.postedAfter,
      creditBalanceAfter: ce.postedAfter,
    };
    await tx.insertTransfer(transfer);
    return transfer;
  }

  /**
   * Settles a pending transfer for `amount` (0n: the full reservation). Posting
   * an already posted transfer for the same amount returns it unchanged, so a
   * retried post is harmless.
   */
  async postPending(tenantId: string, transferId: string, amount: bigint, effectiveAt?: bigint): Promise<Transfer> {
    if (!isInt64(amount) || amount < 0n) throw invalidArgument("invalid_amount", "amount must be zero (the full amount) or positive");
    return this.settle(tenantId, transferId, "POSTED", amount, effectiveAt);
  }

  /** Releases a pending transfer. Voiding a voided transfer returns it unchanged. */
  async voidPending(tenantId: string, transferId: string, effectiveAt?: bigint): Promise<Transfer> {
    return this.settle(tenantId, transferId, "VOIDED", 0n, effectiveAt);
  }

  private async settle(
    tenantId: string,
    transferId: string,
    to: "POSTED" | "VOIDED",
    requested: bigint,
    effectiveAt: bigint | undefined,
  ): Promise<Transfer> {
    if (transferId === "") throw invalidArgument("missing_transfer_id", "transfer_id is required");
    let changed = false;
    const transfer = await this.store.write(async (tx) => {
      const seen = await tx.getTransfer(tenantId, transferId);
      if (!seen) throw notFound("transfer", transferId);
      await tx.lockAccounts(tenantId, [seen.debitAccountId, seen.creditAccountId].sort());
      // Re-read under the locks: another writer may have settled it meanwhile.
      const t = (await tx.getTransfer(tenantId, transferId))!;
      const amount = to === "POSTED" ? (requested === 0n ? t.amount : requested) : t.amount;
      if (t.status !== "PENDING") {
        if (t.status === to && (to === "VOIDED" || requested === 0n || requested === t.postedAmount)) return t;
        throw failedPrecondition("transfer_not_pending", `transfer "${transferId}" is ${t.status.toLowerCase()}, not pending`, {
          status: t.status,
        });
      }
      if (amount > t.amount) {
        throw invalidArgument("amount_exceeds_pending", `amount ${amount} exceeds the pending amount ${t.amount}`);
      }
      const { debit, credit } = await this.loadParties(tx, tenantId, t.debitAccountId, t.creditAccountId);
      if (to === "POSTED") requireNotFrozen(debit);
      const now = this.clock();
      const d = (await tx.getBalance(tenantId, t.debitAccountId, t.asset))!;
      const c = (await tx.getBalance(tenantId, t.creditAccountId, t.asset))!;
      // Never before what it touches, nor before the hold it settles.
      const floors = [...floorsOf(debit, credit, d, c), { at: t.effectiveAt, accountId: t.debitAccountId }];
      if (effectiveAt !== undefined) {
        for (const a of [debit, credit]) {
          if (a.id !== WORLD_ACCOUNT_ID) floors.push({ at: await tx.latestBalanceTime(tenantId, a.id), accountId: a.id });
        }
      }
      const at = effectiveTime(effectiveAt, now, floors);
      const moved = to === "POSTED" ? amount : 0n;
      const dNext = {
        ...d,
        posted: checkedSub(d.posted, moved, "debit balance"),
        pendingOut: checkedSub(d.pendingOut, t.amount, "pending_out"),
      };
      const cNext = {
        ...c,
        posted: checkedAdd(c.posted, moved, "credit balance"),
        pendingIn: checkedSub(c.pendingIn, t.amount, "pending_in"),
      };
      const [de, ce] = await this.appendPair(tx, {
        tenantId,
        transferId,
        debitId: t.debitAccountId,
        creditId: t.creditAccountId,
        asset: t.asset,
        status: to,
        amount: to === "POSTED" ? amount : t.amount,
        pendingChange: -t.amount,
        dNext,
        cNext,
        now,
        at,
      });
      const next: Transfer = {
        ...t,
        status: to,
        postedAmount: moved,
        updatedAt: now,
        sequence: ce.sequence,
        debitBalanceAfter: de.postedAfter,
        creditBalanceAfter: ce.postedAfter,
      };
      await tx.updateTransfer(next);
      changed = true;
      return next;
    });
    if (changed) this.feed.publish(tenantId, [transfer.debitAccountId, transfer.creditAccountId]);
    return transfer;
  }

  /** Reads a transfer or fails with not_found. */
  async getTransfer(tenantId: string, id: string): Promise<Transfer> {
    const t = id === "" ? undefined : await this.store.getTransfer(tenantId, id);
    if (!t) throw notFound("transfer", id);
    return t;
  }

  private async loadParties(tx: LedgerTx, tenantId: string, debitId: string, creditId: string) {
    const debit = await tx.getAccount(tenantId, debitId);
    if (!debit) throw notFound("account", debitId);
    const credit = await tx.getAccount(tenantId, creditId);
    if (!credit) throw notFound("account", creditId);
    return { debit, credit };
  }

  /** Writes the debit and credit entries of one phase and the balances they lead to. */
  private async appendPair(
    tx: LedgerTx,
    p: {
      tenantId: string;
      transferId: string;
      debitId: string;
      creditId: string;
      asset: string;
      status: Transfer["status"];
      amount: bigint;
      pendingChange: bigint;
      dNext: BalanceRow;
      cNext: BalanceRow;
      /** Commit time. */
      now: bigint;
      /** Effective time. */
      at: bigint;
    },
  ): Promise<[Entry, Entry]> {
    const side = (direction: "debit" | "credit", row: BalanceRow): NewEntry => ({
      tenantId: p.tenantId,
      transferId: p.transferId,
      accountId: direction === "debit" ? p.debitId : p.creditId,
      counterpartyId: direction === "debit" ? p.creditId : p.debitId,
      asset: p.asset,
      direction,
      status: p.status,
      amount: direction === "debit" ? -p.amount : p.amount,
      pendingChange: p.pendingChange,
      postedAfter: row.posted,
      pendingInAfter: row.pendingIn,
      pendingOutAfter: row.pendingOut,
      createdAt: p.now,
      effectiveAt: p.at,
    });
    const [de, ce] = await tx.appendEntries([side("debit", p.dNext), side("credit", p.cNext)]);
    await tx.putBalance({ ...p.dNext, sequence: de!.sequence, updatedAt: p.at });
    await tx.putBalance({ ...p.cNext, sequence: ce!.sequence, updatedAt: p.at });
    return [de!, ce!];
  }

  // ---- balances and journal -----------------------------------------------

  /**
   * An account's balance in one asset; zero when it has no history there.
   * With `asOf`, the balance at that effective time: the post-entry balances
   * of the last entry effective at or before it (an index seek, not a sum).
   */
  async getBalance(tenantId: string, accountId: string, asset: string, asOf?: bigint): Promise<Balance> {
    validateAssetCode(asset);
    validateAccountRef(accountId, "id");
    if (asOf !== undefined) {
      requireReadableTime(asOf, this.clock());
      const account = await this.getAccount(tenantId, accountId);
      return this.balanceAsOf(account, asset, asOf, await this.scaleOf(tenantId, asset));
    }
    const found = await this.store.getAccountBalance(tenantId, accountId, asset);
    if (!found) throw notFound("account", accountId);
    const { account, balance } = found;
    return toBalance(account, balance ?? zeroRow(tenantId, accountId, asset, account.createdAt), await this.scaleOf(tenantId, asset));
  }

  /** Every non-zero balance of an account, in asset order; with `asOf`, as they were at that effective time. */
  async getMany(tenantId: string, accountId: string, asOf?: bigint): Promise<Balance[]> {
    if (asOf !== undefined) requireReadableTime(asOf, this.clock());
    const account = await this.getAccount(tenantId, accountId);
    const rows = await this.store.listBalances(tenantId, accountId);
    const out: Balance[] = [];
    for (const row of rows) {
      const scale = await this.scaleOf(tenantId, row.asset);
      // Every asset an account ever held has a balance row, so the rows name every asset it held then too.
      const b = asOf === undefined ? toBalance(account, row, scale) : await this.balanceAsOf(account, row.asset, asOf, scale);
      if (b.posted === 0n && b.pendingIn === 0n && b.pendingOut === 0n) continue;
      out.push(b);
    }
    return out;
  }

  private async balanceAsOf(account: Account, asset: string, asOf: bigint, scale: number): Promise<Balance> {
    if (account.id === WORLD_ACCOUNT_ID) {
      throw failedPrecondition("as_of_unavailable", `${WORLD_ACCOUNT_ID} takes backdated writes in any order, so it has no balance as of a time`);
    }
    const e = await this.store.lastEntryEffectiveBy(account.tenantId, account.id, asset, asOf);
    // Only the current freeze is kept, not a history of them: it shows if it had begun by then.
    const then = { ...account, frozenAt: account.frozenAt !== null && account.frozenAt <= asOf ? account.frozenAt : null };
    const opened = account.createdAt <= asOf ? account.createdAt : asOf;
    return toBalance(then, e ? rowFromEntry(e) : zeroRow(account.tenantId, account.id, asset, opened), scale);
  }

  /** One page of an account's journal, newest first. */
  async listTransactions(
    tenantId: string,
    accountId: string,
    asset: string | undefined,
    beforeSequence: bigint | undefined,
    limit: number,
  ): Promise<EntryView[]> {
    if (asset !== undefined) validateAssetCode(asset);
    await this.getAccount(tenantId, accountId);
    return this.store.listEntries({ tenantId, accountId, asset, beforeSequence, limit });
  }

  /**
   * An account's POSTED entries in one asset, newest first, after skipping
   * the newest `skip` of them (any int64 ≥ 0; past the end gives []). One
   * index seek on the entries' posted ordinals: `skip` costs nothing however
   * large it is.
   */
  async listPostedEntries(tenantId: string, accountId: string, asset: string, skip: bigint, limit: number): Promise<EntryView[]> {
    validateAssetCode(asset);
    if (skip < 0n || !isInt64(skip)) throw invalidArgument("invalid_skip", "skip must be a non-negative int64");
    await this.getAccount(tenantId, accountId);
    return this.store.postedEntriesPage({ tenantId, accountId, asset, skip, limit });
  }

  /**
   * Streams a snapshot as of sequence S, then every entry after S in order.
   * Without `afterSequence`, S is the journal head; with it, S is that point and
   * the snapshot is rebuilt from the entries' after-balances, so a client that
   * overwrites on the snapshot and applies the changes is exactly right after
   * any number of reconnects.
   */
  async *watch(q: WatchQuery): AsyncGenerator<WatchEvent> {
    if (q.asset !== undefined) validateAssetCode(q.asset);
    const account = await this.getAccount(q.tenantId, q.accountId);
    // Subscribe before reading, so a commit between the read and the wait still wakes us.
    const sub = this.feed.subscribe(q.tenantId, q.accountId);
    try {
      const head = await this.store.watchPoint(q.tenantId, q.accountId);
      if (q.afterSequence !== undefined && (q.afterSequence < 0n || q.afterSequence > head)) {
        throw new LedgerError("out_of_range", "sequence_out_of_range", `after_sequence ${q.afterSequence} is outside the journal (0..${head})`);
      }
      const at = q.afterSequence ?? head;
      const assets = q.asset !== undefined ? [q.asset] : await this.store.assetsAtOrBefore(q.tenantId, q.accountId, at);
      const balances: Balance[] = [];
      for (const asset of assets) {
        const e = await this.store.lastEntryAtOrBefore(q.tenantId, q.accountId, asset, at);
        const row = e ? rowFromEntry(e) : zeroRow(q.tenantId, q.accountId, asset, account.createdAt);
        balances.push(toBalance(account, row, await this.scaleOf(q.tenantId, asset)));
      }
      yield { type: "snapshot", sequence: at, balances };
      let last = at;
      const scales = new Map<string, number>();
      while (!q.signal?.aborted) {
        const after = last;
        const batch = await this.watchReads.run(`e\u0000${q.tenantId}\u0000${q.accountId}\u0000${q.asset ?? ""}\u0000${after}`, () =>
          this.store.entriesAfter({ tenantId: q.tenantId, accountId: q.accountId, asset: q.asset, afterSequence: after, limit: WATCH_BATCH }),
        );
        if (batch.length > 0) {
          // The lock state is read once per batch: it is not journaled.
          const current =
            (await this.watchReads.run(`a\u0000${q.tenantId}\u0000${q.accountId}\u0000${batch[batch.length - 1]!.sequence}`, () =>
              this.store.getAccount(q.tenantId, q.accountId),
            )) ?? account;
          for (const entry of batch) {
            let scale = scales.get(entry.asset);
            if (scale === undefined) {
              scale = await this.scaleOf(q.tenantId, entry.asset);
              scales.set(entry.asset, scale);
            }
            let ev = this.changeEvents.get(entry);
            if (ev === undefined) {
              ev = { type: "change", entry, balance: toBalance(current, rowFromEntry(entry), scale) };
              this.changeEvents.set(entry, ev);
            }
            yield ev;
            last = entry.sequence;
          }
        }
        if (batch.length < WATCH_BATCH) await sub.wait(q.signal);
      }
    } finally {
      sub.close();
    }
  }

  /**
   * Recomputes the tenant's balances from the journal and reports every
   * difference, with the checks of the commits' and credits' ledgers added.
   */
  async verify(tenantId: string): Promise<VerifyReport> {
    return withCredits(reconcile(await this.store.journalSums(tenantId)), await verifyCredits(this.store, tenantId));
  }

  /** Creates the tenant's system accounts; called once when a tenant is created. */
  static systemAccounts(tenantId: string, now: bigint): Account[] {
    return [
      {
        tenantId,
        id: WORLD_ACCOUNT_ID,
        overdraftLimit: 0n,
        overdraftUnlimited: true,
        metadata: { system: "true" },
        frozenAt: null,
        createdAt: now,
        effectiveAt: now,
      },
    ];
  }
}

function normalizeTransfer(input: TransferInput, prefix: string): TransferInput {
  const debitAccountId = validateAccountRef(input.debitAccountId, `${prefix}debit_account_id`);
  const creditAccountId = validateAccountRef(input.creditAccountId, `${prefix}credit_account_id`);
  if (debitAccountId === creditAccountId) {
    throw invalidArgument("same_account", `${prefix}debit_account_id and credit_account_id must differ`);
  }
  return {
    idempotencyKey: validateIdempotencyKey(input.idempotencyKey, `${prefix}idempotency_key`),
    debitAccountId,
    creditAccountId,
    asset: validateAssetCode(input.asset),
    amount: requirePositiveAmount(input.amount, `${prefix}amount`),
    kind: validateKind(input.kind),
    note: validateNote(input.note),
    metadata: validateMetadata(input.metadata, `${prefix}metadata`),
    pending: input.pending,
    effectiveAt: input.effectiveAt,
    id: input.id === undefined ? undefined : validateTransferId(input.id, `${prefix}id`),
  };
}

/** What a transfer between two accounts must not be effective before (effective-time.ts). */
function floorsOf(debit: Account, credit: Account, d: BalanceRow | undefined, c: BalanceRow | undefined): EffectiveFloor[] {
  const floors: EffectiveFloor[] = [];
  // @world is the other side of every deposit and withdrawal: a floor on it
  // would forbid importing any history once one current write had landed.
  // It is exempt, and its balance has no as_of (see balanceAsOf).
  if (debit.id !== WORLD_ACCOUNT_ID) {
    floors.push({ at: debit.effectiveAt, accountId: debit.id });
    if (d) floors.push({ at: d.updatedAt, accountId: debit.id });
  }
  if (credit.id !== WORLD_ACCOUNT_ID) {
    floors.push({ at: credit.effectiveAt, accountId: credit.id });
    if (c) floors.push({ at: c.updatedAt, accountId: credit.id });
  }
  return floors;
}

function requireNotFrozen(account: Account): void {
  if (account.frozenAt !== null) {
    throw failedPrecondition("balance_locked", `balance_locked: account "${account.id}" is frozen`, { account_id: account.id });
  }
}

function requireWithinOverdraft(debit: Account, next: BalanceRow, amount: bigint): void {
  requireNotFrozen(debit);
  // Checked even for unlimited accounts: available must always fit in int64.
  const available = checkedSub(next.posted, next.pendingOut, "available balance");
  if (!debit.overdraftUnlimited && available < -debit.overdraftLimit) {
    throw failedPrecondition("insufficient_funds", `insufficient_funds: account "${debit.id}" cannot cover ${amount}`, {
      account_id: debit.id,
    });
  }
}

function zeroRow(tenantId: string, accountId: string, asset: string, at: bigint): BalanceRow {
  return { tenantId, accountId, asset, posted: 0n, pendingIn: 0n, pendingOut: 0n, sequence: 0n, updatedAt: at };
}

function rowFromEntry(e: Entry): BalanceRow {
  return {
    tenantId: e.tenantId,
    accountId: e.accountId,
    asset: e.asset,
    posted: e.postedAfter,
    pendingIn: e.pendingInAfter,
    pendingOut: e.pendingOutAfter,
    sequence: e.sequence,
    updatedAt: e.effectiveAt,
  };
}

function toBalance(account: Account, row: BalanceRow, scale: number): Balance {
  return { ...row, scale, available: row.posted - row.pendingOut, frozenAt: account.frozenAt };
}
