/**
 * The ledger's rules, proven through a real server over a real SQLite file:
 * double entry, overdraft limits, freezes, two-phase transfers, atomic
 * batches, asset scales, int64 overflow, reads of empty and unknown accounts.
 * Every refusal is also checked to have written nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { equals } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { AdminService } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService, TransferSchema, TransferStatus } from "../gen/tally/ledger/v1/ledger_pb.js";
import type { Balance, Transfer } from "../gen/tally/ledger/v1/ledger_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { PostTransferRequestSchema } from "../gen/tally/ledger/v1/ledger_pb.js";
import { PROTOCOLS, clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";
import { allTransactions, expectRefused, uniq } from "./support/ledger-kit.js";
import { connectPost } from "./support/rpc-wire.js";
import type { WireOutcome } from "./support/rpc-wire.js";
import type { AdminClient, LedgerClient } from "./support/ledger-kit.js";

const INT64_MAX = 9223372036854775807n;

let server: TestServer;
let L: LedgerClient;
let admin: AdminClient;

beforeAll(async () => {
  server = await startTestServer();
  L = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
  admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
});
afterAll(async () => {
  await server?.close();
});

type TransferInit = MessageInitShape<typeof PostTransferRequestSchema>;

/** The optional parts of a transfer a test may set. */
interface TransferExtra {
  readonly asset?: string;
  readonly pending?: boolean;
  readonly kind?: string;
  readonly note?: string;
  readonly metadata?: Record<string, string>;
}

/** Opens a fresh account (random id) and returns its id. */
async function open(prefix: string, opts: { overdraftLimit?: bigint; overdraftUnlimited?: boolean } = {}): Promise<string> {
  const id = uniq(prefix);
  await L.createAccount({ id, ...opts });
  return id;
}

let keySeq = 0;
/** A transfer with a fresh idempotency key. */
async function move(debit: string, credit: string, amount: bigint, extra: TransferExtra = {}): Promise<Transfer> {
  const res = await L.postTransfer({
    idempotencyKey: uniq(`k${keySeq++}`),
    debitAccountId: debit,
    creditAccountId: credit,
    asset: "USD",
    amount,
    ...extra,
  });
  return res.transfer!;
}

async function balance(accountId: string, asset = "USD"): Promise<Balance> {
  return (await L.getBalance({ accountId, asset })).balance!;
}

/** posted, pending_in, pending_out, available: the four numbers a rule changes. */
async function nums(accountId: string, asset = "USD"): Promise<[bigint, bigint, bigint, bigint]> {
  const b = await balance(accountId, asset);
  return [b.posted, b.pendingIn, b.pendingOut, b.available];
}

/** Everything a refused write must leave alone: balances of the accounts and their journals. */
async function snapshot(ids: readonly string[], asset = "USD"): Promise<unknown> {
  return Promise.all(ids.map(async (id) => ({ b: await nums(id, asset), entries: (await allTransactions(L, id)).map((t) => t.sequence) })));
}

describe("double entry", () => {
  it("writes a debit and a credit entry per transfer, with balance_after and monotonic sequences", async () => {
    const a = await open("de-a");
    const b = await open("de-b");
    const fund = await move("@world", a, 1000n);
    expect(fund.creditBalanceAfter).toBe(1000n);
    const t1 = await move(a, b, 300n, { kind: "payment", note: "n1", metadata: { x: "1" } });
    const t2 = await move(b, a, 50n);
    const t3 = await move(a, b, 25n);
    expect([t1.debitBalanceAfter, t1.creditBalanceAfter]).toEqual([700n, 300n]);
    expect([t2.debitBalanceAfter, t2.creditBalanceAfter]).toEqual([250n, 750n]);
    expect([t3.debitBalanceAfter, t3.creditBalanceAfter]).toEqual([725n, 275n]);
    // Transfers are sequenced in commit order.
    expect(fund.sequence < t1.sequence && t1.sequence < t2.sequence && t2.sequence < t3.sequence).toBe(true);

    const ea = await allTransactions(L, a, { pageSize: 2 });
    const eb = await allTransactions(L, b, { pageSize: 1 });
    expect(ea.map((e) => [e.amount, e.balanceAfter, e.counterpartyAccountId])).toEqual([
      [-25n, 725n, b],
      [50n, 750n, b],
      [-300n, 700n, b],
      [1000n, 1000n, "@world"],
    ]);
    expect(eb.map((e) => [e.amount, e.balanceAfter, e.counterpartyAccountId])).toEqual([
      [25n, 275n, a],
      [-50n, 250n, a],
      [300n, 300n, a],
    ]);
    // Newest first, strictly decreasing sequence, id = decimal sequence.
    for (const list of [ea, eb]) {
      for (let i = 1; i < list.length; i++) expect(list[i - 1]!.sequence > list[i]!.sequence).toBe(true);
      for (const e of list) expect(e.id).toBe(e.sequence.toString());
    }
    // Each transfer's two entries mirror each other: same transfer, opposite amounts.
    const ta = ea.find((e) => e.transferId === t1.id)!;
    const tb = eb.find((e) => e.transferId === t1.id)!;
    expect(ta.amount + tb.amount).toBe(0n);
    expect([ta.kind, ta.note, ta.metadata]).toEqual(["payment", "n1", { x: "1" }]);
    expect(ta.status).toBe(TransferStatus.POSTED);
    expect(tb.sequence).toBe(t1.sequence);
    expect(ta.sequence).toBeLessThan(tb.sequence);
    // posted equals the sum of the posted entries.
    expect((await balance(a)).posted).toBe(ea.reduce((s, e) => s + e.amount, 0n));
    expect((await balance(b)).posted).toBe(eb.reduce((s, e) => s + e.amount, 0n));
    expect((await balance(b)).sequence).toBe(eb[0]!.sequence);
  });

  it("refuses a transfer from an account to itself, and non-positive amounts", async () => {
    const a = await open("self");
    await move("@world", a, 10n);
    await expectRefused(move(a, a, 1n), Code.InvalidArgument, "same_account");
    await expectRefused(move("@world", a, 0n), Code.InvalidArgument, "invalid_amount");
    await expectRefused(move("@world", a, -5n), Code.InvalidArgument, "invalid_amount");
    expect(await nums(a)).toEqual([10n, 0n, 0n, 10n]);
  });
});

describe("overdraft", () => {
  it("refuses a debit past zero when overdraft is forbidden, at the exact limit", async () => {
    const a = await open("od0");
    const b = await open("od0-b");
    await move("@world", a, 100n);
    const before = await snapshot([a, b]);
    const r = await expectRefused(move(a, b, 101n), Code.FailedPrecondition, "insufficient_funds");
    expect(r.metadata.account_id).toBe(a);
    expect(await snapshot([a, b])).toEqual(before);
    const t = await move(a, b, 100n);
    expect(t.debitBalanceAfter).toBe(0n);
    await expectRefused(move(a, b, 1n), Code.FailedPrecondition, "insufficient_funds");
    expect(await nums(a)).toEqual([0n, 0n, 0n, 0n]);
  });

  it("lets overdraft_limit take available down to -limit and no further", async () => {
    const a = await open("odl", { overdraftLimit: 500n });
    const b = await open("odl-b");
    await expectRefused(move(a, b, 501n), Code.FailedPrecondition, "insufficient_funds");
    await move(a, b, 300n);
    await move(a, b, 200n);
    expect(await nums(a)).toEqual([-500n, 0n, 0n, -500n]);
    await expectRefused(move(a, b, 1n), Code.FailedPrecondition, "insufficient_funds");
    // A pending hold counts against the same limit.
    await expectRefused(move(a, b, 1n, { pending: true }), Code.FailedPrecondition, "insufficient_funds");
    expect(await nums(a)).toEqual([-500n, 0n, 0n, -500n]);
    expect((await balance(b)).posted).toBe(500n);
  });

  it("refuses a negative overdraft_limit", async () => {
    await expectRefused(L.createAccount({ id: uniq("neg"), overdraftLimit: -1n }), Code.InvalidArgument, "invalid_overdraft_limit");
  });

  it.each(PROTOCOLS)("carries the refusal reason in the ErrorDetail over %s", async (protocol) => {
    const c = clientFor(LedgerService, server.url, protocol, server.adminKey);
    const a = await open(`odp-${protocol}`);
    const r = await expectRefused(
      c.postTransfer({ idempotencyKey: uniq("odp"), debitAccountId: a, creditAccountId: "@world", asset: "USD", amount: 1n }),
      Code.FailedPrecondition,
      "insufficient_funds",
    );
    expect(r.metadata).toEqual({ account_id: a });
    await expectRefused(c.getAccount({ id: uniq("missing") }), Code.NotFound, "account_not_found");
  });
});

describe("freeze", () => {
  it("refuses debits of a locked account, allows credits, shows locked_at, and unlock restores", async () => {
    const x = await open("frz");
    const y = await open("frz-y");
    await move("@world", x, 1000n);
    // A hold taken before the freeze: posting it moves money out, so it is refused too.
    const hold = await move(x, y, 100n, { pending: true });
    const hold2 = await move(x, y, 50n, { pending: true });

    const { account } = await L.lockBalance({ accountId: x });
    expect(account?.locked).toBe(true);
    const lockedAt = account!.lockedAt!;
    expect(lockedAt.seconds).toBeGreaterThan(0n);
    // Locking again keeps the first locked_at.
    const again = await L.lockBalance({ accountId: x });
    expect(again.account?.lockedAt).toEqual(lockedAt);
    const b = await balance(x);
    expect(b.locked).toBe(true);
    expect(b.lockedAt).toEqual(lockedAt);
    // Every asset's balance shows the freeze, even one with no history.
    expect((await balance(x, "VC")).locked).toBe(true);

    const before = await snapshot([x, y]);
    const r = await expectRefused(move(x, y, 1n), Code.FailedPrecondition, "balance_locked");
    expect(r.metadata.account_id).toBe(x);
    await expectRefused(move(x, y, 1n, { pending: true }), Code.FailedPrecondition, "balance_locked");
    await expectRefused(L.postPendingTransfer({ transferId: hold.id }), Code.FailedPrecondition, "balance_locked");
    await expectRefused(
      L.postTransfers({
        transfers: [
          { idempotencyKey: uniq("fb1"), debitAccountId: "@world", creditAccountId: y, asset: "USD", amount: 5n },
          { idempotencyKey: uniq("fb2"), debitAccountId: x, creditAccountId: y, asset: "USD", amount: 5n },
        ],
      }),
      Code.FailedPrecondition,
      "balance_locked",
    );
    expect(await snapshot([x, y])).toEqual(before);
    expect((await L.getTransfer({ id: hold.id })).transfer?.status).toBe(TransferStatus.PENDING);

    // Credits still land on a frozen account.
    await move("@world", x, 5n);
    expect((await balance(x)).posted).toBe(1005n);
    // Voiding a hold moves nothing out of the frozen account, so it is allowed.
    const voided = await L.voidPendingTransfer({ transferId: hold2.id });
    expect(voided.transfer?.status).toBe(TransferStatus.VOIDED);
    expect(await nums(x)).toEqual([1005n, 0n, 100n, 905n]);

    const un = await L.unlockBalance({ accountId: x });
    expect(un.account?.locked).toBe(false);
    expect(un.account?.lockedAt).toBeUndefined();
    const after = await balance(x);
    expect(after.locked).toBe(false);
    expect(after.lockedAt).toBeUndefined();
    await move(x, y, 5n);
    const posted = await L.postPendingTransfer({ transferId: hold.id });
    expect(posted.transfer?.status).toBe(TransferStatus.POSTED);
    expect(await nums(x)).toEqual([900n, 0n, 0n, 900n]);
  });

  it("refuses to lock an unknown account", async () => {
    await expectRefused(L.lockBalance({ accountId: uniq("nobody") }), Code.NotFound, "account_not_found");
    await expectRefused(L.unlockBalance({ accountId: uniq("nobody") }), Code.NotFound, "account_not_found");
  });
});

describe("pending, post, void", () => {
  it("reserves on the debit side: available = posted - pending_out, pending_in on the credit side", async () => {
    const a = await open("pn-a");
    const b = await open("pn-b");
    await move("@world", a, 1000n);
    const hold = await move(a, b, 300n, { pending: true });
    expect(hold.status).toBe(TransferStatus.PENDING);
    expect(hold.postedAmount).toBe(0n);
    expect([hold.debitBalanceAfter, hold.creditBalanceAfter]).toEqual([1000n, 0n]);
    expect(await nums(a)).toEqual([1000n, 0n, 300n, 700n]);
    expect(await nums(b)).toEqual([0n, 300n, 0n, 0n]);
    const [entry] = await allTransactions(L, a);
    expect([entry!.amount, entry!.status, entry!.balanceAfter]).toEqual([-300n, TransferStatus.PENDING, 1000n]);

    // The reservation is not spendable twice.
    await expectRefused(move(a, b, 701n), Code.FailedPrecondition, "insufficient_funds");
    await expectRefused(move(a, b, 701n, { pending: true }), Code.FailedPrecondition, "insufficient_funds");
    // Pending funds on the credit side are not spendable either.
    await expectRefused(move(b, a, 1n), Code.FailedPrecondition, "insufficient_funds");
    expect(await nums(a)).toEqual([1000n, 0n, 300n, 700n]);
  });

  it("posts the full amount, and posting again with the same amount returns the same transfer", async () => {
    const a = await open("pf-a");
    const b = await open("pf-b");
    await move("@world", a, 1000n);
    const hold = await move(a, b, 300n, { pending: true });
    const first = (await L.postPendingTransfer({ transferId: hold.id })).transfer!;
    expect(first.status).toBe(TransferStatus.POSTED);
    expect([first.amount, first.postedAmount]).toEqual([300n, 300n]);
    expect([first.debitBalanceAfter, first.creditBalanceAfter]).toEqual([700n, 300n]);
    expect(await nums(a)).toEqual([700n, 0n, 0n, 700n]);
    expect(await nums(b)).toEqual([300n, 0n, 0n, 300n]);

    const entriesBefore = await allTransactions(L, a);
    const again = (await L.postPendingTransfer({ transferId: hold.id })).transfer!;
    const againExplicit = (await L.postPendingTransfer({ transferId: hold.id, amount: 300n })).transfer!;
    expect(equals(TransferSchema, again, first)).toBe(true);
    expect(equals(TransferSchema, againExplicit, first)).toBe(true);
    expect(await allTransactions(L, a)).toEqual(entriesBefore);
    // A different amount is not a retry: refused.
    await expectRefused(L.postPendingTransfer({ transferId: hold.id, amount: 100n }), Code.FailedPrecondition, "transfer_not_pending");
    await expectRefused(L.voidPendingTransfer({ transferId: hold.id }), Code.FailedPrecondition, "transfer_not_pending");
    expect(await nums(a)).toEqual([700n, 0n, 0n, 700n]);
  });

  it("posts less than was reserved and releases the rest", async () => {
    const a = await open("pp-a");
    const b = await open("pp-b");
    await move("@world", a, 1000n);
    const hold = await move(a, b, 400n, { pending: true });
    const t = (await L.postPendingTransfer({ transferId: hold.id, amount: 150n })).transfer!;
    expect([t.status, t.amount, t.postedAmount]).toEqual([TransferStatus.POSTED, 400n, 150n]);
    expect(await nums(a)).toEqual([850n, 0n, 0n, 850n]);
    expect(await nums(b)).toEqual([150n, 0n, 0n, 150n]);
    const [post, pend] = await allTransactions(L, a);
    expect([post!.amount, post!.status, post!.balanceAfter]).toEqual([-150n, TransferStatus.POSTED, 850n]);
    expect([pend!.amount, pend!.status]).toEqual([-400n, TransferStatus.PENDING]);
    const same = (await L.postPendingTransfer({ transferId: hold.id, amount: 150n })).transfer!;
    expect(equals(TransferSchema, same, t)).toBe(true);
    expect((await L.getTransfer({ id: hold.id })).transfer?.postedAmount).toBe(150n);
  });

  it("amount 0 (a JSON 0, \"0\", or no amount) settles the WHOLE hold, and repeats a settled one unchanged", async () => {
    // proto3 cannot tell 0 from absent, so both mean "all", as the proto comment and README say.
    const a = await open("p0-a");
    const b = await open("p0-b");
    await move("@world", a, 1000n);
    const post = (body: string) =>
      connectPost(server.url, "/tally.ledger.v1.LedgerService/PostPendingTransfer", body, { authorization: `Bearer ${server.adminKey}` });
    const settled = (o: WireOutcome) => {
      if (!o.ok) throw new Error(o.message);
      const t = o.message.transfer as { status: string; amount: string; postedAmount: string };
      return [t.status, t.amount, t.postedAmount];
    };
    for (const amount of [', "amount": 0', ', "amount": "0"', ""]) {
      const hold = await move(a, b, 100n, { pending: true });
      expect(settled(await post(`{"transferId": "${hold.id}"${amount}}`)), amount).toEqual(["TRANSFER_STATUS_POSTED", "100", "100"]);
    }
    expect(await nums(a)).toEqual([700n, 0n, 0n, 700n]);
    // A hold posted for part: 0 again is a retry of whatever it was posted for, not "all".
    const part = await move(a, b, 100n, { pending: true });
    expect(settled(await post(`{"transferId": "${part.id}", "amount": "40"}`))).toEqual(["TRANSFER_STATUS_POSTED", "100", "40"]);
    expect(settled(await post(`{"transferId": "${part.id}", "amount": 0}`))).toEqual(["TRANSFER_STATUS_POSTED", "100", "40"]);
    expect(await nums(a)).toEqual([660n, 0n, 0n, 660n]);
  });

  it("voids a reservation, then refuses to post it", async () => {
    const a = await open("pv-a");
    const b = await open("pv-b");
    await move("@world", a, 1000n);
    const hold = await move(a, b, 200n, { pending: true });
    const v = (await L.voidPendingTransfer({ transferId: hold.id })).transfer!;
    expect([v.status, v.postedAmount]).toEqual([TransferStatus.VOIDED, 0n]);
    expect(await nums(a)).toEqual([1000n, 0n, 0n, 1000n]);
    expect(await nums(b)).toEqual([0n, 0n, 0n, 0n]);
    const [voidEntry] = await allTransactions(L, a);
    expect([voidEntry!.amount, voidEntry!.status, voidEntry!.balanceAfter]).toEqual([-200n, TransferStatus.VOIDED, 1000n]);
    // Voiding twice returns the voided transfer unchanged.
    const v2 = (await L.voidPendingTransfer({ transferId: hold.id })).transfer!;
    expect(equals(TransferSchema, v2, v)).toBe(true);
    const before = await snapshot([a, b]);
    await expectRefused(L.postPendingTransfer({ transferId: hold.id }), Code.FailedPrecondition, "transfer_not_pending");
    await expectRefused(L.postPendingTransfer({ transferId: hold.id, amount: 200n }), Code.FailedPrecondition, "transfer_not_pending");
    expect(await snapshot([a, b])).toEqual(before);
  });

  it("refuses to post more than was reserved, and leaves the reservation in place", async () => {
    const a = await open("px-a");
    const b = await open("px-b");
    await move("@world", a, 1000n);
    const hold = await move(a, b, 100n, { pending: true });
    const before = await snapshot([a, b]);
    await expectRefused(L.postPendingTransfer({ transferId: hold.id, amount: 101n }), Code.InvalidArgument, "amount_exceeds_pending");
    await expectRefused(L.postPendingTransfer({ transferId: hold.id, amount: -1n }), Code.InvalidArgument, "invalid_amount");
    expect(await snapshot([a, b])).toEqual(before);
    expect((await L.getTransfer({ id: hold.id })).transfer?.status).toBe(TransferStatus.PENDING);
    await expectRefused(L.postPendingTransfer({ transferId: "tr_doesnotexist" }), Code.NotFound, "transfer_not_found");
    await expectRefused(L.voidPendingTransfer({ transferId: "" }), Code.InvalidArgument, "missing_transfer_id");
    // A direct transfer is not pending: it cannot be posted or voided.
    const direct = await move(a, b, 1n);
    await expectRefused(L.voidPendingTransfer({ transferId: direct.id }), Code.FailedPrecondition, "transfer_not_pending");
  });
});

describe("PostTransfers", () => {
  it("is atomic: one refused item and nothing of the batch is written", async () => {
    const a = await open("bt-a");
    const b = await open("bt-b");
    const c = await open("bt-c");
    await move("@world", a, 500n);
    const keys = [uniq("bt1"), uniq("bt2"), uniq("bt3")];
    const items: TransferInit[] = [
      { idempotencyKey: keys[0]!, debitAccountId: a, creditAccountId: b, asset: "USD", amount: 200n },
      { idempotencyKey: keys[1]!, debitAccountId: a, creditAccountId: c, asset: "USD", amount: 200n },
      { idempotencyKey: keys[2]!, debitAccountId: a, creditAccountId: b, asset: "USD", amount: 200n },
    ];
    const before = await snapshot([a, b, c]);
    const verifyBefore = await admin.verify({});
    await expectRefused(L.postTransfers({ transfers: items }), Code.FailedPrecondition, "insufficient_funds");
    expect(await snapshot([a, b, c])).toEqual(before);
    // The journal as a whole did not grow either.
    expect((await admin.verify({})).entriesChecked).toBe(verifyBefore.entriesChecked);

    // Unknown account in the last item: not_found, nothing written.
    await expectRefused(
      L.postTransfers({ transfers: [items[0]!, { ...items[1]!, creditAccountId: uniq("ghost") }] }),
      Code.NotFound,
      "account_not_found",
    );
    // A malformed item: invalid_argument naming the item, nothing written.
    const bad = await expectRefused(L.postTransfers({ transfers: [items[0]!, { ...items[1]!, amount: 0n }] }), Code.InvalidArgument, "invalid_amount");
    expect(bad.metadata.field).toBe("transfers[1].amount");
    expect(await snapshot([a, b, c])).toEqual(before);

    // The keys of the refused batches were not consumed: the first two now execute.
    const ok = await L.postTransfers({ transfers: items.slice(0, 2) });
    expect(ok.results.map((r) => r.replayed)).toEqual([false, false]);
    expect(await nums(a)).toEqual([100n, 0n, 0n, 100n]);
    expect((await balance(b)).posted).toBe(200n);
    expect((await balance(c)).posted).toBe(200n);
  });

  it("applies items in order, each seeing the ones before it", async () => {
    const a = await open("bo-a");
    const b = await open("bo-b");
    const res = await L.postTransfers({
      transfers: [
        { idempotencyKey: uniq("bo1"), debitAccountId: "@world", creditAccountId: a, asset: "USD", amount: 100n },
        { idempotencyKey: uniq("bo2"), debitAccountId: a, creditAccountId: b, asset: "USD", amount: 100n },
      ],
    });
    expect(res.results.map((r) => r.transfer?.creditBalanceAfter)).toEqual([100n, 100n]);
    expect(await nums(a)).toEqual([0n, 0n, 0n, 0n]);
  });

  it("takes up to 1000 items in one batch, and refuses 1001", async () => {
    const a = await open("big-a");
    const tag = uniq("big");
    const items = (n: number): TransferInit[] =>
      Array.from({ length: n }, (_, i) => ({ idempotencyKey: `${tag}-${i}`, debitAccountId: "@world", creditAccountId: a, asset: "VC", amount: 1n }));
    await expectRefused(L.postTransfers({ transfers: items(1001) }), Code.InvalidArgument, "batch_too_large");
    expect((await balance(a, "VC")).posted).toBe(0n);
    const res = await L.postTransfers({ transfers: items(1000) });
    expect(res.results).toHaveLength(1000);
    expect(new Set(res.results.map((r) => r.transfer!.id)).size).toBe(1000);
    expect((await balance(a, "VC")).posted).toBe(1000n);
    // Sequences follow the batch order.
    const seqs = res.results.map((r) => r.transfer!.sequence);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]! > seqs[i - 1]!).toBe(true);
  });

  it("refuses an empty batch and a key repeated within a batch", async () => {
    await expectRefused(L.postTransfers({ transfers: [] }), Code.InvalidArgument, "empty_batch");
    const a = await open("bd-a");
    const k = uniq("dup");
    await expectRefused(
      L.postTransfers({
        transfers: [
          { idempotencyKey: k, debitAccountId: "@world", creditAccountId: a, asset: "USD", amount: 1n },
          { idempotencyKey: k, debitAccountId: "@world", creditAccountId: a, asset: "USD", amount: 1n },
        ],
      }),
      Code.InvalidArgument,
      "duplicate_idempotency_key",
    );
    expect(await nums(a)).toEqual([0n, 0n, 0n, 0n]);
  });
});

describe("assets", () => {
  it("gives USD scale 6 and VC scale 0 on first use", async () => {
    const a = await open("as");
    await move("@world", a, 1n, { asset: "USD" });
    await move("@world", a, 1n, { asset: "VC" });
    expect((await balance(a, "USD")).scale).toBe(6);
    expect((await balance(a, "VC")).scale).toBe(0);
    const { assets } = await L.listAssets({});
    expect(assets.find((x) => x.code === "USD")?.scale).toBe(6);
    expect(assets.find((x) => x.code === "VC")?.scale).toBe(0);
    // USD is fixed at 6 now: another scale is refused, the same scale is a no-op.
    await expectRefused(L.defineAsset({ code: "USD", scale: 2 }), Code.FailedPrecondition, "asset_scale_fixed");
    expect((await L.defineAsset({ code: "USD", scale: 6 })).asset?.scale).toBe(6);
  });

  it("fixes a defined scale, refuses a different one later, and uses it for balances", async () => {
    const code = `PT${Math.random().toString(36).slice(2, 8).toUpperCase()}`;
    expect((await L.defineAsset({ code, scale: 2 })).asset).toMatchObject({ code, scale: 2 });
    await expectRefused(L.defineAsset({ code, scale: 3 }), Code.FailedPrecondition, "asset_scale_fixed");
    const a = await open("asd");
    await move("@world", a, 12345n, { asset: code });
    const b = await balance(a, code);
    expect([b.scale, b.posted]).toEqual([2, 12345n]);
    expect((await L.listAssets({})).assets.find((x) => x.code === code)?.scale).toBe(2);
    await expectRefused(L.defineAsset({ code, scale: 0 }), Code.FailedPrecondition, "asset_scale_fixed");
  });

  it("a refused transfer does not fix the scale of an asset it would have introduced", async () => {
    const code = `NW${Math.random().toString(36).slice(2, 8).toUpperCase()}`;
    const a = await open("nw-a");
    const b = await open("nw-b");
    await expectRefused(move(a, b, 1n, { asset: code }), Code.FailedPrecondition, "insufficient_funds");
    expect((await L.listAssets({})).assets.map((x) => x.code)).not.toContain(code);
    // Had the refused write created the asset (at scale 0), this would be asset_scale_fixed.
    expect((await L.defineAsset({ code, scale: 2 })).asset?.scale).toBe(2);
  });

  it("refuses malformed codes and scales", async () => {
    await expectRefused(L.defineAsset({ code: "usd", scale: 2 }), Code.InvalidArgument, "invalid_asset");
    await expectRefused(L.defineAsset({ code: "", scale: 2 }), Code.InvalidArgument, "invalid_asset");
    await expectRefused(L.defineAsset({ code: "ZZSCALE", scale: 19 }), Code.InvalidArgument, "invalid_scale");
    const a = await open("asm");
    await expectRefused(move("@world", a, 1n, { asset: "us d" }), Code.InvalidArgument, "invalid_asset");
  });
});

describe("text", () => {
  // PostgreSQL text cannot hold NUL and SQLite can: both stores must refuse it the same way, and write nothing.
  it("refuses NUL characters in notes, metadata keys and values, and writes nothing", async () => {
    const a = await open("nul");
    const before = await snapshot(["@world", a]);
    await expectRefused(move("@world", a, 1n, { note: "a\u0000b" }), Code.InvalidArgument, "invalid_text");
    await expectRefused(move("@world", a, 1n, { metadata: { k: "v\u0000" } }), Code.InvalidArgument, "invalid_text");
    await expectRefused(move("@world", a, 1n, { metadata: { "k\u0000": "v" } }), Code.InvalidArgument, "invalid_text");
    await expectRefused(L.createAccount({ id: `${a}-2`, metadata: { x: "\u0000" } }), Code.InvalidArgument, "invalid_text");
    expect(await snapshot(["@world", a])).toEqual(before);
    // Other control characters are ordinary text and round-trip.
    expect((await move("@world", a, 1n, { note: "tab\there" })).note).toBe("tab\there");
  });
});

describe("int64", () => {
  it("refuses a credit that would overflow int64 and writes nothing", async () => {
    const asset = `OVF${Math.random().toString(36).slice(2, 6).toUpperCase()}`;
    // Unlimited sources of their own, so the debit side starts at 0 and cannot overflow first.
    const src1 = await open("ovf-s1", { overdraftUnlimited: true });
    const src2 = await open("ovf-s2", { overdraftUnlimited: true });
    const x = await open("ovf-x");
    const t = await move(src1, x, INT64_MAX, { asset });
    expect(t.creditBalanceAfter).toBe(INT64_MAX);
    const before = await snapshot([src1, src2, x], asset);
    const r = await expectRefused(move(src2, x, 1n, { asset }), Code.OutOfRange, "int64_overflow");
    expect(r.error.rawMessage).toMatch(/overflow/);
    expect(await snapshot([src1, src2, x], asset)).toEqual(before);
    expect((await balance(x, asset)).posted).toBe(INT64_MAX);
    expect((await balance(src2, asset)).sequence).toBe(0n);
    // The debit side is checked too: src1 sits at -INT64_MAX, two more would pass INT64_MIN.
    const y = await open("ovf-y");
    await expectRefused(move(src1, y, 2n, { asset }), Code.OutOfRange, "int64_overflow");
    expect(await snapshot([src1, src2, x], asset)).toEqual(before);
    expect((await balance(y, asset)).posted).toBe(0n);
  });
});

describe("reads", () => {
  it("reads an account with no history as zero, not not_found", async () => {
    const a = await open("empty");
    const { account } = await L.getAccount({ id: a });
    const b = await balance(a, "USD");
    expect([b.posted, b.pendingIn, b.pendingOut, b.available, b.sequence]).toEqual([0n, 0n, 0n, 0n, 0n]);
    expect([b.accountId, b.asset, b.scale, b.locked]).toEqual([a, "USD", 6, false]);
    expect(b.updatedAt).toEqual(account?.createdAt);
    expect((await L.getMany({ accountId: a })).balances).toEqual([]);
    const page = await L.listTransactions({ accountId: a });
    expect(page.transactions).toEqual([]);
    expect(page.nextPageToken).toBe("");
  });

  it("answers not_found for an unknown account everywhere", async () => {
    const ghost = uniq("ghost");
    const a = await open("gh-a");
    await move("@world", a, 10n);
    await expectRefused(L.getAccount({ id: ghost }), Code.NotFound, "account_not_found");
    await expectRefused(L.getBalance({ accountId: ghost, asset: "USD" }), Code.NotFound, "account_not_found");
    await expectRefused(L.getMany({ accountId: ghost }), Code.NotFound, "account_not_found");
    await expectRefused(L.listTransactions({ accountId: ghost }), Code.NotFound, "account_not_found");
    const before = await snapshot([a]);
    await expectRefused(move(a, ghost, 1n), Code.NotFound, "account_not_found");
    await expectRefused(move(ghost, a, 1n), Code.NotFound, "account_not_found");
    expect(await snapshot([a])).toEqual(before);
    // The refused transfer created no account on the way.
    await expectRefused(L.getAccount({ id: ghost }), Code.NotFound, "account_not_found");
    await expectRefused(L.getTransfer({ id: "tr_nope" }), Code.NotFound, "transfer_not_found");
  });

  it("GetMany lists only non-zero balances, each with its scale, in asset order", async () => {
    const a = await open("gm-a");
    const b = await open("gm-b");
    await move("@world", a, 700n, { asset: "USD" });
    await move("@world", a, 5n, { asset: "VC" });
    await move(a, b, 5n, { asset: "VC" }); // VC back to zero: not listed
    const code = `GM${Math.random().toString(36).slice(2, 6).toUpperCase()}`;
    await L.defineAsset({ code, scale: 3 });
    await move("@world", a, 9n, { asset: code, pending: true }); // only pending_in: non-zero, listed
    const { balances } = await L.getMany({ accountId: a });
    expect(balances.map((x) => [x.asset, x.scale, x.posted, x.pendingIn])).toEqual(
      [
        ["USD", 6, 700n, 0n],
        [code, 3, 0n, 9n],
      ].sort((p, q) => (String(p[0]) < String(q[0]) ? -1 : 1)),
    );
    expect(balances.every((x) => x.accountId === a)).toBe(true);
    expect((await balance(a, "VC")).posted).toBe(0n);
  });
});

describe("verify", () => {
  // Runs last in this file: everything above must have left the books consistent.
  it("finds no discrepancy after all of the above", async () => {
    const r = await admin.verify({});
    expect(r.discrepancies).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.entriesChecked).toBeGreaterThan(50n);
  });
});
