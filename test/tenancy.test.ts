import { createClient, Code } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService, KeyScope } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService, TransferStatus } from "../gen/tally/ledger/v1/ledger_pb.js";
import { CreditService } from "../gen/tally/credits/v1/credits_pb.js";
import { timestampFromMicros } from "../src/services/convert.js";
import { failureOf, firstMessage, safeJson, shapeOf } from "./support/rpc-expect.js";
import type { RpcFailure } from "./support/rpc-expect.js";
import { seededRandom } from "./support/seeded-random.js";
import { PROTOCOLS, clientFor, startTestServer, transportFor } from "./support/server.js";
import { WatchStream } from "./support/watch-stream.js";
import { secondFrom } from "./support/ledger-kit.js";
import type { Protocol, TestServer } from "./support/server.js";

/**
 * T11: tenant isolation on every method. Tenant A is the default (operator)
 * tenant; B is created through AdminService. A's admin key presented with B's
 * ids must look exactly like a nonexistent id, and must leave B untouched.
 */

type Ledger = Client<typeof LedgerService>;
type Admin = Client<typeof AdminService>;

type Credits = Client<typeof CreditService>;

const SERVICES: readonly DescService[] = [LedgerService, AdminService, CreditService];
const B_TENANT = "tenant-b";
const rnd = seededRandom();

let server: TestServer;
let bKey: string;

/** B's objects the probes aim at. */
const b = {
  transferId: "",
  idemKey: "b-idem-posted",
  readKeyId: "",
  readKeySecret: "",
  ltToken: "",
  laToken: "",
  pendingForPost: {} as Record<string, string>,
  pendingForVoid: {} as Record<string, string>,
  /** B's credit on its customer b-cust, and a usage B drew from it. */
  creditId: "",
  segmentId: "",
  usageId: "b-usage",
};
/** A segment live now (the server's real clock) for long enough. */
const LIVE = {
  startingAt: timestampFromMicros(BigInt(Date.parse("2020-01-01T00:00:00Z")) * 1000n),
  endingBefore: timestampFromMicros(BigInt(Date.parse("2100-01-01T00:00:00Z")) * 1000n),
};
/** A's own pending transfer, for the account-key write probes. */
let aPending = "";

const ledgerAs = (key: string | undefined, p: Protocol = "connect-binary"): Ledger => clientFor(LedgerService, server.url, p, key);
const adminAs = (key: string | undefined, p: Protocol = "connect-binary"): Admin => clientFor(AdminService, server.url, p, key);
const creditsAs = (key: string | undefined, p: Protocol = "connect-binary"): Credits => clientFor(CreditService, server.url, p, key);
/** A credit of A's on A's account a-1, live now. */
async function aCredit(p: Protocol): Promise<string> {
  const { credit } = await creditsAs(server.adminKey, p).createCredit({ balance: { customerId: "a-1", product: { id: "p", name: "P" }, scheduleItems: [{ amount: 10n, ...LIVE }] } });
  return credit!.id;
}

const ALNUM = "0123456789abcdefghjkmnpqrstvwxyz";
/** A random id of the same shape as a real one, that nothing in the database has. */
function nonexistent(prefix: string, n = 20): string {
  let s = prefix;
  for (let i = 0; i < n; i++) s += ALNUM[rnd.int(0, ALNUM.length - 1)];
  return s;
}

/**
 * Calls `call` with B's real id and with a random nonexistent one (of the same
 * shape) and requires both to fail identically: same code, reason, metadata and
 * message once the id itself is blanked out. That is what makes B's ids useless
 * as an existence oracle.
 */
async function expectLikeNonexistent(call: (id: string) => Promise<unknown>, foreignId: string, randomId: string, code = Code.NotFound): Promise<RpcFailure> {
  const foreign = await failureOf(() => call(foreignId));
  const random = await failureOf(() => call(randomId));
  expect(foreign.codeName, `foreign id ${foreignId}: ${foreign.message}`).toBe(Code[code]);
  expect(shapeOf(foreign, [foreignId])).toEqual(shapeOf(random, [randomId]));
  return foreign;
}

/** Everything B can see of itself, to compare before and after the probes. */
async function snapshotOfB() {
  const c = ledgerAs(bKey);
  const accounts = (await c.listAccounts({ pageSize: 1000 })).accounts;
  const out: Record<string, unknown> = {
    accounts: accounts.map((x) => ({ id: x.id, metadata: x.metadata, locked: x.locked, overdraft: x.overdraftLimit })),
    assets: (await c.listAssets({})).assets.map((x) => `${x.code}:${x.scale}`),
  };
  for (const x of accounts) {
    out[`balances ${x.id}`] = (await c.getMany({ accountId: x.id })).balances.map((bal) => [bal.asset, bal.posted, bal.pendingIn, bal.pendingOut, bal.sequence]);
    out[`journal ${x.id}`] = (await c.listTransactions({ accountId: x.id, pageSize: 1000 })).transactions.map((t) => [t.sequence, t.amount, t.transferId]);
  }
  for (const id of [b.transferId, ...Object.values(b.pendingForPost), ...Object.values(b.pendingForVoid)]) {
    const t = (await c.getTransfer({ id })).transfer!;
    out[`transfer ${id}`] = [t.status, t.postedAmount, t.sequence];
  }
  const credits = await creditsAs(bKey).listBalances({ customerId: "b-cust", includeLedgers: true, includeBalance: true, includeArchived: true, includeContractBalances: true });
  out["credits b-cust"] = credits.balances.map((x) => [x.id, x.archivedAt, x.balance, x.ledger.map((e) => [e.type, e.amount, e.timestamp])]);
  const v = await adminAs(bKey).verify({});
  out["verify"] = [v.ok, v.accountsChecked, v.balancesChecked, v.entriesChecked];
  return out;
}

let bBefore: Record<string, unknown>;

beforeAll(async () => {
  console.log(`tenancy seed=${rnd.seed}`);
  server = await startTestServer();
  const created = await adminAs(server.adminKey).createTenant({ id: B_TENANT, name: "Tenant B" });
  bKey = created.adminKeySecret;
  expect(created.adminKey?.operator).toBe(false);

  const a = ledgerAs(server.adminKey);
  for (const id of ["a-1", "a-2", "shared"]) await a.createAccount({ id, metadata: { owner: "a" } });
  await a.postTransfer({ idempotencyKey: "a-fund", debitAccountId: "@world", creditAccountId: "a-1", asset: "USD", amount: 1_000_000n });
  await a.postTransfer({ idempotencyKey: "a-shared", debitAccountId: "@world", creditAccountId: "shared", asset: "USD", amount: 111n });
  aPending = (await a.postTransfer({ idempotencyKey: "a-pending", debitAccountId: "a-1", creditAccountId: "a-2", asset: "USD", amount: 5n, pending: true })).transfer!.id;

  const bc = ledgerAs(bKey);
  // "shared" exists in both tenants: only the tenant tells them apart.
  for (const id of ["b-1", "b-2", "b-locked", "shared", ...PROTOCOLS.map((p) => `b-fresh-${p}`)]) {
    await bc.createAccount({ id, metadata: { owner: "b" }, overdraftLimit: 7n });
  }
  await bc.lockBalance({ accountId: "b-locked" });
  await bc.defineAsset({ code: "BONLY", scale: 2 });
  for (const [i] of PROTOCOLS.entries()) await bc.defineAsset({ code: `BZ${i}`, scale: 2 });
  const posted = await bc.postTransfer({ idempotencyKey: b.idemKey, debitAccountId: "@world", creditAccountId: "b-1", asset: "BONLY", amount: 10_000n });
  b.transferId = posted.transfer!.id;
  for (let i = 0; i < 3; i++) {
    await bc.postTransfer({ idempotencyKey: `b-more-${i}`, debitAccountId: "@world", creditAccountId: "b-1", asset: "USD", amount: 1000n + BigInt(i) });
  }
  await bc.postTransfer({ idempotencyKey: "b-shared", debitAccountId: "@world", creditAccountId: "shared", asset: "USD", amount: 222n });
  for (const p of PROTOCOLS) {
    // Each protocol's run gets its own B idempotency key, so "A reuses B's key" is always A's first use.
    await bc.postTransfer({ idempotencyKey: `b-idem-${p}`, debitAccountId: "@world", creditAccountId: "b-2", asset: "USD", amount: 3n });
    b.pendingForPost[p] = (await bc.postTransfer({ idempotencyKey: `b-pp-${p}`, debitAccountId: "b-1", creditAccountId: "b-2", asset: "USD", amount: 9n, pending: true })).transfer!.id;
    b.pendingForVoid[p] = (await bc.postTransfer({ idempotencyKey: `b-pv-${p}`, debitAccountId: "b-1", creditAccountId: "b-2", asset: "USD", amount: 8n, pending: true })).transfer!.id;
  }
  // B's commits and credits: a credit, a usage drawn from it, and per protocol a
  // credit-back and a rollover under keys that A then uses as its own.
  await bc.createAccount({ id: "b-cust" });
  const bcr = creditsAs(bKey);
  const { credit } = await bcr.createCredit({ balance: { customerId: "b-cust", product: { id: "p", name: "P" }, scheduleItems: [{ amount: 1000n, ...LIVE }] } });
  b.creditId = credit!.id;
  b.segmentId = credit!.accessSchedule!.scheduleItems[0]!.id;
  await bcr.recordUsage({ usageId: b.usageId, customerId: "b-cust", productId: "p", amount: 100n, ...secondFrom(LIVE.startingAt) });
  for (const p of PROTOCOLS) {
    await bcr.creditBackUsage({ usageId: b.usageId, customerId: "b-cust", amount: 1n, idempotencyKey: `b-cb-${p}` });
    const { credit: rolled } = await bcr.createCredit({ balance: { customerId: "b-cust", product: { id: "p", name: "P" }, scheduleItems: [{ amount: 5n, ...LIVE }] } });
    await bcr.rolloverBalance({ id: rolled!.id, endingBefore: LIVE.endingBefore, idempotencyKey: `b-ro-${p}` });
  }
  const readKey = await adminAs(bKey).createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: "b-1", label: "b reader" });
  b.readKeyId = readKey.key!.id;
  b.readKeySecret = readKey.secret;
  b.ltToken = (await bc.listTransactions({ accountId: "b-1", pageSize: 1 })).nextPageToken;
  b.laToken = (await bc.listAccounts({ pageSize: 1 })).nextPageToken;
  expect(b.ltToken).not.toBe("");
  expect(b.laToken).not.toBe("");
  bBefore = await snapshotOfB();
});

afterAll(async () => {
  await server?.close();
});

/** One cross-tenant case per method, run with A's admin key over one protocol. */
type Case = (p: Protocol) => Promise<void>;

const cases: Record<string, Case> = {
  "tally.ledger.v1.LedgerService.CreateAccount": async (p) => {
    const a = ledgerAs(server.adminKey, p);
    // Ids are per tenant: creating B's id in A must behave like any unused id
    // (success, no already_exists oracle) and create A's own account.
    const id = `b-fresh-${p}`;
    const mine = await a.createAccount({ id, metadata: { owner: "a" } });
    const random = await a.createAccount({ id: nonexistent("fresh-") });
    expect(mine.account?.metadata).toEqual({ owner: "a" });
    expect(mine.account?.overdraftLimit).toBe(random.account?.overdraftLimit);
    expect((await ledgerAs(bKey).getAccount({ id })).account?.metadata).toEqual({ owner: "b" });
    expect((await a.getAccount({ id })).account?.metadata).toEqual({ owner: "a" });
  },

  "tally.ledger.v1.LedgerService.GetAccount": async (p) => {
    const a = ledgerAs(server.adminKey, p);
    await expectLikeNonexistent((id) => a.getAccount({ id }), "b-1", nonexistent("acct-"));
    // The shared id resolves to A's own account, never B's.
    expect((await a.getAccount({ id: "shared" })).account?.metadata).toEqual({ owner: "a" });
  },

  "tally.ledger.v1.LedgerService.ListAccounts": async (p) => {
    const a = ledgerAs(server.adminKey, p);
    const all = (await a.listAccounts({ pageSize: 1000 })).accounts;
    expect(all.filter((x) => x.metadata["owner"] === "b")).toEqual([]);
    expect(all.map((x) => x.id)).not.toContain("b-1");
    // B's page token is refused exactly like a garbage one.
    await expectLikeNonexistent((pageToken) => a.listAccounts({ pageToken }), b.laToken, "bm90LWEtdG9rZW4.AAAA", Code.InvalidArgument);
  },

  "tally.ledger.v1.LedgerService.DefineAsset": async (p) => {
    const a = ledgerAs(server.adminKey, p);
    const i = PROTOCOLS.indexOf(p);
    // B fixed BZ<i> at scale 2; A must be able to fix its own BZ<i> at any scale,
    // exactly as with a code nobody uses (no asset_scale_fixed oracle).
    expect((await a.defineAsset({ code: `BZ${i}`, scale: 4 })).asset).toMatchObject({ code: `BZ${i}`, scale: 4 });
    expect((await a.defineAsset({ code: `RZ${i}`, scale: 4 })).asset).toMatchObject({ code: `RZ${i}`, scale: 4 });
    expect((await ledgerAs(bKey).listAssets({})).assets.find((x) => x.code === `BZ${i}`)?.scale).toBe(2);
  },

  "tally.ledger.v1.LedgerService.ListAssets": async (p) => {
    const a = ledgerAs(server.adminKey, p);
    const codes = (await a.listAssets({})).assets.map((x) => x.code);
    expect(codes).toContain("USD");
    expect(codes).not.toContain("BONLY");
  },

  "tally.ledger.v1.LedgerService.PostTransfer": async (p) => {
    const a = ledgerAs(server.adminKey, p);
    const base = { debitAccountId: "a-1", creditAccountId: "a-2", asset: "USD", amount: 1n };
    // Body id on either side.
    await expectLikeNonexistent((id) => a.postTransfer({ ...base, idempotencyKey: nonexistent("k-"), creditAccountId: id }), "b-1", nonexistent("acct-"));
    await expectLikeNonexistent((id) => a.postTransfer({ ...base, idempotencyKey: nonexistent("k-"), debitAccountId: id }), "b-1", nonexistent("acct-"));
    // Idempotency keys are per tenant: B's key is a fresh key for A, just like a random one.
    const reused = await a.postTransfer({ ...base, idempotencyKey: `b-idem-${p}` });
    const fresh = await a.postTransfer({ ...base, idempotencyKey: nonexistent("k-") });
    expect([reused.replayed, fresh.replayed]).toEqual([false, false]);
    expect(reused.transfer).toMatchObject({ debitAccountId: "a-1", creditAccountId: "a-2", amount: 1n });
  },

  "tally.ledger.v1.LedgerService.PostTransfers": async (p) => {
    const a = ledgerAs(server.adminKey, p);
    const before = (await a.getBalance({ accountId: "a-1", asset: "USD" })).balance;
    const okKey = `mix-ok-${p}`;
    const good = { idempotencyKey: okKey, debitAccountId: "a-1", creditAccountId: "a-2", asset: "USD", amount: 2n };
    const bad = (id: string) => ({ idempotencyKey: `mix-bad-${p}`, debitAccountId: "a-1", creditAccountId: id, asset: "USD", amount: 2n });
    // A batch mixing A's and B's ids fails entirely, in either order.
    await expectLikeNonexistent((id) => a.postTransfers({ transfers: [good, bad(id)] }), "b-2", nonexistent("acct-"));
    await expectLikeNonexistent((id) => a.postTransfers({ transfers: [bad(id), good] }), "b-2", nonexistent("acct-"));
    expect((await a.getBalance({ accountId: "a-1", asset: "USD" })).balance).toEqual(before);
    // Nothing of the batch was kept: its good key is still unused (a different body is not a conflict).
    expect((await a.postTransfer({ ...good, amount: 3n })).replayed).toBe(false);
  },

  "tally.ledger.v1.LedgerService.PostPendingTransfer": async (p) => {
    const a = ledgerAs(server.adminKey, p);
    await expectLikeNonexistent((transferId) => a.postPendingTransfer({ transferId }), b.pendingForPost[p]!, nonexistent("tr_"));
    expect((await ledgerAs(bKey).getTransfer({ id: b.pendingForPost[p]! })).transfer?.status).toBe(TransferStatus.PENDING);
  },

  "tally.ledger.v1.LedgerService.VoidPendingTransfer": async (p) => {
    const a = ledgerAs(server.adminKey, p);
    await expectLikeNonexistent((transferId) => a.voidPendingTransfer({ transferId }), b.pendingForVoid[p]!, nonexistent("tr_"));
    expect((await ledgerAs(bKey).getTransfer({ id: b.pendingForVoid[p]! })).transfer?.status).toBe(TransferStatus.PENDING);
  },

  "tally.ledger.v1.LedgerService.GetTransfer": async (p) => {
    const a = ledgerAs(server.adminKey, p);
    await expectLikeNonexistent((id) => a.getTransfer({ id }), b.transferId, nonexistent("tr_"));
  },

  "tally.ledger.v1.LedgerService.GetBalance": async (p) => {
    const a = ledgerAs(server.adminKey, p);
    await expectLikeNonexistent((accountId) => a.getBalance({ accountId, asset: "USD" }), "b-1", nonexistent("acct-"));
    expect((await a.getBalance({ accountId: "shared", asset: "USD" })).balance?.posted).toBe(111n);
  },

  "tally.ledger.v1.LedgerService.GetMany": async (p) => {
    const a = ledgerAs(server.adminKey, p);
    await expectLikeNonexistent((accountId) => a.getMany({ accountId }), "b-1", nonexistent("acct-"));
    expect((await a.getMany({ accountId: "shared" })).balances.map((x) => [x.asset, x.posted])).toEqual([["USD", 111n]]);
  },

  "tally.ledger.v1.LedgerService.ListTransactions": async (p) => {
    const a = ledgerAs(server.adminKey, p);
    await expectLikeNonexistent((accountId) => a.listTransactions({ accountId }), "b-1", nonexistent("acct-"));
    // B's page token on A's account, and on B's own account id: refused like garbage.
    await expectLikeNonexistent((pageToken) => a.listTransactions({ accountId: "a-1", pageToken }), b.ltToken, "bm90LWEtdG9rZW4.AAAA", Code.InvalidArgument);
    await expectLikeNonexistent((accountId) => a.listTransactions({ accountId, pageToken: b.ltToken }), "b-1", nonexistent("acct-"), Code.InvalidArgument);
    // A's "shared" journal: its funding (111 from @world) and the WatchBalance case's
    // round trips with a-1. B's entries (222 and 1s from @world) must not be there.
    const shared = (await a.listTransactions({ accountId: "shared", pageSize: 1000 })).transactions;
    expect(shared.at(-1)?.amount).toBe(111n);
    expect(shared.filter((t) => !(t.counterpartyAccountId === "a-1" || (t.counterpartyAccountId === "@world" && t.amount === 111n)))).toEqual([]);
  },

  "tally.ledger.v1.LedgerService.WatchBalance": async (p) => {
    const a = ledgerAs(server.adminKey, p);
    await expectLikeNonexistent((accountId) => firstMessage(a.watchBalance({ accountId })), "b-1", nonexistent("acct-"));
    // The stream on the shared id is A's: its snapshot is A's balance, and B's
    // write to its own "shared" never shows up before A's next change.
    const s = new WatchStream(a, { accountId: "shared", asset: "USD" });
    try {
      const snap = await s.next();
      expect(snap.event.case).toBe("snapshot");
      const balances = snap.event.case === "snapshot" ? snap.event.value.balances : [];
      expect(balances.map((x) => x.posted)).toEqual([111n]);
      await ledgerAs(bKey).postTransfer({ idempotencyKey: `b-shared-${p}`, debitAccountId: "@world", creditAccountId: "shared", asset: "USD", amount: 1n });
      const mine = await a.postTransfer({ idempotencyKey: `a-shared-${p}`, debitAccountId: "shared", creditAccountId: "a-1", asset: "USD", amount: 1n });
      const next = await s.next();
      const change = next.event.case === "change" ? next.event.value : undefined;
      expect(change?.transaction?.transferId).toBe(mine.transfer?.id);
      expect(change?.balance?.posted).toBe(110n);
      await a.postTransfer({ idempotencyKey: `a-shared-back-${p}`, debitAccountId: "a-1", creditAccountId: "shared", asset: "USD", amount: 1n });
    } finally {
      s.close();
    }
  },

  "tally.ledger.v1.LedgerService.LockBalance": async (p) => {
    const a = ledgerAs(server.adminKey, p);
    await expectLikeNonexistent((accountId) => a.lockBalance({ accountId }), "b-1", nonexistent("acct-"));
    expect((await ledgerAs(bKey).getAccount({ id: "b-1" })).account?.locked).toBe(false);
  },

  "tally.ledger.v1.LedgerService.UnlockBalance": async (p) => {
    const a = ledgerAs(server.adminKey, p);
    await expectLikeNonexistent((accountId) => a.unlockBalance({ accountId }), "b-locked", nonexistent("acct-"));
    expect((await ledgerAs(bKey).getAccount({ id: "b-locked" })).account?.locked).toBe(true);
  },

  "tally.admin.v1.AdminService.CreateTenant": async (p) => {
    // Tenant ids are one global namespace that only operators see, so the
    // cross-tenant question here is escalation: B (not an operator) may not
    // create tenants, and the operator cannot take over B by re-creating it.
    const fromB = await failureOf(() => adminAs(bKey, p).createTenant({ id: nonexistent("tn-") }));
    expect([fromB.codeName, fromB.reason]).toEqual([Code[Code.PermissionDenied], "operator_key_required"]);
    const again = await failureOf(() => adminAs(server.adminKey, p).createTenant({ id: B_TENANT }));
    expect([again.codeName, again.reason]).toEqual([Code[Code.AlreadyExists], "tenant_exists"]);
    expect((await ledgerAs(bKey, p).getAccount({ id: "b-1" })).account?.metadata).toEqual({ owner: "b" });
  },

  "tally.admin.v1.AdminService.CreateApiKey": async (p) => {
    const admin = adminAs(server.adminKey, p);
    await expectLikeNonexistent((accountId) => admin.createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId }), "b-1", nonexistent("acct-"));
  },

  "tally.admin.v1.AdminService.RevokeApiKey": async (p) => {
    const admin = adminAs(server.adminKey, p);
    await expectLikeNonexistent((id) => admin.revokeApiKey({ id }), b.readKeyId, nonexistent("k"));
    // B's key still works.
    expect((await ledgerAs(b.readKeySecret, p).getBalance({ accountId: "b-1", asset: "USD" })).balance?.accountId).toBe("b-1");
  },

  "tally.admin.v1.AdminService.CreateCredential": async (p) => {
    const admin = adminAs(server.adminKey, p);
    await expectLikeNonexistent(
      (accountId) => admin.createCredential({ kind: "3plguys_api_key", accountId, scopes: ["invoices"] }),
      "b-1",
      nonexistent("acct-"),
    );
  },

  "tally.admin.v1.AdminService.RevokeCredential": async (p) => {
    // B's own key, bound to B's account, works before and after A's attempt.
    const issued = await adminAs(bKey).createCredential({ kind: "3plguys_api_key", accountId: "b-1", scopes: ["invoices"] });
    const balance = () => fetch(`${server.url}/v0/balance`, { headers: { authorization: `Bearer ${issued.secret}` } }).then((r) => r.status);
    expect(await balance()).toBe(200);
    const admin = adminAs(server.adminKey, p);
    await expectLikeNonexistent((id) => admin.revokeCredential({ kind: "3plguys_api_key", id }), issued.credential!.id, nonexistent("", 20));
    expect(await balance()).toBe(200);
  },

  "tally.credits.v1.CreditService.CreateCommit": async (p) => {
    const a = creditsAs(server.adminKey, p);
    const input = (customerId: string) => ({ customerId, product: { id: "p", name: "P" }, scheduleItems: [{ amount: 1n, ...LIVE }] });
    await expectLikeNonexistent((id) => a.createCommit({ type: "PREPAID", balance: input(id) }), "b-cust", nonexistent("cust-"));
  },

  "tally.credits.v1.CreditService.CreateCredit": async (p) => {
    const a = creditsAs(server.adminKey, p);
    const input = (customerId: string) => ({ customerId, product: { id: "p", name: "P" }, scheduleItems: [{ amount: 1n, ...LIVE }] });
    await expectLikeNonexistent((id) => a.createCredit({ balance: input(id) }), "b-cust", nonexistent("cust-"));
  },

  "tally.credits.v1.CreditService.ArchiveBalance": async (p) => {
    const a = creditsAs(server.adminKey, p);
    await expectLikeNonexistent((id) => a.archiveBalance({ id }), b.creditId, nonexistent("cred_"));
  },

  "tally.credits.v1.CreditService.AddManualLedgerEntry": async (p) => {
    const a = creditsAs(server.adminKey, p);
    await expectLikeNonexistent((id) => a.addManualLedgerEntry({ id, segmentId: b.segmentId, amount: 5n, reason: "x" }), b.creditId, nonexistent("cred_"));
  },

  "tally.credits.v1.CreditService.RecordUsage": async (p) => {
    const a = creditsAs(server.adminKey, p);
    await expectLikeNonexistent((id) => a.recordUsage({ usageId: nonexistent("u-"), customerId: id, productId: "p", amount: 1n, ...secondFrom(LIVE.startingAt) }), "b-cust", nonexistent("cust-"));
  },

  "tally.credits.v1.CreditService.ListBalances": async (p) => {
    const a = creditsAs(server.adminKey, p);
    await expectLikeNonexistent((id) => a.listBalances({ customerId: id }), "b-cust", nonexistent("cust-"));
    // B's balance id under A's own customer: an empty listing, as for an id nobody has.
    expect((await a.listBalances({ customerId: "a-1", id: b.creditId })).balances).toEqual([]);
    expect((await a.listBalances({ customerId: "a-1", id: nonexistent("cred_") })).balances).toEqual([]);
  },

  "tally.credits.v1.CreditService.GetNetBalance": async (p) => {
    const a = creditsAs(server.adminKey, p);
    await expectLikeNonexistent((id) => a.getNetBalance({ customerId: id }), "b-cust", nonexistent("cust-"));
  },

  "tally.credits.v1.CreditService.RolloverBalance": async (p) => {
    const a = creditsAs(server.adminKey, p);
    await expectLikeNonexistent((id) => a.rolloverBalance({ id, endingBefore: LIVE.endingBefore, idempotencyKey: nonexistent("k-") }), b.creditId, nonexistent("cred_"));
    // Keys are per tenant: B's key is a fresh key for A, on A's own balance.
    const mine = await aCredit(p);
    const r = await a.rolloverBalance({ id: mine, endingBefore: LIVE.endingBefore, idempotencyKey: `b-ro-${p}` });
    expect([r.replayed, r.amount, r.balance?.customerId]).toEqual([false, 10n, "a-1"]);
  },

  "tally.credits.v1.CreditService.CreditBackUsage": async (p) => {
    const a = creditsAs(server.adminKey, p);
    const req = (customerId: string, usageId: string, idempotencyKey = nonexistent("k-")) => ({ usageId, customerId, amount: 1n, idempotencyKey });
    await expectLikeNonexistent((id) => a.creditBackUsage(req(id, b.usageId)), "b-cust", nonexistent("cust-"));
    // B's usage id with A's own customer: like a usage that does not exist, even under B's own key.
    await expectLikeNonexistent((id) => a.creditBackUsage(req("a-1", id)), b.usageId, nonexistent("u-"));
    await expectLikeNonexistent((id) => a.creditBackUsage(req("a-1", id, `b-cb-${p}`)), b.usageId, nonexistent("u-"));
  },

  "tally.admin.v1.AdminService.Verify": async (p) => {
    const admin = adminAs(server.adminKey, p);
    const before = await admin.verify({});
    await ledgerAs(bKey).postTransfer({ idempotencyKey: `b-verify-${p}`, debitAccountId: "@world", creditAccountId: "b-2", asset: "USD", amount: 1n });
    const after = await admin.verify({});
    expect(after.ok).toBe(true);
    // B's new entries are not A's to check.
    expect([after.accountsChecked, after.balancesChecked, after.entriesChecked]).toEqual([before.accountsChecked, before.balancesChecked, before.entriesChecked]);
    expect(after.discrepancies.filter((d) => d.accountId.startsWith("b-"))).toEqual([]);
  },
};

const METHODS = SERVICES.flatMap((s) => s.methods.map((m) => ({ service: s, method: m, name: `${s.typeName}.${m.name}` })));

/** Calls any method by descriptor with a loosely typed request; a stream is read up to its first message. */
function callMethod(service: DescService, method: DescMethod, key: string | undefined, p: Protocol, request: object): Promise<unknown> {
  const client = createClient(service, transportFor(server.url, p, key)) as unknown as Record<string, (req: object) => unknown>;
  const out = client[method.localName]!(request);
  return method.methodKind === "server_streaming" ? firstMessage(out as AsyncIterable<unknown>) : (out as Promise<unknown>);
}

describe("every method has a cross-tenant case", () => {
  it("the descriptors' methods and the cases match one to one", () => {
    const names = METHODS.map((m) => m.name);
    expect(names.length).toBeGreaterThanOrEqual(20);
    expect(names.filter((n) => !(n in cases)), "methods without a cross-tenant case").toEqual([]);
    expect(Object.keys(cases).filter((n) => !names.includes(n)), "cases for methods that no longer exist").toEqual([]);
  });
});

describe.each(PROTOCOLS)("A's admin key with B's ids, over %s", (p) => {
  it.each(METHODS.map((m) => m.name))("%s", async (name) => {
    const run = cases[name];
    if (!run) throw new Error(`no cross-tenant case for ${name}`);
    await run(p);
  });
});

describe("mass assignment", () => {
  const post = (path: string, body: unknown) =>
    fetch(`${server.url}/${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${server.adminKey}` },
      body: JSON.stringify(body),
    });

  it.each([
    ["tally.ledger.v1.LedgerService/CreateAccount", { id: "mass-1", tenant_id: B_TENANT }, "mass-1"],
    ["tally.ledger.v1.LedgerService/CreateAccount", { id: "mass-2", tenantId: B_TENANT }, "mass-2"],
    ["tally.ledger.v1.LedgerService/CreateAccount", { id: "mass-3", locked: true }, "mass-3"],
    ["tally.ledger.v1.LedgerService/CreateAccount", { id: "mass-4", created_at: "2001-01-01T00:00:00Z" }, "mass-4"],
    ["tally.ledger.v1.LedgerService/CreateAccount", { id: "mass-5", balance: "1000000" }, "mass-5"],
  ] as const)("%s with %j is invalid_argument and creates nothing", async (path, body, id) => {
    const res = await post(path, body);
    const json = (await res.json()) as { code?: string };
    expect([res.status, json.code]).toEqual([400, "invalid_argument"]);
    for (const key of [server.adminKey, bKey]) {
      const f = await failureOf(() => ledgerAs(key).getAccount({ id }));
      expect(f.codeName).toBe(Code[Code.NotFound]);
    }
  });

  it.each([{ tenant_id: B_TENANT }, { status: "TRANSFER_STATUS_POSTED" }, { posted_amount: "5" }, { sequence: "1" }])(
    "PostTransfer with extra field %j is invalid_argument and moves nothing",
    async (extra) => {
      const before = (await ledgerAs(server.adminKey).getBalance({ accountId: "a-2", asset: "USD" })).balance?.posted;
      const res = await post("tally.ledger.v1.LedgerService/PostTransfer", {
        idempotencyKey: nonexistent("mass-"),
        debitAccountId: "a-1",
        creditAccountId: "a-2",
        asset: "USD",
        amount: "4",
        ...extra,
      });
      expect([res.status, ((await res.json()) as { code?: string }).code]).toEqual([400, "invalid_argument"]);
      expect((await ledgerAs(server.adminKey).getBalance({ accountId: "a-2", asset: "USD" })).balance?.posted).toBe(before);
    },
  );

  it("the same body without the extra field is accepted (the refusals above are about the field)", async () => {
    const res = await post("tally.ledger.v1.LedgerService/CreateAccount", { id: "mass-ok" });
    expect(res.status).toBe(200);
  });
});

describe.each(PROTOCOLS)("account-scoped read keys, over %s", (p) => {
  let reader: Ledger;
  let secret: string;
  beforeAll(async () => {
    secret = (await adminAs(server.adminKey).createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: "a-1", label: `reader ${p}` })).secret;
    reader = ledgerAs(secret, p);
  });

  it("reads its own account's balance, transactions and watch", async () => {
    const admin = ledgerAs(server.adminKey);
    expect((await reader.getAccount({ id: "a-1" })).account?.id).toBe("a-1");
    expect((await reader.getBalance({ accountId: "a-1", asset: "USD" })).balance).toEqual((await admin.getBalance({ accountId: "a-1", asset: "USD" })).balance);
    expect((await reader.getMany({ accountId: "a-1" })).balances).toEqual((await admin.getMany({ accountId: "a-1" })).balances);
    const page1 = await reader.listTransactions({ accountId: "a-1", pageSize: 1 });
    expect(page1.transactions).toHaveLength(1);
    expect(page1.nextPageToken).not.toBe("");
    const page2 = await reader.listTransactions({ accountId: "a-1", pageSize: 1, pageToken: page1.nextPageToken });
    expect(page2.transactions[0]!.sequence).toBeLessThan(page1.transactions[0]!.sequence);
    const first = await firstMessage(reader.watchBalance({ accountId: "a-1" }));
    expect(first.event.case).toBe("snapshot");
    expect((await reader.listAccounts({})).accounts.map((x) => x.id)).toEqual(["a-1"]);
  });

  it("another account of the same tenant is not_found, exactly like a nonexistent one", async () => {
    const admin = ledgerAs(server.adminKey, p);
    const reads: [string, (c: Ledger, id: string) => Promise<unknown>][] = [
      ["GetAccount", (c, id) => c.getAccount({ id })],
      ["GetBalance", (c, id) => c.getBalance({ accountId: id, asset: "USD" })],
      ["GetMany", (c, id) => c.getMany({ accountId: id })],
      ["ListTransactions", (c, id) => c.listTransactions({ accountId: id })],
      ["WatchBalance", (c, id) => firstMessage(c.watchBalance({ accountId: id }))],
    ];
    for (const [name, read] of reads) {
      const random = nonexistent("acct-");
      const viaReader = await expectLikeNonexistent((id) => read(reader, id), "a-2", random);
      // And the same as what an admin gets for an id that does not exist.
      const viaAdmin = await failureOf(() => read(admin, random));
      expect(shapeOf(viaReader, ["a-2"]), name).toEqual(shapeOf(viaAdmin, [random]));
    }
  });

  it("every method with side effects, and every tenant-wide read, is permission_denied and changes nothing", async () => {
    const requests: Record<string, object> = {
      CreateAccount: { id: nonexistent("by-reader-") },
      DefineAsset: { code: "READERX", scale: 2 },
      PostTransfer: { idempotencyKey: nonexistent("r-"), debitAccountId: "a-1", creditAccountId: "a-2", asset: "USD", amount: 1n },
      PostTransfers: { transfers: [{ idempotencyKey: nonexistent("r-"), debitAccountId: "a-1", creditAccountId: "a-2", asset: "USD", amount: 1n }] },
      PostPendingTransfer: { transferId: aPending },
      VoidPendingTransfer: { transferId: aPending },
      LockBalance: { accountId: "a-1" },
      UnlockBalance: { accountId: "a-1" },
      CreateTenant: { id: nonexistent("tn-") },
      CreateApiKey: { scope: KeyScope.ACCOUNT_READ, accountId: "a-1" },
      RevokeApiKey: { id: nonexistent("k") },
      CreateCredential: { kind: "3plguys_api_key", accountId: "a-1", scopes: ["invoices"] },
      RevokeCredential: { kind: "3plguys_api_key", id: nonexistent("", 20) },
      GetTransfer: { id: aPending },
      Verify: {},
      CreateCommit: { type: "PREPAID", balance: { customerId: "a-1", product: { id: "p", name: "P" }, scheduleItems: [{ amount: 1n, ...LIVE }] } },
      CreateCredit: { balance: { customerId: "a-1", product: { id: "p", name: "P" }, scheduleItems: [{ amount: 1n, ...LIVE }] } },
      ArchiveBalance: { id: b.creditId },
      AddManualLedgerEntry: { id: b.creditId, segmentId: b.segmentId, amount: 1n, reason: "x" },
      RecordUsage: { usageId: nonexistent("u-"), customerId: "a-1", productId: "p", amount: 1n },
      RolloverBalance: { id: b.creditId, endingBefore: LIVE.endingBefore, idempotencyKey: nonexistent("k-") },
      CreditBackUsage: { usageId: b.usageId, customerId: "a-1", amount: 1n, idempotencyKey: nonexistent("k-") },
    };
    const admin = ledgerAs(server.adminKey);
    const balanceBefore = (await admin.getBalance({ accountId: "a-1", asset: "USD" })).balance;
    // Writes come from the descriptors, so a new write method without a probe fails here.
    const writes = METHODS.filter((m) => m.method.idempotency !== MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS);
    expect(writes.length).toBeGreaterThanOrEqual(11);
    const targets = [...writes, ...METHODS.filter((m) => ["GetTransfer", "Verify"].includes(m.method.name))];
    for (const m of targets) {
      const req = requests[m.method.name];
      if (!req) throw new Error(`no account-key probe for ${m.name}`);
      const f = await failureOf(() => callMethod(m.service, m.method, secret, p, req));
      expect([m.name, f.codeName]).toEqual([m.name, Code[Code.PermissionDenied]]);
    }
    expect((await admin.getBalance({ accountId: "a-1", asset: "USD" })).balance).toEqual(balanceBefore);
    expect((await admin.getTransfer({ id: aPending })).transfer?.status).toBe(TransferStatus.PENDING);
    expect((await admin.getAccount({ id: "a-1" })).account?.locked).toBe(false);
    expect((await admin.listAssets({})).assets.map((x) => x.code)).not.toContain("READERX");
  });
});

describe.each(PROTOCOLS)("authentication, over %s", (p) => {
  it("no key is unauthenticated on every method", async () => {
    for (const m of METHODS) {
      const f = await failureOf(() => callMethod(m.service, m.method, undefined, p, {}));
      expect([m.name, f.codeName, f.reason]).toEqual([m.name, Code[Code.Unauthenticated], "missing_credentials"]);
    }
  });

  it("malformed, unknown, wrong-secret and revoked keys are unauthenticated with one and the same answer", async () => {
    const admin = adminAs(server.adminKey);
    const issued = await admin.createApiKey({ scope: KeyScope.TENANT_ADMIN, label: `to revoke ${p}` });
    // Works before it is revoked, so the refusal below is about the revocation.
    expect((await adminAs(issued.secret, p).verify({})).ok).toBe(true);
    await admin.revokeApiKey({ id: issued.key!.id });
    const realId = /^tly_(k[0-9a-z]{20})_/.exec(server.adminKey)![1]!;
    const keys: Record<string, string> = {
      malformed: "not-a-key",
      "malformed prefix": "tly_short",
      unknown: `tly_${nonexistent("k")}_${nonexistent("", 32)}`,
      "wrong secret": `tly_${realId}_${nonexistent("", 32)}`,
      revoked: issued.secret,
    };
    const answers: Record<string, RpcFailure> = {};
    for (const [label, key] of Object.entries(keys)) {
      answers[label] = await failureOf(() => ledgerAs(key, p).getAccount({ id: "a-1" }));
      // A streaming method answers the same way.
      const stream = await failureOf(() => firstMessage(ledgerAs(key, p).watchBalance({ accountId: "a-1" })));
      expect(stream, `${label} (stream)`).toEqual(answers[label]);
    }
    const reference = answers["unknown"]!;
    expect(reference.codeName).toBe(Code[Code.Unauthenticated]);
    for (const [label, f] of Object.entries(answers)) expect(f, `${label}: ${safeJson(f)}`).toEqual(reference);
  });
});

describe("B afterwards", () => {
  it("B's data is exactly what it was before every probe (B's own later writes aside)", async () => {
    const after = await snapshotOfB();
    // The WatchBalance and Verify cases had B write to its own accounts on purpose; drop what those touched.
    const touched = ["balances shared", "journal shared", "balances b-2", "journal b-2", "balances @world", "journal @world", "verify"];
    const strip = (s: Record<string, unknown>) => Object.fromEntries(Object.entries(s).filter(([k]) => !touched.includes(k)));
    expect(strip(after)).toEqual(strip(bBefore));
    // The touched journals only grew by B's own writes.
    const bJournal = await ledgerAs(bKey).listTransactions({ accountId: "shared", pageSize: 1000 });
    expect(bJournal.transactions.map((t) => t.amount).sort()).toEqual([...PROTOCOLS.map(() => 1n), 222n].sort());
    expect((await adminAs(bKey).verify({})).ok).toBe(true);
  });
});
