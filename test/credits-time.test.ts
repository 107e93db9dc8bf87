/**
 * T12 input cases of commits and credits, through a real server over a real
 * SQLite file, on the native API's Connect JSON (google.protobuf.Timestamp as
 * RFC 3339) and on Metronome's REST path, raw HTTP as clients send it:
 * - one instant written with Z, +05:30 and -08:00 gives identical results;
 * - a timestamp without an offset, a leap second (23:59:60) and a day that
 *   does not exist are 400 / invalid_argument;
 * - a segment from 2024-02-29 to a year later keeps its edges exactly;
 * - `…59.999999Z` keeps its microseconds end to end on the native API;
 *   Metronome writes milliseconds, so there a sub-millisecond instant is
 *   refused rather than truncated.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";
import { uniq } from "./support/ledger-kit.js";

let now = BigInt(Date.parse("2024-01-01T00:00:00Z")) * 1000n;
let server: TestServer;
let platformKey = "";

beforeAll(async () => {
  server = await startTestServer({ dialects: ["metronome"], clock: () => now });
  platformKey = (await clientFor(AdminService, server.url, "connect-binary", server.adminKey).createCredential({ kind: "metronome_platform_key", label: "t12" })).secret;
});
afterAll(async () => {
  await server?.close();
});

interface Reply {
  readonly status: number;
  readonly body: string;
  readonly json: Record<string, unknown>;
}

async function send(path: string, body: unknown, key: string): Promise<Reply> {
  const res = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text, json: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>) };
}
/** The native CreditService over Connect's JSON protocol. */
const rpc = (method: string, body: unknown) => send(`/tally.credits.v1.CreditService/${method}`, body, server.adminKey);
/** Metronome's REST path. */
const rest = (path: string, body: unknown) => send(`/v1/contracts/${path}`, body, platformKey);

async function customer(): Promise<string> {
  const id = uniq("t12");
  await clientFor(LedgerService, server.url, "connect-binary", server.adminKey).createAccount({ id });
  return id;
}

/** A native credit; returns its id and segment id. */
async function nativeCredit(customerId: string, amount: string, startingAt: string, endingBefore: string): Promise<{ id: string; seg: string }> {
  const r = await rpc("CreateCredit", { balance: { customerId, name: "t", product: { id: "p" }, scheduleItems: [{ amount, startingAt, endingBefore }] } });
  expect(r.status, r.body).toBe(200);
  const c = r.json.credit as { id: string; accessSchedule: { scheduleItems: { id: string; startingAt: string; endingBefore: string }[] } };
  return { id: c.id, seg: c.accessSchedule.scheduleItems[0]!.id };
}

/** A usage of the one-second service period from `startingAt` (any offset, up to microseconds). */
async function usage(customerId: string, amount: string, startingAt: string): Promise<Reply> {
  const fraction = /\.(\d+)/.exec(startingAt)?.[1] ?? "";
  const micros = BigInt(Date.parse(startingAt)) * 1000n + BigInt(fraction.padEnd(6, "0").slice(3, 6) || "0") + 1_000_000n;
  const endingBefore = new Date(Number(micros / 1000n)).toISOString().replace("Z", `${String(micros % 1000n).padStart(3, "0")}Z`);
  return rpc("RecordUsage", { usageId: uniq("u"), customerId, productId: "p", amount, startingAt, endingBefore });
}

describe("one instant in three offsets", () => {
  it("native: Z, +05:30 and -08:00 give identical listings and the same edge behaviour", async () => {
    const cust = await customer();
    // Created with offsets: stored as the instants they denote.
    await nativeCredit(cust, "100", "2024-03-01T05:30:00+05:30", "2024-03-31T16:00:00-08:00");
    const listed = await rpc("ListBalances", { customerId: cust });
    const item = (listed.json.balances as { accessSchedule: { scheduleItems: { startingAt: string; endingBefore: string }[] } }[])[0]!.accessSchedule.scheduleItems[0]!;
    expect([item.startingAt, item.endingBefore]).toEqual(["2024-03-01T00:00:00Z", "2024-04-01T00:00:00Z"]);
    expect((await usage(cust, "10", "2024-03-10T05:30:00+05:30")).json.uncovered).toBeUndefined(); // 0 is omitted in proto JSON
    const forms = ["2024-03-20T00:00:00Z", "2024-03-20T05:30:00+05:30", "2024-03-19T16:00:00-08:00"];
    const bodies = [];
    for (const f of forms) bodies.push((await rpc("ListBalances", { customerId: cust, includeBalance: true, includeLedgers: true, balanceAt: f })).body);
    expect(new Set(bodies).size).toBe(1);
    expect(bodies[0]).toContain('"balance":"90"');
    // ending_before written as -08:00 is still exclusive; a microsecond before it (in +05:30) is covered.
    expect((await usage(cust, "1", "2024-03-31T16:00:00-08:00")).json.uncovered).toBe("1");
    expect((await usage(cust, "1", "2024-04-01T05:29:59.999999+05:30")).json.uncovered).toBeUndefined();
  });

  it("Metronome REST: Z, +05:30 and -08:00 give identical bodies", async () => {
    const cust = await customer();
    const created = await rest("customerCredits/create", {
      customer_id: cust,
      name: "t",
      product_id: "p",
      access_schedule: { schedule_items: [{ amount: 100, starting_at: "2024-03-01T05:30:00+05:30", ending_before: "2024-03-31T16:00:00-08:00" }] },
    });
    expect(created.status, created.body).toBe(200);
    const bodies = [];
    for (const f of ["2024-03-20T00:00:00.000Z", "2024-03-20T05:30:00+05:30", "2024-03-19T16:00:00-08:00"]) {
      bodies.push((await rest("customerBalances/list", { customer_id: cust, include_balance: true, covering_date: f, balance_at: f })).body);
    }
    expect(new Set(bodies).size).toBe(1);
    expect(bodies[0]).toContain('"starting_at":"2024-03-01T00:00:00.000Z","ending_before":"2024-04-01T00:00:00.000Z"');
    expect(bodies[0]).toContain('"balance":100');
  });
});

describe("malformed instants are refused", () => {
  const BAD = [
    ["no offset", "2024-03-20T00:00:00"],
    ["a leap second", "2024-12-31T23:59:60Z"],
    ["a day that does not exist", "2025-02-29T00:00:00Z"],
  ] as const;
  it.each(BAD)("%s: 400 / invalid_argument on both APIs, nothing written", async (_name, bad) => {
    const cust = await customer();
    const native = await rpc("CreateCredit", { balance: { customerId: cust, product: { id: "p" }, scheduleItems: [{ amount: "1", startingAt: bad, endingBefore: "2026-01-01T00:00:00Z" }] } });
    expect([native.status, native.json.code]).toEqual([400, "invalid_argument"]);
    const metro = await rest("customerCredits/create", {
      customer_id: cust,
      product_id: "p",
      access_schedule: { schedule_items: [{ amount: 1, starting_at: bad, ending_before: "2026-01-01T00:00:00.000Z" }] },
    });
    expect(metro.status).toBe(400);
    expect(Object.keys(metro.json)).toEqual(["message"]);
    const listed = await rest("customerBalances/list", { customer_id: cust, balance_at: bad });
    expect(listed.status).toBe(400);
    expect((await rpc("ListBalances", { customerId: cust })).json.balances).toBeUndefined();
  });
});

describe("2024-02-29 plus one year", () => {
  it("a segment from the leap day to 2025-03-01 covers 2025-02-28T23:59:59.999999Z and not 2025-03-01", async () => {
    const cust = await customer();
    await nativeCredit(cust, "100", "2024-02-29T00:00:00Z", "2025-03-01T00:00:00Z");
    expect((await usage(cust, "1", "2024-02-28T23:59:59.999999Z")).json.uncovered).toBe("1");
    expect((await usage(cust, "1", "2024-02-29T00:00:00Z")).json.uncovered).toBeUndefined();
    expect((await usage(cust, "1", "2025-02-28T23:59:59.999999Z")).json.uncovered).toBeUndefined();
    expect((await usage(cust, "1", "2025-03-01T00:00:00Z")).json.uncovered).toBe("1");
    const bal = async (at: string) => (await rpc("ListBalances", { customerId: cust, includeBalance: true, balanceAt: at })).json.balances as { balance: string }[];
    // The usage of the period from the segment's last microsecond is dated at the segment's end
    // (its period ends later): not yet counted then. The one from the leap day is.
    expect((await bal("2025-02-28T23:59:59.999999Z"))[0]!.balance).toBe("99");
    expect((await bal("2025-03-01T00:00:00Z"))[0]!.balance).toBe("0");
  });
});

describe("microseconds", () => {
  it("native: …59.999999Z is kept exactly (stored, listed, and the edge one microsecond apart)", async () => {
    const cust = await customer();
    const c = await nativeCredit(cust, "100", "2024-05-01T00:00:00.000001Z", "2024-05-31T23:59:59.999999Z");
    const listed = await rpc("ListBalances", { customerId: cust, includeLedgers: true, balanceAt: "2024-06-01T00:00:00Z" });
    expect(listed.body).toContain('"startingAt":"2024-05-01T00:00:00.000001Z","endingBefore":"2024-05-31T23:59:59.999999Z"');
    expect((await usage(cust, "1", "2024-05-01T00:00:00Z")).json.uncovered).toBe("1");
    expect((await usage(cust, "1", "2024-05-01T00:00:00.000001Z")).json.uncovered).toBeUndefined();
    expect((await usage(cust, "1", "2024-05-31T23:59:59.999998Z")).json.uncovered).toBeUndefined();
    expect((await usage(cust, "1", "2024-05-31T23:59:59.999999Z")).json.uncovered).toBe("1");
    // The expiration is dated exactly ending_before, microseconds included.
    const after = await rpc("ListBalances", { customerId: cust, includeLedgers: true, balanceAt: "2024-06-01T00:00:00Z" });
    const ledger = (after.json.balances as { ledger: { type: string; timestamp: string; amount: string; segmentId: string }[] }[])[0]!.ledger;
    expect(ledger.at(-1)).toEqual({ type: "CREDIT_EXPIRATION", timestamp: "2024-05-31T23:59:59.999999Z", amount: "-98", segmentId: c.seg });
    // Nanoseconds are refused, not truncated.
    const nanos = await usage(cust, "1", "2024-05-10T00:00:00.000000001Z");
    expect([nanos.status, nanos.json.code]).toEqual([400, "invalid_argument"]);
  });

  it("Metronome REST writes milliseconds: a sub-millisecond instant is 400, a millisecond one is kept", async () => {
    const cust = await customer();
    const sub = await rest("customerCredits/create", {
      customer_id: cust,
      product_id: "p",
      access_schedule: { schedule_items: [{ amount: 1, starting_at: "2024-05-01T00:00:00.000Z", ending_before: "2024-05-31T23:59:59.999999Z" }] },
    });
    expect(sub.status).toBe(400);
    expect(sub.json.message).toMatch(/millisecond precision/);
    expect((await rest("customerBalances/list", { customer_id: cust, covering_date: "2024-05-10T00:00:00.0001Z" })).status).toBe(400);
    const ms = await rest("customerCredits/create", {
      customer_id: cust,
      product_id: "p",
      access_schedule: { schedule_items: [{ amount: 1, starting_at: "2024-05-01T00:00:00.000Z", ending_before: "2024-05-31T23:59:59.999Z" }] },
    });
    expect(ms.status, ms.body).toBe(200);
    const listed = await rest("customerBalances/list", { customer_id: cust });
    expect(listed.body).toContain('"ending_before":"2024-05-31T23:59:59.999Z"');
    // Nothing of the refused create was written.
    expect((JSON.parse(listed.body) as { data: unknown[] }).data).toHaveLength(1);
  });
});
