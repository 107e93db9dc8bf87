/**
 * Every RPC of LedgerService, AdminService and CreditService, called successfully over every
 * protocol a client can speak (Connect JSON, Connect binary, gRPC, gRPC-Web),
 * with its result checked. The method list comes from the service descriptors,
 * so an RPC added to the proto without a case here fails this file.
 */
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { connect } from "node:http2";
import type { ClientRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { equals } from "@bufbuild/protobuf";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AdminService, KeyScope } from "../gen/tally/admin/v1/admin_pb.js";
import {
  AccountSchema,
  BalanceChangeKind,
  LedgerService,
  TransferSchema,
  TransferStatus,
} from "../gen/tally/ledger/v1/ledger_pb.js";
import type { WatchBalanceResponse } from "../gen/tally/ledger/v1/ledger_pb.js";
import { CreditService } from "../gen/tally/credits/v1/credits_pb.js";
import type { Balance as CreditBalanceMsg } from "../gen/tally/credits/v1/credits_pb.js";
import { timestampFromMicros } from "../src/services/convert.js";
import { PROTOCOLS, bearer, clientFor, startTestServer } from "./support/server.js";
import type { Protocol, TestServer } from "./support/server.js";
import { allTransactions, expectRefused, uniq } from "./support/ledger-kit.js";
import type { AdminClient, LedgerClient } from "./support/ledger-kit.js";

/** What a case gets: clients of one protocol and a prefix for ids it creates. */
interface Ctx {
  readonly protocol: Protocol;
  readonly ledger: LedgerClient;
  readonly admin: AdminClient;
  readonly credits: Client<typeof CreditService>;
  /** A fresh id prefix, unique per (protocol, case, run). */
  readonly p: string;
  /** Builds clients with another key, over the same protocol as the case. */
  readonly ledgerWith: (key: string) => LedgerClient;
}

type Case = (ctx: Ctx) => Promise<void>;

/** Opens an account and credits it from @world, returning its id. */
async function funded(ctx: Ctx, suffix: string, amount: bigint, asset = "USD"): Promise<string> {
  const id = `${ctx.p}-${suffix}`;
  await ctx.ledger.createAccount({ id });
  if (amount > 0n) {
    await ctx.ledger.postTransfer({
      idempotencyKey: `${id}-fund-${asset}`,
      debitAccountId: "@world",
      creditAccountId: id,
      asset,
      amount,
    });
  }
  return id;
}

// Keyed by the generated local names, so the compiler also refuses a missing case.
const ledgerCases: Record<keyof typeof LedgerService.method, Case> = {
  async createAccount({ ledger, p }) {
    const { account } = await ledger.createAccount({ id: `${p}-new`, overdraftLimit: 500n, metadata: { team: "core" } });
    expect(account?.id).toBe(`${p}-new`);
    expect(account?.overdraftLimit).toBe(500n);
    expect(account?.overdraftUnlimited).toBe(false);
    expect(account?.metadata).toEqual({ team: "core" });
    expect(account?.locked).toBe(false);
    expect(account?.lockedAt).toBeUndefined();
    expect(account?.createdAt?.seconds).toBeGreaterThan(0n);
    // A generated id when none is given.
    const gen = await ledger.createAccount({});
    expect(gen.account?.id).toMatch(/^acct_[0-9a-hjkmnp-tv-z]{26}$/);
  },

  async getAccount({ ledger, p }) {
    const { account: created } = await ledger.createAccount({ id: `${p}-a`, overdraftUnlimited: true, metadata: { k: "v" } });
    const { account } = await ledger.getAccount({ id: `${p}-a` });
    expect(account).toBeDefined();
    expect(equals(AccountSchema, account!, created!)).toBe(true);
    expect(account?.overdraftUnlimited).toBe(true);
  },

  async listAccounts({ ledger, p }) {
    const ids = [`${p}-c`, `${p}-a`, `${p}-b`];
    for (const id of ids) await ledger.createAccount({ id });
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const res = await ledger.listAccounts({ pageSize: 2, pageToken });
      expect(res.accounts.length).toBeLessThanOrEqual(2);
      seen.push(...res.accounts.map((a) => a.id));
      pageToken = res.nextPageToken;
      pages++;
    } while (pageToken !== "" && pages < 1000);
    expect(pageToken).toBe("");
    // Id order, each account exactly once, ours included.
    expect(seen).toEqual([...seen].sort());
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.filter((id) => id.startsWith(`${p}-`))).toEqual([`${p}-a`, `${p}-b`, `${p}-c`]);
    expect(seen).toContain("@world");
  },

  async defineAsset({ ledger, protocol }) {
    const code = `DEF_${protocol.toUpperCase().replace("-", "_")}_${Math.random().toString(36).slice(2, 6).toUpperCase()}`;
    const { asset } = await ledger.defineAsset({ code, scale: 2 });
    expect(asset?.code).toBe(code);
    expect(asset?.scale).toBe(2);
    // Defining it again with the same scale is a no-op, not an error.
    const again = await ledger.defineAsset({ code, scale: 2 });
    expect(again.asset?.scale).toBe(2);
  },

  async listAssets({ ledger, protocol }) {
    const code = `LST_${protocol.toUpperCase().replace("-", "_")}_${Math.random().toString(36).slice(2, 6).toUpperCase()}`;
    await ledger.defineAsset({ code, scale: 4 });
    const { assets } = await ledger.listAssets({});
    expect(assets.find((a) => a.code === code)?.scale).toBe(4);
    expect(assets.map((a) => a.code)).toEqual([...assets.map((a) => a.code)].sort());
  },

  async postTransfer(ctx) {
    const id = await funded(ctx, "dst", 0n);
    const res = await ctx.ledger.postTransfer({
      idempotencyKey: `${ctx.p}-k1`,
      debitAccountId: "@world",
      creditAccountId: id,
      asset: "USD",
      amount: 1234n,
      kind: "adjustment",
      note: "hello",
      metadata: { order: "42" },
    });
    const t = res.transfer!;
    expect(res.replayed).toBe(false);
    expect(t.id).toMatch(/^tr_/);
    expect(t.idempotencyKey).toBe(`${ctx.p}-k1`);
    expect(t.debitAccountId).toBe("@world");
    expect(t.creditAccountId).toBe(id);
    expect(t.asset).toBe("USD");
    expect(t.amount).toBe(1234n);
    expect(t.postedAmount).toBe(1234n);
    expect(t.kind).toBe("adjustment");
    expect(t.note).toBe("hello");
    expect(t.metadata).toEqual({ order: "42" });
    expect(t.status).toBe(TransferStatus.POSTED);
    expect(t.creditBalanceAfter).toBe(1234n);
    expect(t.sequence).toBeGreaterThan(0n);
    const { balance } = await ctx.ledger.getBalance({ accountId: id, asset: "USD" });
    expect(balance?.posted).toBe(1234n);
  },

  async postTransfers(ctx) {
    const a = await funded(ctx, "a", 1000n);
    const b = await funded(ctx, "b", 0n);
    const res = await ctx.ledger.postTransfers({
      transfers: [
        { idempotencyKey: `${ctx.p}-b1`, debitAccountId: a, creditAccountId: b, asset: "USD", amount: 300n },
        { idempotencyKey: `${ctx.p}-b2`, debitAccountId: a, creditAccountId: b, asset: "USD", amount: 200n },
      ],
    });
    expect(res.results).toHaveLength(2);
    expect(res.results.map((r) => r.replayed)).toEqual([false, false]);
    expect(res.results.map((r) => r.transfer?.amount)).toEqual([300n, 200n]);
    expect(res.results[0]!.transfer!.id).not.toBe(res.results[1]!.transfer!.id);
    // The second item sees the first: balances after are cumulative.
    expect(res.results.map((r) => r.transfer?.debitBalanceAfter)).toEqual([700n, 500n]);
    expect((await ctx.ledger.getBalance({ accountId: b, asset: "USD" })).balance?.posted).toBe(500n);
  },

  async postPendingTransfer(ctx) {
    const a = await funded(ctx, "a", 1000n);
    const b = await funded(ctx, "b", 0n);
    const hold = await ctx.ledger.postTransfer({
      idempotencyKey: `${ctx.p}-h`,
      debitAccountId: a,
      creditAccountId: b,
      asset: "USD",
      amount: 400n,
      pending: true,
    });
    expect(hold.transfer?.status).toBe(TransferStatus.PENDING);
    const { transfer } = await ctx.ledger.postPendingTransfer({ transferId: hold.transfer!.id, amount: 250n });
    expect(transfer?.status).toBe(TransferStatus.POSTED);
    expect(transfer?.amount).toBe(400n);
    expect(transfer?.postedAmount).toBe(250n);
    expect(transfer?.debitBalanceAfter).toBe(750n);
    expect(transfer?.creditBalanceAfter).toBe(250n);
    const { balance } = await ctx.ledger.getBalance({ accountId: a, asset: "USD" });
    expect([balance?.posted, balance?.pendingOut, balance?.available]).toEqual([750n, 0n, 750n]);
  },

  async voidPendingTransfer(ctx) {
    const a = await funded(ctx, "a", 1000n);
    const b = await funded(ctx, "b", 0n);
    const hold = await ctx.ledger.postTransfer({
      idempotencyKey: `${ctx.p}-h`,
      debitAccountId: a,
      creditAccountId: b,
      asset: "USD",
      amount: 400n,
      pending: true,
    });
    const { transfer } = await ctx.ledger.voidPendingTransfer({ transferId: hold.transfer!.id });
    expect(transfer?.status).toBe(TransferStatus.VOIDED);
    expect(transfer?.postedAmount).toBe(0n);
    const { balance } = await ctx.ledger.getBalance({ accountId: a, asset: "USD" });
    expect([balance?.posted, balance?.pendingOut, balance?.available]).toEqual([1000n, 0n, 1000n]);
    const credit = await ctx.ledger.getBalance({ accountId: b, asset: "USD" });
    expect([credit.balance?.posted, credit.balance?.pendingIn]).toEqual([0n, 0n]);
  },

  async getTransfer(ctx) {
    const id = await funded(ctx, "dst", 0n);
    const { transfer: posted } = await ctx.ledger.postTransfer({
      idempotencyKey: `${ctx.p}-k`,
      debitAccountId: "@world",
      creditAccountId: id,
      asset: "VC",
      amount: 9n,
      metadata: { a: "1", b: "2" },
    });
    const { transfer } = await ctx.ledger.getTransfer({ id: posted!.id });
    expect(transfer).toBeDefined();
    expect(equals(TransferSchema, transfer!, posted!)).toBe(true);
  },

  async getBalance(ctx) {
    const id = await funded(ctx, "acct", 5_000_000n);
    const { balance } = await ctx.ledger.getBalance({ accountId: id, asset: "USD" });
    expect(balance?.accountId).toBe(id);
    expect(balance?.asset).toBe("USD");
    expect(balance?.scale).toBe(6);
    expect(balance?.posted).toBe(5_000_000n);
    expect(balance?.available).toBe(5_000_000n);
    expect(balance?.pendingIn).toBe(0n);
    expect(balance?.pendingOut).toBe(0n);
    expect(balance?.locked).toBe(false);
    expect(balance?.sequence).toBeGreaterThan(0n);
    expect(balance?.updatedAt?.seconds).toBeGreaterThan(0n);
  },

  async getMany(ctx) {
    const id = await funded(ctx, "acct", 70n, "USD");
    await ctx.ledger.postTransfer({ idempotencyKey: `${id}-vc`, debitAccountId: "@world", creditAccountId: id, asset: "VC", amount: 3n });
    const { balances } = await ctx.ledger.getMany({ accountId: id });
    expect(balances.map((b) => [b.asset, b.scale, b.posted])).toEqual([
      ["USD", 6, 70n],
      ["VC", 0, 3n],
    ]);
  },

  async listTransactions(ctx) {
    const id = await funded(ctx, "acct", 0n);
    for (const amount of [1n, 2n, 3n]) {
      await ctx.ledger.postTransfer({ idempotencyKey: `${id}-${amount}`, debitAccountId: "@world", creditAccountId: id, asset: "USD", amount });
    }
    const first = await ctx.ledger.listTransactions({ accountId: id, pageSize: 2 });
    expect(first.transactions.map((t) => t.amount)).toEqual([3n, 2n]);
    expect(first.nextPageToken).not.toBe("");
    const second = await ctx.ledger.listTransactions({ accountId: id, pageSize: 2, pageToken: first.nextPageToken });
    expect(second.transactions.map((t) => t.amount)).toEqual([1n]);
    expect(second.nextPageToken).toBe("");
    const all = await allTransactions(ctx.ledger, id);
    expect(all.map((t) => t.balanceAfter)).toEqual([6n, 3n, 1n]);
    expect(all.every((t) => t.counterpartyAccountId === "@world" && t.status === TransferStatus.POSTED)).toBe(true);
    expect(all.map((t) => t.id)).toEqual(all.map((t) => t.sequence.toString()));
  },

  async watchBalance(ctx) {
    const id = await funded(ctx, "acct", 100n);
    const abort = new AbortController();
    const it = ctx.ledger.watchBalance({ accountId: id, asset: "USD" }, { signal: abort.signal })[Symbol.asyncIterator]();
    try {
      const first = await it.next();
      if (first.done === true) throw new Error("the watch ended before its snapshot");
      const snap = (first.value as WatchBalanceResponse).event;
      expect(snap.case).toBe("snapshot");
      if (snap.case !== "snapshot") return;
      expect(snap.value.balances.map((b) => [b.asset, b.posted])).toEqual([["USD", 100n]]);
      // The snapshot arrived, so the watcher is subscribed: this credit must follow it.
      const { transfer } = await ctx.ledger.postTransfer({
        idempotencyKey: `${id}-w`,
        debitAccountId: "@world",
        creditAccountId: id,
        asset: "USD",
        amount: 7n,
      });
      const next = await it.next();
      if (next.done === true) throw new Error("the watch ended before the change");
      const change = (next.value as WatchBalanceResponse).event;
      expect(change.case).toBe("change");
      if (change.case !== "change") return;
      expect(change.value.kind).toBe(BalanceChangeKind.CREDIT);
      expect(change.value.delta).toBe(7n);
      expect(change.value.balance?.posted).toBe(107n);
      expect(change.value.transaction?.transferId).toBe(transfer!.id);
      expect(change.value.sequence).toBeGreaterThan(snap.value.sequence);
    } finally {
      abort.abort();
      await it.return?.().catch(() => undefined);
    }
  },

  async lockBalance(ctx) {
    const id = await funded(ctx, "acct", 10n);
    const { account } = await ctx.ledger.lockBalance({ accountId: id });
    expect(account?.locked).toBe(true);
    expect(account?.lockedAt?.seconds).toBeGreaterThan(0n);
    const { balance } = await ctx.ledger.getBalance({ accountId: id, asset: "USD" });
    expect(balance?.locked).toBe(true);
  },

  async unlockBalance(ctx) {
    const id = await funded(ctx, "acct", 10n);
    await ctx.ledger.lockBalance({ accountId: id });
    const { account } = await ctx.ledger.unlockBalance({ accountId: id });
    expect(account?.locked).toBe(false);
    expect(account?.lockedAt).toBeUndefined();
    expect((await ctx.ledger.getAccount({ id })).account?.locked).toBe(false);
  },
};

const adminCases: Record<keyof typeof AdminService.method, Case> = {
  async createTenant(ctx) {
    const tenantId = `${ctx.p}-tenant`;
    const res = await ctx.admin.createTenant({ id: tenantId, name: "Coverage" });
    expect(res.tenant?.id).toBe(tenantId);
    expect(res.tenant?.name).toBe("Coverage");
    expect(res.adminKey?.tenantId).toBe(tenantId);
    expect(res.adminKey?.scope).toBe(KeyScope.TENANT_ADMIN);
    expect(res.adminKey?.operator).toBe(false);
    expect(res.adminKeySecret).toMatch(/^tly_k[0-9a-z]{20}_[0-9a-z]{32}$/);
    // The new key works, and sees only the new tenant's system account.
    const { accounts } = await ctx.ledgerWith(res.adminKeySecret).listAccounts({});
    expect(accounts.map((a) => a.id)).toEqual(["@world"]);
  },

  async createApiKey(ctx) {
    const own = await funded(ctx, "own", 55n);
    const other = await funded(ctx, "other", 1n);
    const res = await ctx.admin.createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: own, label: "reader" });
    expect(res.key?.scope).toBe(KeyScope.ACCOUNT_READ);
    expect(res.key?.accountId).toBe(own);
    expect(res.key?.label).toBe("reader");
    expect(res.secret).toMatch(/^tly_/);
    const reader = ctx.ledgerWith(res.secret);
    expect((await reader.getBalance({ accountId: own, asset: "USD" })).balance?.posted).toBe(55n);
    await expectRefused(reader.getBalance({ accountId: other, asset: "USD" }), Code.NotFound, "account_not_found");
  },

  async revokeApiKey(ctx) {
    const issued = await ctx.admin.createApiKey({ scope: KeyScope.TENANT_ADMIN, label: "temp" });
    const user = ctx.ledgerWith(issued.secret);
    await user.listAssets({});
    const { key } = await ctx.admin.revokeApiKey({ id: issued.key!.id });
    expect(key?.id).toBe(issued.key!.id);
    expect(key?.revokedAt?.seconds).toBeGreaterThan(0n);
    await expectRefused(user.listAssets({}), Code.Unauthenticated, "invalid_api_key");
  },

  async createCredential(ctx) {
    // $1.50 in the default micro-USD: 150 cents through the 3PLGuys dialect.
    const own = await funded(ctx, "tpg", 1_500_000n);
    const res = await ctx.admin.createCredential({ kind: "3plguys_api_key", accountId: own, scopes: ["invoices"], label: "3pl" });
    expect(res.credential?.kind).toBe("3plguys_api_key");
    expect(res.credential?.accountId).toBe(own);
    expect(res.credential?.scopes).toEqual(["invoices"]);
    expect(res.credential?.label).toBe("3pl");
    expect(res.credential?.createdAt?.seconds).toBeGreaterThan(0n);
    expect(res.credential?.revokedAt).toBeUndefined();
    expect(res.secret).toBe(`3pg_${res.credential!.id}_${res.secret.slice(-40)}`);
    const r = await fetch(`${server.url}/v0/balance`, { headers: { authorization: `Bearer ${res.secret}` } });
    expect([r.status, await r.text()]).toEqual([200, '{"balance":150,"currency":"USD"}']);
  },

  async revokeCredential(ctx) {
    const own = await funded(ctx, "tpg-rev", 20_000n);
    const issued = await ctx.admin.createCredential({ kind: "3plguys_api_key", accountId: own, scopes: ["invoices"] });
    const balance = () => fetch(`${server.url}/v0/balance`, { headers: { authorization: `Bearer ${issued.secret}` } }).then(async (r) => [r.status, await r.text()]);
    expect(await balance()).toEqual([200, '{"balance":2,"currency":"USD"}']);
    const { credential } = await ctx.admin.revokeCredential({ kind: "3plguys_api_key", id: issued.credential!.id });
    expect(credential?.id).toBe(issued.credential!.id);
    expect(credential?.revokedAt?.seconds).toBeGreaterThan(0n);
    expect(await balance()).toEqual([401, '{"message":"Invalid or revoked API key","error":"Unauthorized","statusCode":401}']);
    // Revoking again keeps the first revocation.
    const again = await ctx.admin.revokeCredential({ kind: "3plguys_api_key", id: issued.credential!.id });
    expect(again.credential?.revokedAt).toEqual(credential?.revokedAt);
  },

  async verify(ctx) {
    await funded(ctx, "acct", 10n);
    const res = await ctx.admin.verify({});
    expect(res.ok).toBe(true);
    expect(res.discrepancies).toEqual([]);
    expect(res.accountsChecked).toBeGreaterThan(0n);
    expect(res.balancesChecked).toBeGreaterThan(0n);
    expect(res.entriesChecked).toBeGreaterThan(0n);
  },
};

/** A segment covering now (the server's real clock) for long enough. */
const LIVE = { startingAt: timestampFromMicros(us("2020-01-01T00:00:00Z")), endingBefore: timestampFromMicros(us("2100-01-01T00:00:00Z")) };
/** A service period inside LIVE and before any test's clock, for RecordUsage (a rollover at now then finds no later deduction). */
const SEPTEMBER = { startingAt: timestampFromMicros(us("2024-09-01T00:00:00Z")), endingBefore: timestampFromMicros(us("2024-10-01T00:00:00Z")) };
function us(iso: string): bigint {
  return BigInt(Date.parse(iso)) * 1000n;
}

/** A customer (an account) and a credit of `amount` on it, live now. */
async function liveCredit(ctx: Ctx, amount: bigint): Promise<{ cust: string; credit: CreditBalanceMsg }> {
  const cust = await funded(ctx, "cust", 0n);
  const { credit } = await ctx.credits.createCredit({
    balance: { customerId: cust, name: "promo", priority: 1n, product: { id: "p", name: "P" }, scheduleItems: [{ amount, ...LIVE }] },
  });
  return { cust, credit: credit! };
}

// 2^53 + 1: int64s that a float would not carry, on every protocol.
const BIG = 2n ** 53n + 1n;

const creditCases: Record<keyof typeof CreditService.method, Case> = {
  async createCommit(ctx) {
    const cust = await funded(ctx, "cust", 0n);
    const { commit } = await ctx.credits.createCommit({
      type: "PREPAID",
      balance: { customerId: cust, name: "c", priority: 7n, product: { id: "p", name: "P" }, scheduleItems: [{ amount: BIG, ...LIVE }], customFields: { k: "v" } },
    });
    expect([commit?.type, commit?.customerId, commit?.priority, commit?.product?.name, commit?.customFields]).toEqual(["PREPAID", cust, 7n, "P", { k: "v" }]);
    expect(commit?.accessSchedule?.scheduleItems.map((s) => s.amount)).toEqual([BIG]);
    expect(commit?.accessSchedule?.creditType?.name).toBe("USD (cents)");
  },

  async createCredit(ctx) {
    const { cust, credit } = await liveCredit(ctx, BIG);
    expect([credit.type, credit.customerId, credit.id]).toEqual(["CREDIT", cust, expect.stringMatching(/^cred_/)]);
    expect(credit.accessSchedule?.scheduleItems[0]?.amount).toBe(BIG);
  },

  async archiveBalance(ctx) {
    const { cust, credit } = await liveCredit(ctx, 10n);
    const { balance } = await ctx.credits.archiveBalance({ id: credit.id });
    expect(balance?.archivedAt?.seconds).toBeGreaterThan(0n);
    expect((await ctx.credits.listBalances({ customerId: cust })).balances).toEqual([]);
  },

  async addManualLedgerEntry(ctx) {
    const { credit } = await liveCredit(ctx, 10n);
    const { entry } = await ctx.credits.addManualLedgerEntry({ id: credit.id, segmentId: credit.accessSchedule!.scheduleItems[0]!.id, amount: -BIG, reason: "correction" });
    expect([entry?.type, entry?.amount, entry?.reason]).toEqual(["CREDIT_MANUAL", -BIG, "correction"]);
  },

  async recordUsage(ctx) {
    const { cust, credit } = await liveCredit(ctx, BIG);
    // September 2024's usage: the service period is part of the request, so a retry is the same request.
    const usage = { usageId: `${ctx.p}-u`, customerId: cust, productId: "p", amount: BIG + 5n, ...SEPTEMBER };
    const r = await ctx.credits.recordUsage(usage);
    expect([r.draws.map((d) => [d.balanceId, d.amount]), r.uncovered, r.replayed]).toEqual([[[credit.id, BIG]], 5n, false]);
    const again = await ctx.credits.recordUsage(usage);
    expect(again.replayed).toBe(true);
  },

  async listBalances(ctx) {
    const { cust, credit } = await liveCredit(ctx, BIG);
    const { balances, nextPageToken } = await ctx.credits.listBalances({ customerId: cust, includeBalance: true, includeLedgers: true });
    expect(nextPageToken).toBe("");
    expect(balances.map((b) => [b.id, b.balance])).toEqual([[credit.id, BIG]]);
    expect(balances[0]!.ledger.map((e) => [e.type, e.amount])).toEqual([["CREDIT_SEGMENT_START", BIG]]);
  },

  async getNetBalance(ctx) {
    const { cust } = await liveCredit(ctx, BIG);
    await ctx.credits.createCommit({ type: "PREPAID", balance: { customerId: cust, product: { id: "p", name: "P" }, scheduleItems: [{ amount: 2n, ...LIVE }] } });
    expect(await ctx.credits.getNetBalance({ customerId: cust })).toMatchObject({ balance: BIG + 2n, creditTypeId: "USD" });
    expect((await ctx.credits.getNetBalance({ customerId: cust, filters: [{ balanceTypes: ["CREDIT"] }] })).balance).toBe(BIG);
  },

  async rolloverBalance(ctx) {
    const { cust, credit } = await liveCredit(ctx, BIG);
    await ctx.credits.recordUsage({ usageId: `${ctx.p}-u`, customerId: cust, productId: "p", amount: 1n, ...SEPTEMBER });
    const r = await ctx.credits.rolloverBalance({ id: credit.id, endingBefore: LIVE.endingBefore, idempotencyKey: `${ctx.p}-k` });
    expect([r.amount, r.replayed, r.rolloverEntries.map((e) => [e.type, e.amount])]).toEqual([BIG - 1n, false, [["CREDIT_ROLLOVER", -(BIG - 1n)]]]);
    expect([r.balance?.type, r.balance?.customerId, r.balance?.accessSchedule?.scheduleItems[0]?.amount]).toEqual(["CREDIT", cust, BIG - 1n]);
    const again = await ctx.credits.rolloverBalance({ id: credit.id, endingBefore: LIVE.endingBefore, idempotencyKey: `${ctx.p}-k` });
    expect([again.replayed, again.balance?.id]).toEqual([true, r.balance?.id]);
  },

  async creditBackUsage(ctx) {
    const { cust, credit } = await liveCredit(ctx, BIG);
    await ctx.credits.recordUsage({ usageId: `${ctx.p}-u`, customerId: cust, productId: "p", amount: BIG, invoiceId: "inv", ...SEPTEMBER });
    const r = await ctx.credits.creditBackUsage({ usageId: `${ctx.p}-u`, customerId: cust, amount: BIG - 1n, idempotencyKey: `${ctx.p}-k` });
    expect([r.credits.map((c) => [c.balanceId, c.amount]), r.uncredited, r.replayed]).toEqual([[[credit.id, BIG - 1n]], 1n, false]);
    const { balances } = await ctx.credits.listBalances({ customerId: cust, includeBalance: true, includeLedgers: true });
    expect(balances[0]!.balance).toBe(BIG - 1n);
    expect(balances[0]!.ledger.at(-1)).toMatchObject({ type: "CREDIT_CREDITED", amount: BIG - 1n, invoiceId: "inv" });
  },
};

const SERVICES: readonly { service: DescService; cases: Record<string, Case> }[] = [
  { service: LedgerService, cases: ledgerCases },
  { service: AdminService, cases: adminCases },
  { service: CreditService, cases: creditCases },
];

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

function ctxFor(protocol: Protocol, name: string, ledger?: LedgerClient): Ctx {
  return {
    protocol,
    ledger: ledger ?? clientFor(LedgerService, server.url, protocol, server.adminKey),
    admin: clientFor(AdminService, server.url, protocol, server.adminKey),
    credits: clientFor(CreditService, server.url, protocol, server.adminKey),
    p: uniq(`${protocol}-${name}`),
    ledgerWith: (key) => clientFor(LedgerService, server.url, protocol, key),
  };
}

const ALL_METHODS: readonly DescMethod[] = SERVICES.flatMap((s) => s.service.methods);

describe("every RPC has a case", () => {
  it.each(SERVICES.map((s) => [s.service.typeName, s] as const))("%s", (_name, { service, cases }) => {
    const methods = service.methods.map((m) => m.localName).sort();
    expect(methods.length).toBeGreaterThan(0);
    // Both directions: no method without a case, no case for a method that is gone.
    expect(Object.keys(cases).sort()).toEqual(methods);
  });
});

describe.each(PROTOCOLS)("over %s", (protocol) => {
  it.each(ALL_METHODS.map((m) => [`${m.parent.name}.${m.name}`, m] as const))("%s", async (_label, method) => {
    const cases = SERVICES.find((s) => s.service.typeName === method.parent.typeName)!.cases;
    const run = cases[method.localName];
    expect(run, `no case for ${method.parent.typeName}.${method.name}`).toBeDefined();
    await run!(ctxFor(protocol, method.localName));
  });
});

/** Sends one gRPC frame over raw HTTP/2 and returns the status and grpc-status it got. */
async function rawGrpc(url: string, key: string, path: string, payload: Uint8Array): Promise<{ status: number; grpcStatus: string | undefined }> {
  const session = connect(url);
  try {
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      authorization: `Bearer ${key}`,
    });
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, payload.length]), payload]);
    req.end(frame);
    let status = 0;
    let grpcStatus: string | undefined;
    req.on("response", (h) => {
      status = Number(h[":status"]);
      grpcStatus ??= h["grpc-status"] as string | undefined;
    });
    req.on("trailers", (t) => {
      grpcStatus ??= t["grpc-status"] as string | undefined;
    });
    req.resume();
    await new Promise((r) => req.on("close", r));
    return { status, grpcStatus };
  } finally {
    session.close();
  }
}

describe("malformed protobuf", () => {
  // Bytes that are not a message (a truncated varint): a client error, never an internal one.
  const garbage = new Uint8Array([0x08, 0xff, 0xff, 0xff]);
  const path = "/tally.ledger.v1.LedgerService/GetBalance";

  it("is invalid_argument over Connect binary POST", async () => {
    const res = await fetch(`${server.url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.adminKey}`, "content-type": "application/proto" },
      body: garbage,
    });
    const body = (await res.json()) as { code?: string };
    expect([res.status, body.code]).toEqual([400, "invalid_argument"]);
  });

  it("is INVALID_ARGUMENT (3) over gRPC", async () => {
    const r = await rawGrpc(server.url, server.adminKey, path, garbage);
    expect(r.grpcStatus).toBe(String(Code.InvalidArgument));
  });
});

/**
 * Connect GET: a client with useHttpGet sends NO_SIDE_EFFECTS unary methods as
 * GET requests (cacheable). Every such method is run through its case with that
 * client, and the HTTP method actually sent is observed from Node's http client.
 */
describe.each([
  ["json", false],
  ["binary", true],
] as const)("Connect GET (%s)", (_enc, useBinaryFormat) => {
  const readOnly = ALL_METHODS.filter(
    (m) => m.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS && m.methodKind === "unary",
  );

  it("covers at least the read RPCs", () => {
    expect(readOnly.map((m) => m.name)).toEqual(
      expect.arrayContaining(["GetAccount", "ListAccounts", "ListAssets", "GetTransfer", "GetBalance", "GetMany", "ListTransactions", "Verify"]),
    );
  });

  it.each(readOnly.map((m) => [`${m.parent.name}.${m.name}`, m] as const))("%s", async (_label, method) => {
    const requests: { method: string; path: string }[] = [];
    const onStart = (msg: unknown) => {
      const req = (msg as { request: ClientRequest }).request;
      requests.push({ method: req.method, path: req.path });
    };
    subscribe("http.client.request.start", onStart);
    try {
      const transport = createConnectTransport({
        baseUrl: server.url,
        httpVersion: "1.1",
        useBinaryFormat,
        useHttpGet: true,
        interceptors: [bearer(server.adminKey)],
      });
      const ctx = ctxFor("connect-json", `get-${method.localName}`, createClient(LedgerService, transport));
      const withAdmin: Ctx = { ...ctx, admin: createClient(AdminService, transport), credits: createClient(CreditService, transport) };
      const cases = SERVICES.find((s) => s.service.typeName === method.parent.typeName)!.cases;
      await cases[method.localName]!(withAdmin);
    } finally {
      unsubscribe("http.client.request.start", onStart);
    }
    const path = `/${method.parent.typeName}/${method.name}`;
    const calls = requests.filter((r) => r.path.split("?")[0] === path);
    expect(calls.length).toBeGreaterThan(0);
    for (const c of calls) {
      expect(c.method).toBe("GET");
      expect(c.path).toContain(`encoding=${useBinaryFormat ? "proto" : "json"}`);
      expect(c.path).toContain("message=");
    }
    // Writes made by the same client still go out as POST.
    for (const r of requests) {
      const name = r.path.split("?")[0]!.split("/").pop()!;
      const m = ALL_METHODS.find((x) => x.name === name);
      if (m && m.idempotency !== MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS) expect(r.method).toBe("POST");
    }
  });

  it("a GET with a tampered message is refused, not guessed", async () => {
    // The same GET a client builds, with a body that is not a valid message.
    const url = `${server.url}/tally.ledger.v1.LedgerService/GetBalance?connect=v1&encoding=${useBinaryFormat ? "proto" : "json"}&message=${
      useBinaryFormat ? "%FF%FF%FF" : encodeURIComponent('{"accountId":')
    }`;
    const res = await fetch(url, { headers: { authorization: `Bearer ${server.adminKey}` } });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code?: string };
    expect(body.code).toBe("invalid_argument");
  });
});
