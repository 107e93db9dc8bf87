/**
 * Issue 3's criterion: the same balance, read through the native API, all four
 * dialects and both streams (Triport SSE, native WatchBalance), agrees after a
 * random sequence of transfers.
 *
 * One real server, one account that every dialect can read at once:
 * - native: LedgerService.GetBalance (admin key), `posted` and `available`;
 * - Triport: session cookie with `sub` = the account, GET /v1/balance `amount_micro`
 *   (posted micro-USD) and GET /v1/balance/events;
 * - 3PLGuys: a `3plguys_api_key` (scope `invoices`) bound to the account,
 *   GET /v0/balance in cents = floor(posted / 10^4), and the transactions list,
 *   whose amounts are the changes of that floored running balance and sum to it;
 * - Blacksheep: an Ed25519 key bound to the account, the posted USD `value`
 *   (micro, decimals 6; USD is left out while the posted balance is 0);
 * - Frontier: a `frontier_client` of the account's organization (metadata `org_id`);
 *   metadata `balance_currency: USD` makes it report USD in micro-dollars, and its
 *   `amount` is the posted balance, like every other dialect's.
 * Every value is checked against an exact BigInt model, at several points during the
 * sequence and at the end, after both streams have seen the latest journal sequence.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@connectrpc/connect";
import { AdminService } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService, TransferStatus } from "../gen/tally/ledger/v1/ledger_pb.js";
import { allTransactions } from "./support/ledger-kit.js";
import { seededRandom } from "./support/seeded-random.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";
import {
  blacksheepBalances,
  blacksheepKey,
  frontierBalance,
  intField,
  threePlGuysBalance,
  threePlGuysTransactionAmounts,
  triportBalance,
  triportCookie,
  TriportEvents,
} from "./support/dialect-clients.js";
import type { SseFrame } from "./support/dialect-clients.js";

// A UUID: the account is also a Frontier billing account (org_id metadata), whose ids are UUIDs.
const ACCOUNT = "6f9e2c1a-3b4d-4e5f-8a7b-9c0d1e2f3a4b";
const SINK = "agree-sink";
const ORG = "org-agree";
const STEPS = 60;
const CHECKPOINTS = new Set([5, 15, 30, 45, STEPS]);
const TWO_53 = 2n ** 53n;

const rnd = seededRandom();

let server: TestServer;
let ledger: Client<typeof LedgerService>;
let admin: Client<typeof AdminService>;
let cookie = "";
let tpgToken = "";
let frontier = { id: "", secret: "" };
/** The signing key; its id is the one CreateCredential generates. */
let bsKey = blacksheepKey("");

/** floor(a / b) for b > 0 (bigint `/` truncates toward zero). */
function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n ? q - 1n : q;
}
const cents = (micro: bigint) => floorDiv(micro, 10_000n);

/** The expected state of ACCOUNT's USD balance. */
const model = {
  posted: 0n,
  pendingIn: 0n,
  pendingOut: 0n,
  /** 3PLGuys transaction amounts (cents) of every posted movement, oldest first. */
  tpgAmounts: [] as bigint[],
};
/** Open pending transfers touching ACCOUNT: id -> direction and reserved amount. */
const open = new Map<string, { dir: "in" | "out"; amount: bigint }>();

/** A posted movement of `delta` micro-USD on ACCOUNT. */
function movePosted(delta: bigint): void {
  const before = model.posted;
  model.posted += delta;
  model.tpgAmounts.push(cents(model.posted) - cents(before));
}

/** The WatchBalance view: overwritten by the snapshot, then every POSTED entry's delta applied. */
const watch = { posted: undefined as bigint | undefined, available: undefined as bigint | undefined, seq: -1n, problems: [] as string[] };
/** The Triport SSE view: overwritten by `snapshot`, then `delta_micro` applied. */
const sse = { amount: undefined as bigint | undefined, lastId: -1n, frames: 0, problems: [] as string[] };

let watchCtl: AbortController;
let watchDone: Promise<void>;
let events: TriportEvents;

function onSse(f: SseFrame): void {
  sse.frames++;
  if (f.event === "snapshot") {
    sse.amount = intField(f.data, "amount_micro");
  } else if (f.event === "balance_credit" || f.event === "balance_debit") {
    if (sse.amount === undefined) sse.problems.push(`frame ${f.id} before any snapshot`);
    const delta = intField(f.data, "delta_micro");
    if ((f.event === "balance_credit") !== delta > 0n) sse.problems.push(`frame ${f.id}: ${f.event} with delta ${delta}`);
    sse.amount = (sse.amount ?? 0n) + delta;
    const nb = intField(f.data, "new_balance_micro");
    if (nb !== sse.amount) sse.problems.push(`frame ${f.id}: new_balance_micro ${nb} but snapshot + deltas = ${sse.amount}`);
    if (intField(f.data, "entry_id") !== f.id) sse.problems.push(`frame ${f.id}: entry_id differs from id`);
  } else {
    sse.problems.push(`unexpected event ${JSON.stringify(f.event)}`);
  }
  if (f.id < sse.lastId) sse.problems.push(`frame id ${f.id} after ${sse.lastId}`);
  sse.lastId = f.id;
}

function startWatch(): void {
  watchCtl = new AbortController();
  const stream = ledger.watchBalance({ accountId: ACCOUNT, asset: "USD" }, { signal: watchCtl.signal });
  watchDone = (async () => {
    for await (const m of stream) {
      if (m.event.case === "snapshot") {
        const b = m.event.value.balances.find((x) => x.asset === "USD");
        if (!b) {
          watch.problems.push("snapshot without a USD balance");
          continue;
        }
        watch.posted = b.posted;
        watch.available = b.available;
        watch.seq = m.event.value.sequence;
      } else if (m.event.case === "change") {
        const ch = m.event.value;
        const t = ch.transaction;
        if (watch.posted === undefined) watch.problems.push(`change ${ch.sequence} before the snapshot`);
        if (t?.status === TransferStatus.POSTED) watch.posted = (watch.posted ?? 0n) + ch.delta;
        if (ch.balance?.posted !== watch.posted) watch.problems.push(`change ${ch.sequence}: balance.posted ${ch.balance?.posted} but snapshot + deltas = ${watch.posted}`);
        watch.available = ch.balance?.available;
        if (ch.sequence <= watch.seq) watch.problems.push(`change ${ch.sequence} after ${watch.seq}`);
        watch.seq = ch.sequence;
      }
    }
  })().catch((e: unknown) => {
    if (!watchCtl.signal.aborted) watch.problems.push(`stream failed: ${String(e)}`);
  });
}

async function until(what: () => string | undefined, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const waiting = what();
    if (waiting === undefined) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${waiting}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

beforeAll(async () => {
  console.log(`dialects-agree seed=${rnd.seed} (replay with TALLY_TEST_SEED=${rnd.seed})`);
  server = await startTestServer(); // every dialect on
  ledger = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
  admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);

  // One account for all four dialects: org_id for Frontier, USD as Frontier's currency,
  // and an unlimited overdraft so the balance can go below zero (3PLGuys floors negatives).
  await ledger.createAccount({ id: ACCOUNT, overdraftUnlimited: true, metadata: { org_id: ORG, balance_currency: "USD" } });
  await ledger.createAccount({ id: SINK });

  const tk = await admin.createCredential({ kind: "triport_session_key", label: "agree" });
  cookie = triportCookie(tk.secret, tk.credential!.id, ACCOUNT);
  tpgToken = (await admin.createCredential({ kind: "3plguys_api_key", accountId: ACCOUNT, scopes: ["invoices"], label: "agree" })).secret;
  const bs = await admin.createCredential({ kind: "blacksheep_public_key", accountId: ACCOUNT, publicKey: bsKey.raw });
  bsKey = { ...bsKey, id: bs.credential!.id };
  const fc = await admin.createCredential({ kind: "frontier_client", orgId: ORG, label: "agree" });
  frontier = { id: fc.credential!.id, secret: fc.secret };

  // Both streams open before the first write, and have their snapshot.
  events = await TriportEvents.open(server.url, cookie, onSse);
  startWatch();
  await until(() => (sse.amount === undefined ? "SSE snapshot" : watch.posted === undefined ? "WatchBalance snapshot" : undefined));
  expect([sse.amount, watch.posted]).toEqual([0n, 0n]);
});

afterAll(async () => {
  events?.close();
  watchCtl?.abort();
  await watchDone;
  await server?.close();
});

/** A random positive amount in micro-USD: sub-cent, whole cents, odd mid-size, or large. */
function randomAmount(): bigint {
  const r = rnd.next();
  if (r < 0.3) return BigInt(rnd.int(1, 99_999)); // under 10 cents, rarely whole
  if (r < 0.55) return BigInt(rnd.int(1, 500_000)) * 10_000n; // whole cents up to $5,000
  if (r < 0.85) return BigInt(rnd.int(1, 2 ** 31)) * BigInt(rnd.int(1, 1000)) + BigInt(rnd.int(0, 9999)); // up to ~$2M, odd micros
  return BigInt(rnd.int(1, 4000)) * 10n ** 12n + BigInt(rnd.int(0, 2 ** 30)); // up to ~$4B
}

let step = 0;
/** What each step did, for the failure message. */
const trace: string[] = [];
/** One transfer per step at most, on a fresh server: the step names it. */
const key = () => `agree-${step}`;

async function credit(amount: bigint, pending: boolean): Promise<void> {
  const r = await ledger.postTransfer({ idempotencyKey: key(), debitAccountId: "@world", creditAccountId: ACCOUNT, asset: "USD", amount, kind: "payment", note: `credit ${step}`, pending });
  if (pending) {
    open.set(r.transfer!.id, { dir: "in", amount });
    model.pendingIn += amount;
  } else movePosted(amount);
}

async function debit(amount: bigint, pending: boolean): Promise<void> {
  const r = await ledger.postTransfer({ idempotencyKey: key(), debitAccountId: ACCOUNT, creditAccountId: SINK, asset: "USD", amount, kind: "charge", note: `debit ${step}`, pending });
  if (pending) {
    open.set(r.transfer!.id, { dir: "out", amount });
    model.pendingOut += amount;
  } else movePosted(-amount);
}

/** Settles (fully or partly) or voids one open pending transfer. */
async function resolvePending(): Promise<string> {
  const ids = [...open.keys()];
  const id = rnd.pick(ids);
  const p = open.get(id)!;
  open.delete(id);
  if (p.dir === "in") model.pendingIn -= p.amount;
  else model.pendingOut -= p.amount;
  const r = rnd.next();
  if (r < 0.3) {
    await ledger.voidPendingTransfer({ transferId: id });
    return `void ${p.dir} ${p.amount}`;
  }
  // A partial settlement posts less and releases the whole reservation.
  const amount = r < 0.65 ? 0n : BigInt(rnd.int(1, 2 ** 31)) % p.amount + 1n;
  const res = await ledger.postPendingTransfer({ transferId: id, amount });
  const moved = amount === 0n ? p.amount : amount;
  expect(res.transfer?.postedAmount).toBe(moved);
  movePosted(p.dir === "in" ? moved : -moved);
  return `post ${p.dir} ${moved}${amount === 0n ? "" : ` of ${p.amount}`}`;
}

/** One random write; a few steps are steered so the run crosses zero and 2^53. */
async function randomStep(): Promise<string> {
  if (step === 5) {
    // Below zero with a sub-cent remainder right before a checkpoint: floor, not truncation, for 3PLGuys.
    const amount = (model.posted > 0n ? model.posted : 0n) + BigInt(rnd.int(1, 99_999_999));
    await debit(amount, false);
    return `debit ${amount} (to below zero)`;
  }
  if (step === 15 || step === 45) {
    // Above 2^53 micro-USD (~$9.007B) right before a checkpoint.
    const need = TWO_53 + 1n - model.posted;
    const amount = (need > 0n ? need : 1n) + BigInt(rnd.int(1, 2 ** 30));
    await credit(amount, false);
    return `credit ${amount} (to above 2^53)`;
  }
  if (open.size > 0 && rnd.next() < 0.3) return resolvePending();
  const amount = randomAmount();
  const pending = rnd.next() < 0.25;
  const dir = rnd.next() < 0.55 ? "credit" : "debit";
  await (dir === "credit" ? credit(amount, pending) : debit(amount, pending));
  return `${pending ? "pending " : ""}${dir} ${amount}`;
}

/** Reads every view of the balance and compares each with the model. */
async function readAndCompare(label: string): Promise<void> {
  const available = model.posted - model.pendingOut;

  // Native: posted, the pending totals and available.
  const nb = (await ledger.getBalance({ accountId: ACCOUNT, asset: "USD" })).balance!;
  // The newest posted entry of the account: the last frame the Triport stream must show.
  const journal = await allTransactions(ledger, ACCOUNT, { asset: "USD" });
  const lastPosted = journal.find((t) => t.status === TransferStatus.POSTED)?.sequence ?? 0n;

  // Both streams caught up with the journal.
  await until(() => {
    events.check();
    if (watch.seq < nb.sequence) return `WatchBalance at ${watch.seq}, journal at ${nb.sequence}`;
    if (sse.lastId < lastPosted) return `SSE at ${sse.lastId}, last posted entry ${lastPosted}`;
    return undefined;
  });

  const [triport, tpg, tpgAmounts, bs, fr] = await Promise.all([
    triportBalance(server.url, cookie),
    threePlGuysBalance(server.url, tpgToken),
    threePlGuysTransactionAmounts(server.url, tpgToken, rnd.int(1, 50)),
    blacksheepBalances(server.url, bsKey),
    frontierBalance(server.url, frontier.id, frontier.secret, ORG, ACCOUNT),
  ]);
  const bsUsd = bs.get("USD");
  if (bsUsd) expect(bsUsd.decimals).toBe(6);
  expect(fr.currency).toBe("USD");

  const got = {
    nativePosted: nb.posted,
    nativePendingOut: nb.pendingOut,
    nativePendingIn: nb.pendingIn,
    nativeAvailable: nb.available,
    journalPostedSum: journal.filter((t) => t.status === TransferStatus.POSTED).reduce((s, t) => s + t.amount, 0n),
    triportAmountMicro: triport,
    sseView: sse.amount,
    watchView: watch.posted,
    watchAvailable: watch.available,
    blacksheepValue: bsUsd?.value ?? 0n, // USD is not listed while its posted balance is 0
    frontierAmount: fr.amount,
    threePlGuysBalanceCents: tpg,
    threePlGuysSumCents: tpgAmounts.reduce((s, a) => s + a, 0n),
    threePlGuysTransactions: tpgAmounts,
  };
  const want = {
    nativePosted: model.posted,
    nativePendingOut: model.pendingOut,
    nativePendingIn: model.pendingIn,
    nativeAvailable: available,
    journalPostedSum: model.posted,
    triportAmountMicro: model.posted,
    sseView: model.posted,
    watchView: model.posted,
    watchAvailable: available,
    blacksheepValue: model.posted,
    frontierAmount: model.posted, // Frontier's amount is the posted balance, like the others
    threePlGuysBalanceCents: cents(model.posted),
    threePlGuysSumCents: cents(model.posted),
    threePlGuysTransactions: [...model.tpgAmounts].reverse(), // newest first
  };
  console.log(
    `[${label}] posted=${model.posted} available=${available} pendingOut=${model.pendingOut} cents=${cents(model.posted)} ` +
      `>2^53=${model.posted > TWO_53} open=${open.size} tpgTxns=${model.tpgAmounts.length} sseFrames=${sse.frames}`,
  );
  expect(got, `${label} (seed=${rnd.seed}; steps: ${trace.join("; ")})`).toEqual(want);
  expect(sse.problems, "SSE view").toEqual([]);
  expect(watch.problems, "WatchBalance view").toEqual([]);
  if (bsUsd === undefined) expect(model.posted).toBe(0n);
}

describe("the same balance through native, Triport, 3PLGuys, Blacksheep, Frontier, SSE and WatchBalance", () => {
  it("agrees exactly with the model at checkpoints during and after a seeded random sequence of transfers", async () => {
    await readAndCompare("start");
    let above53 = false;
    let belowZero = false;
    let pendingSeen = false;
    for (step = 1; step <= STEPS; step++) {
      trace.push(`${step}: ${await randomStep()}`);
      belowZero ||= model.posted < 0n;
      pendingSeen ||= open.size > 0;
      if (CHECKPOINTS.has(step)) {
        above53 ||= model.posted > TWO_53;
        await readAndCompare(`after step ${step}`);
      }
    }
    // The run really covered what it claims to.
    expect({ above53, belowZero, pendingSeen }).toEqual({ above53: true, belowZero: true, pendingSeen: true });
  }, 30_000);
});
