/**
 * T5, the idempotency matrix, on both write endpoints (PostTransfer and
 * PostTransfers) through a real server, with requests spread over every
 * protocol: a key executes at most once per tenant, its replays are
 * byte-identical, a key reused for a different request is refused without
 * writing anything, and refusals (validation or business) are not memoised.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { AdminService } from "../gen/tally/admin/v1/admin_pb.js";
import {
  LedgerService,
  PostTransferResponseSchema,
  PostTransfersResponseSchema,
  TransferSchema,
  TransferStatus,
} from "../gen/tally/ledger/v1/ledger_pb.js";
import type { PostTransferRequestSchema, Transfer } from "../gen/tally/ledger/v1/ledger_pb.js";
import { PROTOCOLS, clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";
import { allTransactions, expectRefused, parallel, refusalOf, uniq } from "./support/ledger-kit.js";
import type { AdminClient, LedgerClient } from "./support/ledger-kit.js";

type TransferInit = MessageInitShape<typeof PostTransferRequestSchema>;

/** The request body a key is bound to (everything but the key). */
interface Body {
  readonly debit: string;
  readonly credit: string;
  readonly asset: string;
  readonly amount: bigint;
  readonly kind?: string;
  readonly note?: string;
  readonly metadata?: Record<string, string>;
  readonly pending?: boolean;
}

/** What one call of an endpoint returned. */
interface Outcome {
  /** The transfer of each item. */
  readonly transfers: Transfer[];
  readonly replayed: boolean[];
  /** The response as it went over the wire (re-encoded canonically). */
  readonly bytes: Uint8Array;
  /** The same response with every `replayed` flag forced to true: what a replay must equal. */
  readonly asReplayBytes: Uint8Array;
}

/** A write endpoint under test: how to send a keyed request and what one execution writes. */
interface Endpoint {
  readonly name: string;
  send(client: LedgerClient, key: string, body: Body): Promise<Outcome>;
  /** How much one execution credits `body.credit` (posted, or pending_in when pending). */
  credited(body: Body): bigint;
  /** Journal entries one execution adds to the credit account. */
  readonly entriesPerExecution: number;
}

function item(key: string, b: Body): TransferInit {
  return {
    idempotencyKey: key,
    debitAccountId: b.debit,
    creditAccountId: b.credit,
    asset: b.asset,
    amount: b.amount,
    kind: b.kind ?? "",
    note: b.note ?? "",
    metadata: b.metadata ?? {},
    pending: b.pending ?? false,
  };
}

const single: Endpoint = {
  name: "PostTransfer",
  async send(client, key, body) {
    const res = await client.postTransfer(item(key, body));
    return {
      transfers: [res.transfer!],
      replayed: [res.replayed],
      bytes: toBinary(PostTransferResponseSchema, res),
      asReplayBytes: toBinary(PostTransferResponseSchema, create(PostTransferResponseSchema, { ...res, replayed: true })),
    };
  },
  credited: (b) => b.amount,
  entriesPerExecution: 1,
};

/**
 * The batch endpoint sends the row's item plus a companion under a derived key,
 * so every row also proves the batch is replayed, refused or executed as a whole.
 */
/** The companion item's key: derived from the row's key, and still at most 255 characters. */
function companionKey(key: string): string {
  return `${key.slice(0, 253)}~2`;
}

const batch: Endpoint = {
  name: "PostTransfers",
  async send(client, key, body) {
    const res = await client.postTransfers({ transfers: [item(key, body), item(companionKey(key), { ...body, amount: 1n })] });
    const forced = create(PostTransfersResponseSchema, {
      results: res.results.map((r) => ({ transfer: r.transfer, replayed: true })),
    });
    return {
      transfers: res.results.map((r) => r.transfer!),
      replayed: res.results.map((r) => r.replayed),
      bytes: toBinary(PostTransfersResponseSchema, res),
      asReplayBytes: toBinary(PostTransfersResponseSchema, forced),
    };
  },
  credited: (b) => b.amount + 1n,
  entriesPerExecution: 2,
};

let server: TestServer;
let clients: LedgerClient[];
let L: LedgerClient;
let admin: AdminClient;

beforeAll(async () => {
  server = await startTestServer();
  clients = PROTOCOLS.map((p) => clientFor(LedgerService, server.url, p, server.adminKey));
  L = clients[1]!;
  admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
});
afterAll(async () => {
  await server?.close();
});

/** Opens a fresh account, optionally funded from @world. */
async function account(prefix: string, fund = 0n, client: LedgerClient = L): Promise<string> {
  const id = uniq(prefix);
  await client.createAccount({ id });
  if (fund > 0n) {
    await client.postTransfer({ idempotencyKey: uniq("fund"), debitAccountId: "@world", creditAccountId: id, asset: "USD", amount: fund });
  }
  return id;
}

/** The journal size of the default tenant, as Verify counts it: grows with any write anywhere. */
async function journalSize(): Promise<bigint> {
  const r = await admin.verify({});
  expect(r.ok).toBe(true);
  return r.entriesChecked;
}

/** Entries and posted/pending_in of one account: what one execution changes. */
async function creditState(client: LedgerClient, id: string): Promise<{ entries: number; posted: bigint; pendingIn: bigint }> {
  const b = (await client.getBalance({ accountId: id, asset: "USD" })).balance!;
  return { entries: (await allTransactions(client, id)).length, posted: b.posted, pendingIn: b.pendingIn };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

describe.each([single, batch])("$name", (ep) => {
  it("same key, same body, 10 times in a row: one execution, identical responses", async () => {
    const credit = await account("seq");
    const key = uniq("seq-key");
    const body: Body = { debit: "@world", credit, asset: "USD", amount: 250n, kind: "payment", note: "n", metadata: { b: "2", a: "1" } };
    const outs: Outcome[] = [];
    // Rotate protocols: a replay must be the same whichever protocol asks.
    for (let i = 0; i < 10; i++) outs.push(await ep.send(clients[i % clients.length]!, key, body));
    expect(outs[0]!.replayed.every((r) => !r)).toBe(true);
    for (const o of outs.slice(1)) {
      expect(o.replayed.every((r) => r)).toBe(true);
      expect(sameBytes(o.bytes, outs[1]!.bytes)).toBe(true);
      // Apart from the flag, the replay is the first response, byte for byte.
      expect(sameBytes(o.bytes, outs[0]!.asReplayBytes)).toBe(true);
      o.transfers.forEach((t, i) => expect(sameBytes(toBinary(TransferSchema, t), toBinary(TransferSchema, outs[0]!.transfers[i]!))).toBe(true));
    }
    expect(await creditState(L, credit)).toEqual({ entries: ep.entriesPerExecution, posted: ep.credited(body), pendingIn: 0n });
    // Map fields are unordered on the wire: the same metadata in another order is the same request.
    const reordered = await ep.send(clients[0]!, key, { ...body, metadata: { a: "1", b: "2" } });
    expect(sameBytes(reordered.bytes, outs[0]!.asReplayBytes)).toBe(true);
    // The stored transfer is what the first response described.
    const stored = (await L.getTransfer({ id: outs[0]!.transfers[0]!.id })).transfer!;
    expect(sameBytes(toBinary(TransferSchema, stored), toBinary(TransferSchema, outs[0]!.transfers[0]!))).toBe(true);
  });

  it("same key, different amount / account / asset / kind / note / metadata / pending: already_exists, nothing written", async () => {
    const credit = await account("diff");
    const other = await account("diff-other");
    const src = await account("diff-src", 10_000n);
    const key = uniq("diff-key");
    const body: Body = { debit: "@world", credit, asset: "USD", amount: 100n, kind: "payment" };
    const first = await ep.send(L, key, body);
    const variants: [string, Body][] = [
      ["amount", { ...body, amount: 101n }],
      ["credit account", { ...body, credit: other }],
      ["debit account", { ...body, debit: src }],
      ["asset", { ...body, asset: "VC" }],
      ["kind", { ...body, kind: "refund" }],
      ["note", { ...body, note: "changed" }],
      ["metadata", { ...body, metadata: { x: "y" } }],
      ["pending", { ...body, pending: true }],
    ];
    const before = await journalSize();
    const stateBefore = await Promise.all([credit, other, src].map((id) => creditState(L, id)));
    for (const [i, [what, v]] of variants.entries()) {
      const r = await expectRefused(ep.send(clients[i % clients.length]!, key, v), Code.AlreadyExists, "idempotency_key_reused");
      expect(r.metadata.idempotency_key, what).toBe(key);
      expect(r.metadata.transfer_id, what).toBe(first.transfers[0]!.id);
    }
    expect(await journalSize()).toBe(before);
    expect(await Promise.all([credit, other, src].map((id) => creditState(L, id)))).toEqual(stateBefore);
    // The original still replays unchanged.
    const again = await ep.send(L, key, body);
    expect(sameBytes(again.bytes, first.asReplayBytes)).toBe(true);
  });

  it("50 concurrent requests with one key: exactly one execution", async () => {
    const credit = await account("c50");
    const key = uniq("c50-key");
    const body: Body = { debit: "@world", credit, asset: "USD", amount: 7n };
    const outs = await parallel(50, (i) => ep.send(clients[i % clients.length]!, key, body));
    const executed = outs.filter((o) => o.replayed.every((r) => !r));
    expect(executed).toHaveLength(1);
    expect(outs.filter((o) => o.replayed.every((r) => r))).toHaveLength(49);
    for (const o of outs) expect(sameBytes(o.asReplayBytes, executed[0]!.asReplayBytes)).toBe(true);
    expect(await creditState(L, credit)).toEqual({ entries: ep.entriesPerExecution, posted: ep.credited(body), pendingIn: 0n });
    const page = await L.listTransactions({ accountId: credit, pageSize: 1000 });
    expect(new Set(page.transactions.map((t) => t.transferId))).toEqual(new Set(executed[0]!.transfers.map((t) => t.id)));
  });

  it("64 concurrent requests with one key and two bodies: one execution matching one body, the rest replay or already_exists", async () => {
    const credit = await account("c64");
    const key = uniq("c64-key");
    const bodies: Body[] = [
      { debit: "@world", credit, asset: "USD", amount: 10n },
      { debit: "@world", credit, asset: "USD", amount: 20n },
    ];
    const settled = await Promise.allSettled(
      Array.from({ length: 64 }, (_, i) => ep.send(clients[i % clients.length]!, key, bodies[i % 2]!).then((o) => ({ o, body: i % 2 }))),
    );
    const ok = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    const errors = settled.flatMap((s) => (s.status === "rejected" ? [refusalOf(s.reason)] : []));
    // No internal or unknown errors: every failure is the defined refusal.
    expect(errors.map((e) => `${Code[e.code]}/${e.reason}`).filter((x) => x !== "AlreadyExists/idempotency_key_reused")).toEqual([]);
    const executed = ok.filter((x) => x.o.replayed.every((r) => !r));
    expect(executed).toHaveLength(1);
    const winner = executed[0]!.body;
    // Every success is of the winning body; every request of the losing body was refused.
    expect(ok.every((x) => x.body === winner)).toBe(true);
    expect(ok).toHaveLength(32);
    expect(errors).toHaveLength(32);
    expect(executed[0]!.o.transfers[0]!.amount).toBe(bodies[winner]!.amount);
    expect(await creditState(L, credit)).toEqual({ entries: ep.entriesPerExecution, posted: ep.credited(bodies[winner]!), pendingIn: 0n });
    // Even after everything completed, the losing body never executes.
    await expectRefused(ep.send(L, key, bodies[1 - winner]!), Code.AlreadyExists, "idempotency_key_reused");
    expect((await creditState(L, credit)).posted).toBe(ep.credited(bodies[winner]!));
  });

  it("a validation error is not memoised: the corrected retry with the same key executes", async () => {
    const credit = await account("val");
    const key = uniq("val-key");
    const before = await journalSize();
    await expectRefused(ep.send(L, key, { debit: "@world", credit, asset: "USD", amount: 0n }), Code.InvalidArgument, "invalid_amount");
    await expectRefused(ep.send(L, key, { debit: "@world", credit, asset: "usd", amount: 5n }), Code.InvalidArgument, "invalid_asset");
    await expectRefused(ep.send(L, key, { debit: "@world", credit, asset: "USD", amount: 5n, kind: "Not A Kind" }), Code.InvalidArgument, "invalid_kind");
    // Refused inside the write (unknown account) is not memoised either.
    const ghost = uniq("ghost");
    await expectRefused(ep.send(L, key, { debit: "@world", credit: ghost, asset: "USD", amount: 5n }), Code.NotFound, "account_not_found");
    expect(await journalSize()).toBe(before);
    const body: Body = { debit: "@world", credit, asset: "USD", amount: 5n };
    const out = await ep.send(L, key, body);
    expect(out.replayed.every((r) => !r)).toBe(true);
    expect(out.transfers[0]!.amount).toBe(5n);
    expect((await ep.send(L, key, body)).replayed.every((r) => r)).toBe(true);
    expect(await creditState(L, credit)).toEqual({ entries: ep.entriesPerExecution, posted: ep.credited(body), pendingIn: 0n });
  });

  it("a business refusal is not memoised: after funding, the retry with the same key executes", async () => {
    // Documented choice: only executed transfers are stored under their key. A
    // refusal (insufficient funds, frozen account) writes nothing, so the same
    // key and body may be retried once the cause is fixed (TigerBeetle's rule,
    // not Stripe v1's saved error).
    const payer = await account("biz-payer");
    const payee = await account("biz-payee");
    const key = uniq("biz-key");
    const body: Body = { debit: payer, credit: payee, asset: "USD", amount: 300n };
    await expectRefused(ep.send(L, key, body), Code.FailedPrecondition, "insufficient_funds");
    await L.lockBalance({ accountId: payer });
    await expectRefused(ep.send(L, key, body), Code.FailedPrecondition, "balance_locked");
    await L.unlockBalance({ accountId: payer });
    expect(await creditState(L, payee)).toEqual({ entries: 0, posted: 0n, pendingIn: 0n });
    await L.postTransfer({ idempotencyKey: uniq("biz-fund"), debitAccountId: "@world", creditAccountId: payer, asset: "USD", amount: 1000n });
    const out = await ep.send(L, key, body);
    expect(out.replayed.every((r) => !r)).toBe(true);
    expect(out.transfers[0]!.status).toBe(TransferStatus.POSTED);
    expect(await creditState(L, payee)).toEqual({ entries: ep.entriesPerExecution, posted: ep.credited(body), pendingIn: 0n });
    // From now on the key is bound: a replay, never a second execution.
    expect((await ep.send(L, key, body)).replayed.every((r) => r)).toBe(true);
    expect((await L.getBalance({ accountId: payer, asset: "USD" })).balance?.posted).toBe(1000n - ep.credited(body));
  });

  it("tenant B using tenant A's key string executes independently and never sees A's result", async () => {
    const tenantB = await admin.createTenant({ id: uniq("tenant-b"), name: "B" });
    const B = clientFor(LedgerService, server.url, "grpc", tenantB.adminKeySecret);
    const id = uniq("shared-id");
    await L.createAccount({ id });
    await B.createAccount({ id });
    const sameKey = uniq("shared-key");
    const otherKey = uniq("shared-key2");
    const body: Body = { debit: "@world", credit: id, asset: "USD", amount: 40n };
    const a1 = await ep.send(L, sameKey, body);
    const a2 = await ep.send(L, otherKey, body);
    // B, same key, same body: a fresh execution in B, not A's replay.
    const b1 = await ep.send(B, sameKey, body);
    expect(b1.replayed.every((r) => !r)).toBe(true);
    const aIds = new Set([...a1.transfers, ...a2.transfers].map((t) => t.id));
    for (const t of b1.transfers) expect(aIds.has(t.id)).toBe(false);
    // B, A's key, a different body: executes (A's binding does not reach B).
    const b2 = await ep.send(B, otherKey, { ...body, amount: 3n });
    expect(b2.replayed.every((r) => !r)).toBe(true);
    expect(b2.transfers[0]!.amount).toBe(3n);
    expect((await creditState(B, id)).posted).toBe(ep.credited(body) + ep.credited({ ...body, amount: 3n }));
    expect((await creditState(L, id)).posted).toBe(2n * ep.credited(body));
    // A's replays are unchanged by B.
    expect(sameBytes((await ep.send(L, sameKey, body)).bytes, a1.asReplayBytes)).toBe(true);
    // B cannot read A's transfer by id either.
    await expectRefused(B.getTransfer({ id: a1.transfers[0]!.id }), Code.NotFound, "transfer_not_found");
    // B's ledger balances on its own.
    expect((await clientFor(AdminService, server.url, "grpc", tenantB.adminKeySecret).verify({})).ok).toBe(true);
  });

  it("refuses keys that are too long, empty, not ASCII or with a space (printable ASCII without spaces)", async () => {
    const credit = await account("keys");
    const body: Body = { debit: "@world", credit, asset: "USD", amount: 1n };
    const before = await journalSize();
    const bad: [string, string][] = [
      ["x".repeat(256), "invalid_idempotency_key"],
      ["", "missing_idempotency_key"],
      ["clé-é", "invalid_idempotency_key"],
      ["ключ", "invalid_idempotency_key"],
      ["key with space", "invalid_idempotency_key"],
      ["tab\tkey", "invalid_idempotency_key"],
    ];
    for (const [key, reason] of bad) {
      const r = await expectRefused(ep.send(L, key, body), Code.InvalidArgument, reason);
      if (ep === batch) expect(r.error.rawMessage).toContain("transfers[0].idempotency_key");
      // The message states the rule README states: spaces are not printable here.
      if (reason === "invalid_idempotency_key") expect(r.error.rawMessage).toContain("must be 1-255 printable ASCII characters without spaces");
    }
    expect(await journalSize()).toBe(before);
    // 255 printable characters is the longest key accepted.
    const longest = "k".repeat(245) + Math.random().toString(36).slice(2, 12).padEnd(10, "0");
    expect(longest).toHaveLength(255);
    const out = await ep.send(L, longest, body);
    expect(out.transfers[0]!.idempotencyKey).toBe(longest);
  });
});

describe("across endpoints", () => {
  it("a key used by PostTransfer replays inside a PostTransfers batch, and a batch key replays on PostTransfer", async () => {
    const credit = await account("x-ep");
    const k1 = uniq("xe1");
    const k2 = uniq("xe2");
    const single1 = await L.postTransfer(item(k1, { debit: "@world", credit, asset: "USD", amount: 11n }));
    const b = await L.postTransfers({
      transfers: [item(k1, { debit: "@world", credit, asset: "USD", amount: 11n }), item(k2, { debit: "@world", credit, asset: "USD", amount: 12n })],
    });
    expect(b.results.map((r) => r.replayed)).toEqual([true, false]);
    expect(sameBytes(toBinary(TransferSchema, b.results[0]!.transfer!), toBinary(TransferSchema, single1.transfer!))).toBe(true);
    const single2 = await L.postTransfer(item(k2, { debit: "@world", credit, asset: "USD", amount: 12n }));
    expect(single2.replayed).toBe(true);
    expect(sameBytes(toBinary(TransferSchema, single2.transfer!), toBinary(TransferSchema, b.results[1]!.transfer!))).toBe(true);
    expect((await creditState(L, credit)).posted).toBe(23n);
    // A batch whose replayed item was changed is refused as a whole: its new item is not written.
    const k3 = uniq("xe3");
    await expectRefused(
      L.postTransfers({
        transfers: [item(k3, { debit: "@world", credit, asset: "USD", amount: 1n }), item(k1, { debit: "@world", credit, asset: "USD", amount: 99n })],
      }),
      Code.AlreadyExists,
      "idempotency_key_reused",
    );
    expect((await creditState(L, credit)).posted).toBe(23n);
    const r3 = await L.postTransfer(item(k3, { debit: "@world", credit, asset: "USD", amount: 1n }));
    expect(r3.replayed).toBe(false);
  });

  it("a replay returns the original response even after the transfer moved on", async () => {
    // Documented: the stored answer is the first response (like Stripe), not the transfer's current state.
    const payer = await account("mv-payer", 100n);
    const payee = await account("mv-payee");
    const key = uniq("mv");
    const first = await L.postTransfer(item(key, { debit: payer, credit: payee, asset: "USD", amount: 60n, pending: true }));
    expect(first.transfer?.status).toBe(TransferStatus.PENDING);
    await L.postPendingTransfer({ transferId: first.transfer!.id });
    const replay = await L.postTransfer(item(key, { debit: payer, credit: payee, asset: "USD", amount: 60n, pending: true }));
    expect(replay.replayed).toBe(true);
    expect(replay.transfer?.status).toBe(TransferStatus.PENDING);
    expect(sameBytes(toBinary(TransferSchema, replay.transfer!), toBinary(TransferSchema, first.transfer!))).toBe(true);
    // ...and never a second reservation.
    const b = (await L.getBalance({ accountId: payer, asset: "USD" })).balance!;
    expect([b.posted, b.pendingOut]).toEqual([40n, 0n]);
  });

  it("a replay after a partial post or a void is the first (pending) answer, on both endpoints", async () => {
    // The idempotency record keeps only what the transfer row loses when it settles.
    const payer = await account("mv2-payer", 100n);
    const payee = await account("mv2-payee");
    const body: Body = { debit: payer, credit: payee, asset: "USD", amount: 30n, pending: true };
    const [partKey, voidKey] = [uniq("mv2-part"), uniq("mv2-void")];
    const part = (await L.postTransfer(item(partKey, body))).transfer!;
    const voided = (await L.postTransfers({ transfers: [item(voidKey, body)] })).results[0]!.transfer!;
    await L.postPendingTransfer({ transferId: part.id, amount: 12n });
    await L.voidPendingTransfer({ transferId: voided.id });
    for (const [key, first] of [[partKey, part], [voidKey, voided]] as const) {
      for (const client of clients) {
        const one = await client.postTransfer(item(key, body));
        const many = (await client.postTransfers({ transfers: [item(key, body)] })).results[0]!;
        for (const again of [one, many]) {
          expect(again.replayed).toBe(true);
          expect(again.transfer!.status).toBe(TransferStatus.PENDING);
          expect(sameBytes(toBinary(TransferSchema, again.transfer!), toBinary(TransferSchema, first))).toBe(true);
        }
      }
    }
    // The rows themselves moved on, and nothing executed twice.
    expect((await L.getTransfer({ id: part.id })).transfer!.postedAmount).toBe(12n);
    expect((await L.getTransfer({ id: voided.id })).transfer!.status).toBe(TransferStatus.VOIDED);
    const b = (await L.getBalance({ accountId: payer, asset: "USD" })).balance!;
    expect([b.posted, b.pendingOut]).toEqual([88n, 0n]);
  });
});

describe("verify", () => {
  it("finds the books consistent after every row", async () => {
    const r = await admin.verify({});
    expect(r.discrepancies).toEqual([]);
    expect(r.ok).toBe(true);
  });
});
