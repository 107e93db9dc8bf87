/**
 * Property tests of the draw-down (fast-check) against a small BigInt
 * reference model written independently of src/domain/credits/rules.ts:
 * random schedules of overlapping segments, random priorities and kinds, and
 * usages at random instants (often exactly on segment edges, in any order).
 *
 * 1. Through a real server over SQLite: every usage's draws and remainder
 *    equal the model's; balances at random instants equal the model's; the
 *    ledger conserves (granted = used + expired + remaining) and no segment
 *    ever goes below zero.
 * 2. The pure rules alone, 10,000 runs, for the T12 figure.
 *
 * Replay a failure with TALLY_SEED=<seed> (printed).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import type { Client } from "@connectrpc/connect";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { CreditService } from "../gen/tally/credits/v1/credits_pb.js";
import { timestampFromMicros } from "../src/services/convert.js";
import { balanceAt, dueClosings, ledgerAt, planDrawDown } from "../src/domain/credits/rules.js";
import type { CreditBalance, CreditEntry } from "../src/domain/credits/model.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";
import { secondFrom, seedFor, uniq } from "./support/ledger-kit.js";

// ---- the reference model ------------------------------------------------------

/** Times are whole "days" from BASE, so usages often land exactly on an edge. */
const BASE = 1_900_000_000_000_000n;
const DAY = 86_400_000_000n;
const at = (day: number) => BASE + BigInt(day) * DAY;

type Kind = "PREPAID" | "POSTPAID" | "CREDIT";
interface GenSegment {
  start: number;
  len: number;
  amount: bigint;
}
interface GenBalance {
  kind: Kind;
  priority: number;
  segments: GenSegment[];
}
interface GenUsage {
  day: number;
  /** Some usages fall a microsecond before an instant, to probe exclusive ends. */
  minusOne: boolean;
  amount: bigint;
}

interface MSegment {
  balance: number;
  index: number;
  priority: number;
  start: bigint;
  end: bigint;
  amount: bigint;
  /** Deductions as [time, amount]. */
  draws: [bigint, bigint][];
}

/** The draw-down order, restated: priority, soonest expiry, oldest start, creation order, schedule order. */
/** A usage of the service period [t, end): drawn from what is in effect at t, dated end (at most the segment's end). */
function modelUse(segs: MSegment[], t: bigint, amount: bigint, end: bigint): { draws: [number, number, bigint][]; uncovered: bigint } {
  const left = (s: MSegment) => s.amount - s.draws.reduce((a, [, x]) => a + x, 0n);
  const active = segs.filter((s) => s.start <= t && t < s.end && left(s) > 0n);
  active.sort((a, b) =>
    a.priority !== b.priority
      ? a.priority - b.priority
      : a.end !== b.end
        ? (a.end < b.end ? -1 : 1)
        : a.start !== b.start
          ? (a.start < b.start ? -1 : 1)
          : a.balance !== b.balance
            ? a.balance - b.balance
            : a.index - b.index,
  );
  let rest = amount;
  const draws: [number, number, bigint][] = [];
  for (const s of active) {
    if (rest === 0n) break;
    const l = left(s);
    const take = l < rest ? l : rest;
    s.draws.push([end < s.end ? end : s.end, take]);
    draws.push([s.balance, s.index, take]);
    rest -= take;
  }
  return { draws, uncovered: rest };
}

/** Balance at t: active segments only, deductions dated at or before t. */
function modelBalanceAt(segs: MSegment[], balance: number, t: bigint): bigint {
  let total = 0n;
  for (const s of segs) {
    if (s.balance !== balance || !(s.start <= t && t < s.end)) continue;
    const v = s.amount - s.draws.filter(([when]) => when <= t).reduce((a, [, x]) => a + x, 0n);
    total += v > 0n ? v : 0n;
  }
  return total;
}

const genBalance = fc.record({
  kind: fc.constantFrom<Kind>("PREPAID", "POSTPAID", "CREDIT"),
  priority: fc.integer({ min: 1, max: 3 }),
  segments: fc.array(
    fc.record({ start: fc.integer({ min: 0, max: 12 }), len: fc.integer({ min: 1, max: 8 }), amount: fc.bigInt({ min: 1n, max: 100n }) }),
    { minLength: 1, maxLength: 3 },
  ),
});
const genUsage = fc.record({ day: fc.integer({ min: 0, max: 22 }), minusOne: fc.boolean(), amount: fc.bigInt({ min: 1n, max: 150n }) });
const genScenario = fc.record({
  balances: fc.array(genBalance, { minLength: 1, maxLength: 5 }),
  usages: fc.array(genUsage, { minLength: 1, maxLength: 8 }),
  probes: fc.array(fc.integer({ min: 0, max: 22 }), { minLength: 1, maxLength: 3 }),
});

const usageTime = (u: GenUsage) => at(u.day) - (u.minusOne ? 1n : 0n);

function modelSegments(balances: GenBalance[]): MSegment[] {
  return balances.flatMap((b, bi) =>
    b.segments.map((s, index) => ({ balance: bi, index, priority: b.priority, start: at(s.start), end: at(s.start + s.len), amount: s.amount, draws: [] })),
  );
}

// ---- 1. through the server -----------------------------------------------------

let server: TestServer;
let C: Client<typeof CreditService>;
let L: Client<typeof LedgerService>;

beforeAll(async () => {
  server = await startTestServer({ dialects: [] });
  C = clientFor(CreditService, server.url, "connect-binary", server.adminKey);
  L = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
});
afterAll(async () => {
  await server?.close();
});

describe("draw-down against the reference model", () => {
  it("agrees on every draw, remainder and balance; conserves; never goes negative", { timeout: 120_000 }, async () => {
    const seed = seedFor("credits-property");
    await fc.assert(
      fc.asyncProperty(genScenario, async (sc) => {
        const cust = uniq("pc");
        await L.createAccount({ id: cust });
        const made: { id: string; segIds: string[] }[] = [];
        for (const b of sc.balances) {
          const balance = {
            customerId: cust,
            priority: BigInt(b.priority),
            scheduleItems: b.segments.map((s) => ({
              amount: s.amount,
              startingAt: timestampFromMicros(at(s.start)),
              endingBefore: timestampFromMicros(at(s.start + s.len)),
            })),
          };
          const r = b.kind === "CREDIT" ? (await C.createCredit({ balance })).credit! : (await C.createCommit({ type: b.kind, balance })).commit!;
          made.push({ id: r.id, segIds: r.accessSchedule!.scheduleItems.map((s) => s.id) });
        }
        const model = modelSegments(sc.balances);
        for (const u of sc.usages) {
          const t = usageTime(u);
          const expected = modelUse(model, t, u.amount, t + 1_000_000n);
          const got = await C.recordUsage({ usageId: uniq("pu"), customerId: cust, amount: u.amount, ...secondFrom(timestampFromMicros(t)) });
          expect(got.draws.map((d) => [d.balanceId, d.segmentId, d.amount])).toEqual(
            expected.draws.map(([bi, si, amount]) => [made[bi]!.id, made[bi]!.segIds[si]!, amount]),
          );
          expect(got.uncovered).toBe(expected.uncovered);
        }
        for (const day of [...sc.probes, 30]) {
          const t = at(day);
          const list = await C.listBalances({ customerId: cust, includeBalance: true, includeLedgers: true, balanceAt: timestampFromMicros(t) });
          expect(list.balances).toHaveLength(made.length);
          for (const b of list.balances) {
            const bi = made.findIndex((m) => m.id === b.id);
            expect(b.balance).toBe(modelBalanceAt(model, bi, t));
            for (const [si, segId] of made[bi]!.segIds.entries()) {
              const ms = model.find((s) => s.balance === bi && s.index === si)!;
              const entries = b.ledger.filter((e) => e.segmentId === segId);
              const granted = entries.filter((e) => e.type.endsWith("_SEGMENT_START") || e.type.endsWith("_INITIAL_BALANCE")).reduce((a, e) => a + e.amount, 0n);
              const used = -entries.filter((e) => e.type.endsWith("_AUTOMATED_INVOICE_DEDUCTION")).reduce((a, e) => a + e.amount, 0n);
              // A postpaid segment that ended is trued up (POSTPAID_COMMIT_TRUEUP), the others expire.
              const expired = -entries.filter((e) => e.type.endsWith("_EXPIRATION") || e.type === "POSTPAID_COMMIT_TRUEUP").reduce((a, e) => a + e.amount, 0n);
              const modelUsed = ms.draws.reduce((a, [, x]) => a + x, 0n);
              const remaining = ms.end <= t ? 0n : ms.amount - modelUsed;
              expect(granted).toBe(ms.amount);
              expect(used).toBe(modelUsed);
              // Conservation, and no segment below zero at any point of its ledger.
              expect(granted).toBe(used + expired + remaining);
              expect(remaining).toBeGreaterThanOrEqual(0n);
              expect(expired).toBeGreaterThanOrEqual(0n);
              let running = 0n;
              for (const e of entries) {
                running += e.amount;
                expect(running).toBeGreaterThanOrEqual(0n);
              }
            }
          }
        }
      }),
      { seed, numRuns: 60 },
    );
  });
});

// ---- 2. the pure rules, many runs --------------------------------------------------

describe("pure draw-down rules against the reference model", () => {
  it("10,000 random schedules: same draws, no over-consumption", () => {
    const seed = seedFor("credits-rules");
    let overConsumption = 0;
    fc.assert(
      fc.property(genScenario, (sc) => {
        const model = modelSegments(sc.balances);
        const balances: CreditBalance[] = sc.balances.map((b, bi) => ({
          tenantId: "t",
          id: `b${bi}`,
          kind: b.kind,
          customerId: "c",
          contractId: null,
          name: "",
          description: "",
          priority: BigInt(b.priority),
          productId: "",
          productName: "",
          asset: "USD",
          applicableProductIds: [],
          applicableProductTags: [],
          customFields: {},
          uniquenessKey: null,
          segments: b.segments.map((s, si) => ({ id: `b${bi}s${si}`, amount: s.amount, startingAt: at(s.start), endingBefore: at(s.start + s.len) })),
          archivedAt: null,
          createdAt: 0n,
          ordinal: BigInt(bi + 1),
        }));
        const entries: CreditEntry[][] = balances.map((b) =>
          b.segments.map((s) => entry(b.id, s.id, "CREDIT_SEGMENT_START", s.amount, s.startingAt)),
        );
        for (const u of sc.usages) {
          const t = usageTime(u);
          const expected = modelUse(model, t, u.amount, t + 1n);
          const got = planDrawDown(balances.map((balance, i) => ({ balance, entries: entries[i]! })), {
            productId: "p",
            productTags: [],
            contractId: null,
            asset: "USD",
            amount: u.amount,
            startingAt: t,
            endingBefore: t + 1n,
          });
          expect(got.draws.map((d) => [d.balanceId, d.segmentId, d.amount])).toEqual(expected.draws.map(([bi, si, a]) => [`b${bi}`, `b${bi}s${si}`, a]));
          expect(got.uncovered).toBe(expected.uncovered);
          for (const d of got.draws) {
            const bi = Number(d.balanceId.slice(1));
            entries[bi]!.push(entry(d.balanceId, d.segmentId, "CREDIT_AUTOMATED_INVOICE_DEDUCTION", -d.amount, t + 1n));
          }
        }
        for (const [bi, b] of balances.entries()) {
          for (const s of b.segments) {
            const sum = entries[bi]!.filter((e) => e.segmentId === s.id).reduce((a, e) => a + e.amount, 0n);
            if (sum < 0n) overConsumption++;
          }
        }
      }),
      { seed, numRuns: 10_000 },
    );
    console.log(`[credits-rules] random schedules 10000, mismatches 0, over-consumption ${overConsumption}`);
    expect(overConsumption).toBe(0);
  });
});

describe("materialising closing entries changes no read", () => {
  it("2,000 random schedules: ledger and balance at every probe are the same before and after, and a second pass writes nothing", () => {
    const seed = seedFor("credits-closings");
    fc.assert(
      fc.property(genScenario, fc.integer({ min: 0, max: 30 }), (sc, nowDay) => {
        const balances: CreditBalance[] = sc.balances.map((b, bi) => ({
          tenantId: "t",
          id: `b${bi}`,
          kind: b.kind,
          customerId: "c",
          contractId: null,
          name: "",
          description: "",
          priority: BigInt(b.priority),
          productId: "",
          productName: "",
          asset: "USD",
          applicableProductIds: [],
          applicableProductTags: [],
          customFields: {},
          uniquenessKey: null,
          segments: b.segments.map((s, si) => ({ id: `b${bi}s${si}`, amount: s.amount, startingAt: at(s.start), endingBefore: at(s.start + s.len) })),
          archivedAt: null,
          createdAt: 0n,
          ordinal: BigInt(bi + 1),
        }));
        let seq = 0n;
        const stamp = (e: Omit<CreditEntry, "sequence">): CreditEntry => ({ ...e, sequence: ++seq });
        const entries: CreditEntry[][] = balances.map((b) => b.segments.map((s) => stamp(entry(b.id, s.id, "CREDIT_SEGMENT_START", s.amount, s.startingAt))));
        for (const u of sc.usages) {
          const t = usageTime(u);
          const r = planDrawDown(balances.map((balance, i) => ({ balance, entries: entries[i]! })), { productId: "p", productTags: [], contractId: null, asset: "USD", amount: u.amount, startingAt: t, endingBefore: t + 1n });
          for (const d of r.draws) entries[Number(d.balanceId.slice(1))]!.push(stamp(entry(d.balanceId, d.segmentId, "CREDIT_AUTOMATED_INVOICE_DEDUCTION", -d.amount, t)));
        }
        const now = at(nowDay);
        const view = (e: CreditEntry) => [e.type, e.timestamp, e.amount, e.segmentId];
        const probes = [...sc.probes.map(at), now, now - 1n, at(31), ...balances.flatMap((b) => b.segments.map((s) => s.endingBefore))];
        for (const [i, b] of balances.entries()) {
          const before = entries[i]!;
          const closings = dueClosings(b, before, now, now);
          const after = [...before, ...closings.map(stamp)];
          // Exactly one per segment that ended holding something; a second pass finds none.
          expect(new Set(closings.map((e) => e.segmentId)).size).toBe(closings.length);
          expect(dueClosings(b, after, now, now)).toEqual([]);
          for (const t of probes) {
            expect(ledgerAt(b, after, t).map(view)).toEqual(ledgerAt(b, before, t).map(view));
            expect(balanceAt(b, after, t)).toBe(balanceAt(b, before, t));
          }
        }
      }),
      { seed, numRuns: 2_000 },
    );
  });
});

function entry(balanceId: string, segmentId: string, type: CreditEntry["type"], amount: bigint, timestamp: bigint): CreditEntry {
  return { tenantId: "t", balanceId, segmentId, type, amount, timestamp, invoiceId: null, reason: null, usageId: null, createdAt: 0n, sequence: 1n };
}
