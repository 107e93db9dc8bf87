/**
 * T14-lite: model-based testing with fast-check. Random sequences of ledger
 * commands run against a real server and against a pure BigInt reference
 * model; after every command the server must agree with the model exactly:
 * balances, journal pages, refusals, replays.
 *
 * Each run opens its own accounts (a fresh id prefix) on one shared server, so
 * runs, and fast-check's shrinking replays, never see each other's state.
 * Replay a failure with TALLY_SEED=<seed> (printed), plus the reported path.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { AdminService } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService, TransferSchema, TransferStatus } from "../gen/tally/ledger/v1/ledger_pb.js";
import type { Transfer } from "../gen/tally/ledger/v1/ledger_pb.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { Protocol, TestServer } from "./support/server.js";
import { refusalOf, seedFor, uniq } from "./support/ledger-kit.js";
import type { LedgerClient } from "./support/ledger-kit.js";

const ASSETS = ["USD", "VC"] as const;
type AssetCode = (typeof ASSETS)[number];
const SCALE: Record<AssetCode, number> = { USD: 6, VC: 0 };
const MAX_ACCOUNTS = 6;
const MODEL_PROTOCOLS: readonly Protocol[] = ["connect-binary", "connect-json", "grpc"];

// ---- the reference model ----------------------------------------------------

type Status = "PENDING" | "POSTED" | "VOIDED";
const STATUS: Record<Status, TransferStatus> = {
  PENDING: TransferStatus.PENDING,
  POSTED: TransferStatus.POSTED,
  VOIDED: TransferStatus.VOIDED,
};

interface MBalance {
  posted: bigint;
  pendingIn: bigint;
  pendingOut: bigint;
}

interface MEntry {
  readonly transferId: string;
  readonly counterparty: string;
  readonly asset: AssetCode;
  readonly amount: bigint;
  readonly status: Status;
  readonly balanceAfter: bigint;
}

interface MAccount {
  readonly id: string;
  readonly limit: bigint;
  readonly unlimited: boolean;
  locked: boolean;
  readonly balances: Map<AssetCode, MBalance>;
  /** Oldest first. */
  readonly entries: MEntry[];
}

interface MTransfer {
  readonly id: string;
  readonly debit: string;
  readonly credit: string;
  readonly asset: AssetCode;
  readonly amount: bigint;
  status: Status;
  postedAmount: bigint;
}

/** A request that executed: its key, its body, and the exact bytes of the transfer it returned. */
interface MRequest {
  readonly key: string;
  readonly body: Body;
  readonly transferBytes: Uint8Array;
}

interface Body {
  readonly debit: string;
  readonly credit: string;
  readonly asset: AssetCode;
  readonly amount: bigint;
  readonly pending: boolean;
}

/** The pure model: what the ledger must contain after the commands so far. */
interface Model {
  readonly prefix: string;
  /** accounts[0] is the run's bank: overdraft unlimited, the source of funds. */
  readonly accounts: MAccount[];
  readonly transfers: MTransfer[];
  readonly requests: MRequest[];
  keys: number;
}

interface Real {
  readonly clients: readonly LedgerClient[];
}

function bal(a: MAccount, asset: AssetCode): MBalance {
  let b = a.balances.get(asset);
  if (!b) {
    b = { posted: 0n, pendingIn: 0n, pendingOut: 0n };
    a.balances.set(asset, b);
  }
  return b;
}

function byId(m: Model, id: string): MAccount {
  return m.accounts.find((a) => a.id === id)!;
}

/** The model's answer to a transfer request: the refusal reason, or undefined when it executes. */
function predictTransfer(m: Model, body: Body): string | undefined {
  const d = byId(m, body.debit);
  if (d.locked) return "balance_locked";
  const b = bal(d, body.asset);
  if (!d.unlimited && b.posted - b.pendingOut - body.amount < -d.limit) return "insufficient_funds";
  return undefined;
}

/** Applies an executed transfer to the model. */
function applyTransfer(m: Model, body: Body, id: string): MTransfer {
  const d = byId(m, body.debit);
  const c = byId(m, body.credit);
  const db = bal(d, body.asset);
  const cb = bal(c, body.asset);
  const status: Status = body.pending ? "PENDING" : "POSTED";
  if (body.pending) {
    db.pendingOut += body.amount;
    cb.pendingIn += body.amount;
  } else {
    db.posted -= body.amount;
    cb.posted += body.amount;
  }
  d.entries.push({ transferId: id, counterparty: c.id, asset: body.asset, amount: -body.amount, status, balanceAfter: db.posted });
  c.entries.push({ transferId: id, counterparty: d.id, asset: body.asset, amount: body.amount, status, balanceAfter: cb.posted });
  const t: MTransfer = { id, debit: d.id, credit: c.id, asset: body.asset, amount: body.amount, status, postedAmount: body.pending ? 0n : body.amount };
  m.transfers.push(t);
  return t;
}

/** Settles a pending transfer in the model (post for `amount`, or void). */
function applySettle(m: Model, t: MTransfer, to: "POSTED" | "VOIDED", amount: bigint): void {
  const d = byId(m, t.debit);
  const c = byId(m, t.credit);
  const db = bal(d, t.asset);
  const cb = bal(c, t.asset);
  const moved = to === "POSTED" ? amount : 0n;
  db.posted -= moved;
  db.pendingOut -= t.amount;
  cb.posted += moved;
  cb.pendingIn -= t.amount;
  const entryAmount = to === "POSTED" ? amount : t.amount;
  d.entries.push({ transferId: t.id, counterparty: c.id, asset: t.asset, amount: -entryAmount, status: to, balanceAfter: db.posted });
  c.entries.push({ transferId: t.id, counterparty: d.id, asset: t.asset, amount: entryAmount, status: to, balanceAfter: cb.posted });
  t.status = to;
  t.postedAmount = moved;
}

// ---- checks against the server ----------------------------------------------

function describeRefusal(e: unknown): string {
  const r = refusalOf(e);
  return `${Code[r.code]}/${r.reason ?? "-"}`;
}

/** Calls the server and returns either the result or the refusal, never throwing on a refusal. */
async function outcome<T>(call: Promise<T>): Promise<{ ok: T } | { refused: string }> {
  try {
    return { ok: await call };
  } catch (e) {
    const refused = describeRefusal(e);
    count(stats.refusals, refused);
    return { refused };
  }
}

function expectTransferMatches(t: Transfer, mt: MTransfer, m: Model): void {
  expect(t.id).toBe(mt.id);
  expect([t.debitAccountId, t.creditAccountId, t.asset, t.amount]).toEqual([mt.debit, mt.credit, mt.asset, mt.amount]);
  expect(t.status).toBe(STATUS[mt.status]);
  expect(t.postedAmount).toBe(mt.postedAmount);
  expect(t.debitBalanceAfter).toBe(bal(byId(m, mt.debit), mt.asset).posted);
  expect(t.creditBalanceAfter).toBe(bal(byId(m, mt.credit), mt.asset).posted);
}

/**
 * The invariants, checked after every command: every balance of every account
 * equals the model (GetMany lists exactly the model's non-zero balances), no
 * balance is below its overdraft floor, and the run's books sum to zero.
 */
async function checkInvariants(m: Model, r: Real): Promise<void> {
  stats.checks++;
  const client = r.clients[0]!;
  const totals = new Map<string, bigint>();
  for (const a of m.accounts) {
    const { balances } = await client.getMany({ accountId: a.id });
    const expected = ASSETS.flatMap((asset) => {
      const b = a.balances.get(asset);
      return b && (b.posted !== 0n || b.pendingIn !== 0n || b.pendingOut !== 0n) ? [[asset, SCALE[asset], b.posted, b.pendingIn, b.pendingOut, b.posted - b.pendingOut, a.locked]] : [];
    });
    expect(
      balances.map((b) => [b.asset, b.scale, b.posted, b.pendingIn, b.pendingOut, b.available, b.locked]),
      `balances of ${a.id}`,
    ).toEqual(expected);
    for (const b of balances) {
      if (!a.unlimited) expect(b.available, `${a.id} ${b.asset} below its floor`).toBeGreaterThanOrEqual(-a.limit);
      totals.set(b.asset, (totals.get(b.asset) ?? 0n) + b.posted);
    }
  }
  for (const [asset, total] of totals) expect(total, `sum of ${asset} over the run's accounts`).toBe(0n);
}

// ---- commands -----------------------------------------------------------------

/** What the runs exercised, printed at the end so a too-weak generator shows. */
const stats = { commands: new Map<string, number>(), checks: 0, refusals: new Map<string, number>() };

function count(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

type Cmd = fc.AsyncCommand<Model, Real>;

function pick<T>(xs: readonly T[], i: number): T {
  return xs[i % xs.length]!;
}

class CreateAccount implements Cmd {
  constructor(
    readonly limit: bigint,
    readonly proto: number,
  ) {}
  check(m: Readonly<Model>): boolean {
    return m.accounts.length < MAX_ACCOUNTS;
  }
  async run(m: Model, r: Real): Promise<void> {
    count(stats.commands, String(this).split("(")[0]!);
    const id = `${m.prefix}-a${m.accounts.length}`;
    const { account } = await pick(r.clients, this.proto).createAccount({ id, overdraftLimit: this.limit });
    expect([account?.id, account?.overdraftLimit, account?.locked]).toEqual([id, this.limit, false]);
    m.accounts.push({ id, limit: this.limit, unlimited: false, locked: false, balances: new Map(), entries: [] });
    await checkInvariants(m, r);
  }
  toString(): string {
    return `CreateAccount(limit=${this.limit})`;
  }
}

/** A transfer (direct or pending hold) between two accounts; Fund is one from the bank. */
class Move implements Cmd {
  constructor(
    readonly label: "Fund" | "Transfer" | "PendingHold",
    readonly from: number,
    readonly to: number,
    readonly asset: AssetCode,
    readonly amount: bigint,
    readonly proto: number,
  ) {}
  check(m: Readonly<Model>): boolean {
    return m.accounts.length >= 2;
  }
  private body(m: Model): Body {
    const n = m.accounts.length;
    // Fund always debits the bank; the others pick any two distinct accounts.
    const from = this.label === "Fund" ? 0 : this.from % n;
    let to = this.label === "Fund" ? 1 + (this.to % (n - 1)) : this.to % n;
    if (to === from) to = (to + 1) % n;
    return { debit: m.accounts[from]!.id, credit: m.accounts[to]!.id, asset: this.asset, amount: this.amount, pending: this.label === "PendingHold" };
  }
  async run(m: Model, r: Real): Promise<void> {
    count(stats.commands, String(this).split("(")[0]!);
    const body = this.body(m);
    const key = `${m.prefix}-k${m.keys++}`;
    const expected = predictTransfer(m, body);
    const res = await outcome(
      pick(r.clients, this.proto).postTransfer({
        idempotencyKey: key,
        debitAccountId: body.debit,
        creditAccountId: body.credit,
        asset: body.asset,
        amount: body.amount,
        pending: body.pending,
      }),
    );
    if (expected !== undefined) {
      expect(res).toEqual({ refused: `FailedPrecondition/${expected}` });
    } else {
      if ("refused" in res) throw new Error(`${this}: expected success, got ${res.refused}`);
      expect(res.ok.replayed).toBe(false);
      const t = res.ok.transfer!;
      const mt = applyTransfer(m, body, t.id);
      expectTransferMatches(t, mt, m);
      m.requests.push({ key, body, transferBytes: toBinary(TransferSchema, t) });
    }
    await checkInvariants(m, r);
  }
  toString(): string {
    return `${this.label}(${this.from}->${this.to}, ${this.amount} ${this.asset})`;
  }
}

class Settle implements Cmd {
  constructor(
    readonly to: "POSTED" | "VOIDED",
    readonly which: number,
    /** 0n: the full amount; otherwise the amount asked for (may exceed the reservation). */
    readonly amount: bigint,
    readonly proto: number,
  ) {}
  check(m: Readonly<Model>): boolean {
    return m.transfers.length > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    count(stats.commands, String(this).split("(")[0]!);
    // Prefer pending transfers, but also hit posted and voided ones (retries, post-after-void).
    const pending = m.transfers.filter((t) => t.status === "PENDING");
    const t = pending.length > 0 && this.which % 4 !== 0 ? pick(pending, this.which) : pick(m.transfers, this.which);
    const client = pick(r.clients, this.proto);
    const res = await outcome<{ transfer?: Transfer }>(
      this.to === "POSTED" ? client.postPendingTransfer({ transferId: t.id, amount: this.amount }) : client.voidPendingTransfer({ transferId: t.id }),
    );
    const requested = this.to === "POSTED" ? (this.amount === 0n ? t.amount : this.amount) : t.amount;
    let expected: string | undefined;
    let changes = false;
    if (t.status !== "PENDING") {
      const sameAgain = t.status === this.to && (this.to === "VOIDED" || this.amount === 0n || this.amount === t.postedAmount);
      expected = sameAgain ? undefined : "FailedPrecondition/transfer_not_pending";
    } else if (requested > t.amount) {
      expected = "InvalidArgument/amount_exceeds_pending";
    } else if (this.to === "POSTED" && byId(m, t.debit).locked) {
      expected = "FailedPrecondition/balance_locked";
    } else {
      changes = true;
    }
    if (expected !== undefined) {
      expect(res).toEqual({ refused: expected });
    } else {
      if ("refused" in res) throw new Error(`${this} on ${t.status}: expected success, got ${res.refused}`);
      if (changes) applySettle(m, t, this.to, requested);
      const got = res.ok.transfer!;
      expect(got.status).toBe(STATUS[t.status]);
      expect(got.postedAmount).toBe(t.postedAmount);
      expect([got.id, got.amount]).toEqual([t.id, t.amount]);
      if (changes) expectTransferMatches(got, t, m);
    }
    await checkInvariants(m, r);
  }
  toString(): string {
    return `${this.to === "POSTED" ? "PostPending" : "VoidPending"}(#${this.which}, ${this.amount})`;
  }
}

class SetLock implements Cmd {
  constructor(
    readonly locked: boolean,
    readonly which: number,
  ) {}
  check(m: Readonly<Model>): boolean {
    return m.accounts.length >= 2;
  }
  async run(m: Model, r: Real): Promise<void> {
    count(stats.commands, String(this).split("(")[0]!);
    // Never the bank: funding must stay possible.
    const a = m.accounts[1 + (this.which % (m.accounts.length - 1))]!;
    const c = r.clients[0]!;
    const { account } = this.locked ? await c.lockBalance({ accountId: a.id }) : await c.unlockBalance({ accountId: a.id });
    a.locked = this.locked;
    expect(account?.locked).toBe(this.locked);
    expect(account?.lockedAt !== undefined).toBe(this.locked);
    await checkInvariants(m, r);
  }
  toString(): string {
    return `${this.locked ? "Lock" : "Unlock"}(#${this.which})`;
  }
}

class Replay implements Cmd {
  constructor(
    readonly which: number,
    readonly different: boolean,
    readonly proto: number,
  ) {}
  check(m: Readonly<Model>): boolean {
    return m.requests.length > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    count(stats.commands, String(this).split("(")[0]!);
    const req = pick(m.requests, this.which);
    const body = this.different ? { ...req.body, amount: req.body.amount + 1n } : req.body;
    const res = await outcome(
      pick(r.clients, this.proto).postTransfer({
        idempotencyKey: req.key,
        debitAccountId: body.debit,
        creditAccountId: body.credit,
        asset: body.asset,
        amount: body.amount,
        pending: body.pending,
      }),
    );
    if (this.different) {
      expect(res).toEqual({ refused: "AlreadyExists/idempotency_key_reused" });
    } else {
      if ("refused" in res) throw new Error(`${this}: expected a replay, got ${res.refused}`);
      expect(res.ok.replayed).toBe(true);
      // The replay is the first response, byte for byte, even if the transfer has moved on since.
      expect(Buffer.from(toBinary(TransferSchema, res.ok.transfer!)).equals(Buffer.from(req.transferBytes))).toBe(true);
    }
    await checkInvariants(m, r);
  }
  toString(): string {
    return `Replay(#${this.which}, ${this.different ? "different body" : "same body"})`;
  }
}

class ReadBalance implements Cmd {
  constructor(
    readonly which: number,
    readonly asset: AssetCode,
    readonly proto: number,
  ) {}
  check(m: Readonly<Model>): boolean {
    return m.accounts.length > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    count(stats.commands, String(this).split("(")[0]!);
    const a = pick(m.accounts, this.which);
    const { balance } = await pick(r.clients, this.proto).getBalance({ accountId: a.id, asset: this.asset });
    const b = a.balances.get(this.asset) ?? { posted: 0n, pendingIn: 0n, pendingOut: 0n };
    expect([balance?.posted, balance?.pendingIn, balance?.pendingOut, balance?.available, balance?.scale, balance?.locked]).toEqual([
      b.posted,
      b.pendingIn,
      b.pendingOut,
      b.posted - b.pendingOut,
      SCALE[this.asset],
      a.locked,
    ]);
    // No history in this asset: the balance has no sequence yet.
    if (!a.entries.some((e) => e.asset === this.asset)) expect(balance?.sequence).toBe(0n);
  }
  toString(): string {
    return `ReadBalance(#${this.which}, ${this.asset})`;
  }
}

class ListTransactions implements Cmd {
  constructor(
    readonly which: number,
    readonly pageSize: number,
    readonly asset: AssetCode | "",
    readonly proto: number,
  ) {}
  check(m: Readonly<Model>): boolean {
    return m.accounts.length > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    count(stats.commands, String(this).split("(")[0]!);
    const a = pick(m.accounts, this.which);
    const client = pick(r.clients, this.proto);
    const got: [string, string, string, bigint, TransferStatus, bigint, bigint][] = [];
    let pageToken = "";
    for (let pages = 0; ; pages++) {
      expect(pages).toBeLessThan(1000);
      const res = await client.listTransactions({ accountId: a.id, asset: this.asset, pageSize: this.pageSize, pageToken });
      expect(res.transactions.length).toBeLessThanOrEqual(this.pageSize);
      for (const t of res.transactions) got.push([t.transferId, t.counterpartyAccountId, t.asset, t.amount, t.status, t.balanceAfter, t.sequence]);
      if (res.nextPageToken === "") break;
      // A non-final page is full.
      expect(res.transactions).toHaveLength(this.pageSize);
      pageToken = res.nextPageToken;
    }
    // Newest first, strictly decreasing sequence: each entry exactly once.
    for (let i = 1; i < got.length; i++) expect(got[i - 1]![6] > got[i]![6]).toBe(true);
    const expected = [...a.entries]
      .reverse()
      .filter((e) => this.asset === "" || e.asset === this.asset)
      .map((e) => [e.transferId, e.counterparty, e.asset, e.amount, STATUS[e.status], e.balanceAfter]);
    expect(got.map((g) => g.slice(0, 6))).toEqual(expected);
  }
  toString(): string {
    return `ListTransactions(#${this.which}, page=${this.pageSize}, asset=${this.asset || "*"})`;
  }
}

const nat = fc.nat({ max: 1000 });
const proto = fc.nat({ max: MODEL_PROTOCOLS.length - 1 });
const asset = fc.constantFrom(...ASSETS);
const commands = [
  fc.tuple(fc.constantFrom(0n, 0n, 100n, 1000n), proto).map(([l, p]) => new CreateAccount(l, p)),
  fc.tuple(nat, asset, fc.bigInt({ min: 1n, max: 2000n }), proto).map(([to, a, amt, p]) => new Move("Fund", 0, to, a, amt, p)),
  fc.tuple(nat, nat, asset, fc.bigInt({ min: 1n, max: 600n }), proto).map(([f, t, a, amt, p]) => new Move("Transfer", f, t, a, amt, p)),
  fc.tuple(nat, nat, asset, fc.bigInt({ min: 1n, max: 600n }), proto).map(([f, t, a, amt, p]) => new Move("PendingHold", f, t, a, amt, p)),
  fc.tuple(nat, fc.oneof(fc.constant(0n), fc.bigInt({ min: 1n, max: 700n })), proto).map(([w, amt, p]) => new Settle("POSTED", w, amt, p)),
  fc.tuple(nat, proto).map(([w, p]) => new Settle("VOIDED", w, 0n, p)),
  fc.tuple(fc.boolean(), nat).map(([l, w]) => new SetLock(l, w)),
  fc.tuple(nat, fc.boolean(), proto).map(([w, d, p]) => new Replay(w, d, p)),
  fc.tuple(nat, asset, proto).map(([w, a, p]) => new ReadBalance(w, a, p)),
  fc.tuple(nat, fc.integer({ min: 1, max: 7 }), fc.constantFrom<AssetCode | "">("", ...ASSETS), proto).map(([w, s, a, p]) => new ListTransactions(w, s, a, p)),
];

// ---- the property -------------------------------------------------------------

let server: TestServer;
let clients: LedgerClient[];

beforeAll(async () => {
  server = await startTestServer();
  clients = MODEL_PROTOCOLS.map((p) => clientFor(LedgerService, server.url, p, server.adminKey));
});
afterAll(async () => {
  await server?.close();
});

/** A fresh run: its own bank and one account, and a model that knows exactly those. */
async function setup(): Promise<{ model: Model; real: Real }> {
  const prefix = uniq("mb");
  const bank = `${prefix}-bank`;
  const first = `${prefix}-a1`;
  await clients[0]!.createAccount({ id: bank, overdraftUnlimited: true });
  await clients[0]!.createAccount({ id: first });
  const mk = (id: string, unlimited: boolean): MAccount => ({ id, limit: 0n, unlimited, locked: false, balances: new Map(), entries: [] });
  return {
    model: { prefix, accounts: [mk(bank, true), mk(first, false)], transfers: [], requests: [], keys: 0 },
    real: { clients },
  };
}

describe("T14-lite: the server behaves as the reference model", () => {
  it("random command sequences keep server and model equal", async () => {
    const seed = seedFor("model-based");
    const started = performance.now();
    let runs = 0;
    try {
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, { maxCommands: 40, size: "max" }), async (cmds) => {
          runs++;
          await fc.asyncModelRun(setup, cmds);
        }),
        { numRuns: Number(process.env.TALLY_MB_RUNS ?? 30), seed, endOnFailure: false, interruptAfterTimeLimit: 50_000, markInterruptAsFailure: false },
      );
    } catch (e) {
      console.log(`[model-based] FAILED with seed=${seed}; fast-check's report below has the path and the shrunk commands`);
      throw e;
    }
    console.log(
      `[model-based] seed=${seed} ${runs} runs in ${((performance.now() - started) / 1000).toFixed(1)} s; invariant checks ${stats.checks}; ` +
        `commands ${JSON.stringify(Object.fromEntries(stats.commands))}; refusals ${JSON.stringify(Object.fromEntries(stats.refusals))}`,
    );
    // The books of the whole tenant still agree with the journal.
    const v = await clientFor(AdminService, server.url, "connect-binary", server.adminKey).verify({});
    expect(v.discrepancies).toEqual([]);
    expect(v.ok).toBe(true);
  });
});
