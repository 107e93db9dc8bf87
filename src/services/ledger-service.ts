import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { BalanceChangeKind, LedgerService, WatchBalanceResponseSchema } from "../../gen/tally/ledger/v1/ledger_pb.js";
import type { PostTransferRequest, WatchBalanceResponse } from "../../gen/tally/ledger/v1/ledger_pb.js";
import { LedgerError, invalidArgument } from "../domain/errors.js";
import { whyAborted } from "./errors.js";
import type { Ledger, TransferInput, WatchEvent } from "../domain/ledger.js";
import { validatePageSize } from "../domain/validate.js";
import type { AccountIdRule } from "../domain/ids.js";
import { accountToProto, balanceToProto, entryToProto, microsFromTimestamp, transferToProto } from "./convert.js";
import type { PageTokens } from "../domain/page-token.js";
import { principalOf, requireAccountRead, requireAdmin } from "./principal.js";
import type { StreamLimiter } from "../domain/stream-limiter.js";

/** What the ledger service needs. */
export interface LedgerServiceDeps {
  readonly ledger: Ledger;
  readonly pageTokens: PageTokens;
  readonly streams: StreamLimiter;
  /** Fires when the server shuts down. */
  readonly shutdown?: AbortSignal;
  /** The dialects' rules for the ids of the accounts they read (see AccountIdRule). */
  readonly accountIdRules?: readonly AccountIdRule[];
}

const DEFAULT_PAGE = 25;
const MAX_PAGE = 1000;

/** Registers tally.ledger.v1.LedgerService on a router. */
export function registerLedgerService(router: ConnectRouter, deps: LedgerServiceDeps): void {
  const { ledger, pageTokens, streams, shutdown, accountIdRules = [] } = deps;

  const admin = (ctx: HandlerContext) => {
    const p = principalOf(ctx);
    requireAdmin(p);
    return p.tenantId;
  };
  const reader = (ctx: HandlerContext, accountId: string) => {
    const p = principalOf(ctx);
    requireAccountRead(p, accountId);
    return p.tenantId;
  };

  router.service(LedgerService, {
    async createAccount(req, ctx) {
      const tenantId = admin(ctx);
      const account = await ledger.createAccount(tenantId, {
        id: req.id,
        overdraftLimit: req.overdraftLimit,
        overdraftUnlimited: req.overdraftUnlimited,
        metadata: req.metadata,
        effectiveAt: microsFromTimestamp(req.effectiveAt, "effective_at"),
      }, accountIdRules);
      return { account: accountToProto(account) };
    },

    async getAccount(req, ctx) {
      const tenantId = reader(ctx, req.id);
      return { account: accountToProto(await ledger.getAccount(tenantId, req.id)) };
    },

    async listAccounts(req, ctx) {
      const p = principalOf(ctx);
      const size = validatePageSize(req.pageSize, DEFAULT_PAGE, MAX_PAGE);
      if (p.scope === "account_read") {
        // An account key sees exactly one account, on one page: it is never
        // given a token, so any token it sends is foreign.
        if (req.pageToken !== "") throw invalidArgument("invalid_page_token", "page_token is invalid for this request");
        const own = await ledger.getAccount(p.tenantId, p.accountId!);
        return { accounts: [accountToProto(own)], nextPageToken: "" };
      }
      const query = ["ListAccounts"];
      const after = req.pageToken === "" ? "" : pageTokens.open(req.pageToken, p.tenantId, query);
      const rows = await ledger.listAccounts(p.tenantId, after, size + 1);
      const page = rows.slice(0, size);
      const next = rows.length > size ? pageTokens.seal(p.tenantId, query, page[page.length - 1]!.id) : "";
      return { accounts: page.map(accountToProto), nextPageToken: next };
    },

    async defineAsset(req, ctx) {
      const tenantId = admin(ctx);
      return { asset: await ledger.defineAsset(tenantId, req.code, req.scale) };
    },

    async listAssets(_req, ctx) {
      const p = principalOf(ctx);
      return { assets: await ledger.listAssets(p.tenantId) };
    },

    async postTransfer(req, ctx) {
      const tenantId = admin(ctx);
      const r = await ledger.postTransfer(tenantId, transferInput(req));
      return { transfer: transferToProto(r.transfer), replayed: r.replayed };
    },

    async postTransfers(req, ctx) {
      const tenantId = admin(ctx);
      const results = await ledger.postTransfers(tenantId, req.transfers.map(transferInput));
      return { results: results.map((r) => ({ transfer: transferToProto(r.transfer), replayed: r.replayed })) };
    },

    async postPendingTransfer(req, ctx) {
      const tenantId = admin(ctx);
      return { transfer: transferToProto(await ledger.postPending(tenantId, req.transferId, req.amount, microsFromTimestamp(req.effectiveAt, "effective_at"))) };
    },

    async voidPendingTransfer(req, ctx) {
      const tenantId = admin(ctx);
      return { transfer: transferToProto(await ledger.voidPending(tenantId, req.transferId, microsFromTimestamp(req.effectiveAt, "effective_at"))) };
    },

    async getTransfer(req, ctx) {
      const tenantId = admin(ctx);
      return { transfer: transferToProto(await ledger.getTransfer(tenantId, req.id)) };
    },

    async getBalance(req, ctx) {
      const tenantId = reader(ctx, req.accountId);
      const asOf = microsFromTimestamp(req.asOf, "as_of");
      return { balance: balanceToProto(await ledger.getBalance(tenantId, req.accountId, req.asset, asOf)) };
    },

    async getMany(req, ctx) {
      const tenantId = reader(ctx, req.accountId);
      const asOf = microsFromTimestamp(req.asOf, "as_of");
      return { balances: (await ledger.getMany(tenantId, req.accountId, asOf)).map(balanceToProto) };
    },

    async listTransactions(req, ctx) {
      const tenantId = reader(ctx, req.accountId);
      const size = validatePageSize(req.pageSize, DEFAULT_PAGE, MAX_PAGE);
      const asset = req.asset === "" ? undefined : req.asset;
      const query = ["ListTransactions", req.accountId, req.asset];
      let before: bigint | undefined;
      if (req.pageToken !== "") before = BigInt(pageTokens.open(req.pageToken, tenantId, query));
      const rows = await ledger.listTransactions(tenantId, req.accountId, asset, before, size + 1);
      const page = rows.slice(0, size);
      const next = rows.length > size ? pageTokens.seal(tenantId, query, page[page.length - 1]!.sequence.toString()) : "";
      return { transactions: page.map(entryToProto), nextPageToken: next };
    },

    async *watchBalance(req, ctx) {
      const tenantId = reader(ctx, req.accountId);
      const release = streams.acquire(tenantId);
      try {
        const events = ledger.watch({
          tenantId,
          accountId: req.accountId,
          asset: req.asset === "" ? undefined : req.asset,
          afterSequence: req.afterSequence,
          signal: ctx.signal,
        });
        for await (const ev of events) {
          if (ev.type === "snapshot") {
            yield { event: { case: "snapshot", value: { sequence: ev.sequence, balances: ev.balances.map(balanceToProto) } } };
          } else {
            yield changeMessage(ev);
          }
        }
        // watch() only returns when the call's signal fired. On shutdown, an error
        // tells gRPC clients to reconnect (with after_sequence) instead of taking
        // OK as "done"; otherwise the client left and nobody reads this.
        if (shutdown?.aborted) {
          throw new LedgerError("unavailable", "shutting_down", "the server is shutting down; reconnect with after_sequence");
        }
        // Deadline exceeded (the client's grpc-timeout or connect-timeout-ms), or the client left.
        throw whyAborted(ctx.signal);
      } finally {
        release();
      }
    },

    async lockBalance(req, ctx) {
      const tenantId = admin(ctx);
      return { account: accountToProto(await ledger.setFrozen(tenantId, req.accountId, true, microsFromTimestamp(req.effectiveAt, "effective_at"))) };
    },

    async unlockBalance(req, ctx) {
      const tenantId = admin(ctx);
      return { account: accountToProto(await ledger.setFrozen(tenantId, req.accountId, false, microsFromTimestamp(req.effectiveAt, "effective_at"))) };
    },
  });
}

function transferInput(req: PostTransferRequest): TransferInput {
  return {
    idempotencyKey: req.idempotencyKey,
    debitAccountId: req.debitAccountId,
    creditAccountId: req.creditAccountId,
    asset: req.asset,
    amount: req.amount,
    kind: req.kind,
    note: req.note,
    metadata: req.metadata,
    pending: req.pending,
    effectiveAt: microsFromTimestamp(req.effectiveAt, "effective_at"),
  };
}

/**
 * The WatchBalance message of a change event, made once per event: watchers
 * of one account share their events (Ledger.watch), so they share this
 * message too, and the transport encodes it once for all of them.
 */
const changeMessages = new WeakMap<WatchEvent, WatchBalanceResponse>();
function changeMessage(ev: WatchEvent & { type: "change" }): WatchBalanceResponse {
  let m = changeMessages.get(ev);
  if (m === undefined) {
    const e = ev.entry;
    m = create(WatchBalanceResponseSchema, {
      event: {
        case: "change",
        value: {
          sequence: e.sequence,
          kind: e.amount < 0n ? BalanceChangeKind.DEBIT : BalanceChangeKind.CREDIT,
          delta: e.amount,
          balance: balanceToProto(ev.balance),
          transaction: entryToProto(e),
        },
      },
    });
    changeMessages.set(ev, m);
  }
  return m;
}
