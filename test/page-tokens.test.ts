import type { Client } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService, KeyScope } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import type { PostTransferRequestSchema } from "../gen/tally/ledger/v1/ledger_pb.js";
import { settle } from "./support/rpc-expect.js";
import { seededRandom } from "./support/seeded-random.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

/**
 * T10: page tokens are opaque and tamper-evident. Every altered, foreign or
 * re-targeted token must be refused with invalid_argument (reason
 * invalid_page_token), never answered with rows, never an internal error.
 */

type Ledger = Client<typeof LedgerService>;
type TransferInit = MessageInitShape<typeof PostTransferRequestSchema>;

/** A list query a token can be presented to. */
interface Query {
  readonly label: string;
  readonly kind: "transactions" | "accounts";
  readonly accountId: string;
  readonly asset: string;
  readonly pageSize: number;
}

/** A valid token and the query that issued it. */
interface IssuedToken {
  readonly label: string;
  readonly query: Query;
  readonly token: string;
}

/** What one presented token led to. */
type Outcome =
  | { readonly kind: "refused" }
  | { readonly kind: "accepted"; readonly rows: number; readonly foreign: number }
  | { readonly kind: "other"; readonly code: string; readonly reason: string | undefined; readonly message: string };

const REFUSAL_MESSAGE = "page_token is invalid for this request";
const rnd = seededRandom();

let server: TestServer;
let a: Ledger;
let b: Ledger;
/** Everything tenant A owns, to tell its rows from anyone else's. */
const aTransfers = new Set<string>();
const aAccounts = new Set<string>(["@world"]);
const issued: IssuedToken[] = [];
const queries: Record<string, Query> = {};

function q(label: string, kind: Query["kind"], accountId: string, asset: string, pageSize: number): Query {
  const query = { label, kind, accountId, asset, pageSize };
  queries[label] = query;
  return query;
}

/** Sends `token` with `query` as the caller of `client`; classifies the answer. */
async function present(client: Ledger, query: Query, token: string): Promise<Outcome> {
  const r = await settle(async () => {
    if (query.kind === "accounts") {
      const res = await client.listAccounts({ pageSize: query.pageSize, pageToken: token });
      return { rows: res.accounts.length, foreign: res.accounts.filter((x) => !aAccounts.has(x.id)).length };
    }
    const res = await client.listTransactions({ accountId: query.accountId, asset: query.asset, pageSize: query.pageSize, pageToken: token });
    return {
      rows: res.transactions.length,
      foreign: res.transactions.filter((t) => !aTransfers.has(t.transferId) || t.accountId !== query.accountId).length,
    };
  });
  if (r.ok) return { kind: "accepted", ...r.value };
  const f = r.failure;
  if (f.code === Code.InvalidArgument && f.reason === "invalid_page_token" && f.message === REFUSAL_MESSAGE) return { kind: "refused" };
  return { kind: "other", code: f.codeName, reason: f.reason, message: f.message };
}

/** A mutated token to present, labelled so a failure says what was tried. */
interface Probe {
  readonly label: string;
  readonly client: Ledger;
  readonly query: Query;
  readonly token: string;
}

/** Presents every probe (32 at a time) and returns the tallies plus every probe that was not refused. */
async function runProbes(probes: readonly Probe[]) {
  const bad: { label: string; token: string; outcome: Outcome }[] = [];
  let refused = 0;
  let foreignRows = 0;
  let internal = 0;
  for (let i = 0; i < probes.length; i += 32) {
    const chunk = probes.slice(i, i + 32);
    const outcomes = await Promise.all(chunk.map((p) => present(p.client, p.query, p.token)));
    outcomes.forEach((o, j) => {
      if (o.kind === "refused") refused++;
      else {
        if (o.kind === "accepted") foreignRows += o.foreign;
        if (o.kind === "other" && o.code === Code[Code.Internal]) internal++;
        bad.push({ label: chunk[j]!.label, token: chunk[j]!.token, outcome: o });
      }
    });
  }
  return { total: probes.length, refused, bad, foreignRows, internal };
}

// ---- token surgery -----------------------------------------------------------

function splitToken(token: string): { body: string; mac: string } {
  const dot = token.indexOf(".");
  return { body: token.slice(0, dot), mac: token.slice(dot + 1) };
}

function flipBit(s: string, pos: number, bit: number): string {
  return s.slice(0, pos) + String.fromCharCode(s.charCodeAt(pos) ^ (1 << bit)) + s.slice(pos + 1);
}

/** Decodes the body, lets `edit` change the parsed JSON, re-encodes it and keeps the original MAC. */
function editBody(token: string, edit: (parsed: unknown[]) => unknown): string {
  const { body, mac } = splitToken(token);
  const parsed = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as unknown[];
  return `${Buffer.from(JSON.stringify(edit(parsed))).toString("base64url")}.${mac}`;
}

/** Every deterministic mutation of one token, all of which must be refused. */
function mutationsOf(t: IssuedToken, other: IssuedToken): Probe[] {
  const out: Probe[] = [];
  const add = (label: string, token: string) => {
    if (token !== t.token && token !== "") out.push({ label: `${t.label}: ${label}`, client: a, query: t.query, token });
  };
  const s = t.token;
  for (let n = 1; n < s.length; n++) add(`truncated to ${n}`, s.slice(0, n));
  for (let i = 0; i < s.length; i++) add(`bit ${i % 7} of char ${i} flipped`, flipBit(s, i, i % 7));
  // Every bit of the last three characters: base64url's trailing bits are where lax decoders are lenient.
  for (let i = s.length - 3; i < s.length; i++) for (let bit = 0; bit < 7; bit++) add(`tail char ${i} bit ${bit} flipped`, flipBit(s, i, bit));
  for (const extra of ["=", "==", "A", "0", "-", "_", ".", ".x", "%3D", " ", "\n", "\u0000", "é", "!"]) {
    add(`appended ${JSON.stringify(extra)}`, s + extra);
    add(`prepended ${JSON.stringify(extra)}`, extra + s);
  }
  const { body, mac } = splitToken(s);
  add("body re-padded", `${body}=.${mac}`);
  add("mac re-padded", `${body}.${mac}=`);
  add("newline inside mac", `${body}.${mac.slice(0, 10)}\n${mac.slice(10)}`);
  add("space inside mac", `${body}.${mac.slice(0, 10)} ${mac.slice(10)}`);
  add("mac in standard base64", `${body}.${Buffer.from(mac, "base64url").toString("base64")}`);
  add("body in standard base64", `${Buffer.from(body, "base64url").toString("base64")}.${mac}`);
  add("upper-cased", s.toUpperCase());
  add("lower-cased", s.toLowerCase());
  add("no mac", body);
  add("empty mac", `${body}.`);
  add("no body", `.${mac}`);
  add("double dot", `${body}..${mac}`);
  add("mac of another token", `${body}.${splitToken(other.token).mac}`);
  add("body of another token", `${splitToken(other.token).body}.${mac}`);
  add("way too long", s + "A".repeat(600));
  const cursor = (JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as unknown[])[1] as string;
  const otherCursor = (JSON.parse(Buffer.from(splitToken(other.token).body, "base64url").toString("utf8")) as unknown[])[1] as string;
  const edits: [string, (p: unknown[]) => unknown][] = [
    ["cursor + 1", (p) => [p[0], /^\d+$/.test(cursor) ? String(BigInt(cursor) + 1n) : cursor + "0", p[2]]],
    ["cursor - 1", (p) => [p[0], /^\d+$/.test(cursor) ? String(BigInt(cursor) - 1n) : cursor.slice(0, -1), p[2]]],
    ["cursor 0", (p) => [p[0], "0", p[2]]],
    ["cursor int64 max", (p) => [p[0], "9223372036854775807", p[2]]],
    ["cursor -1", (p) => [p[0], "-1", p[2]]],
    ["cursor not a number", (p) => [p[0], "abc", p[2]]],
    ["cursor empty", (p) => [p[0], "", p[2]]],
    ["cursor as a JSON number", (p) => [p[0], Number(cursor) || 1, p[2]]],
    ["cursor of another token", (p) => [p[0], otherCursor, p[2]]],
    ["version 2", (p) => [2, p[1], p[2]]],
    ["digest of another token", (p) => [p[0], p[1], (JSON.parse(Buffer.from(splitToken(other.token).body, "base64url").toString("utf8")) as unknown[])[2]]],
    ["digest dropped", (p) => [p[0], p[1]]],
    ["extra element", (p) => [...p, "x"]],
    ["object instead of array", (p) => ({ v: p[0], cursor: p[1], q: p[2] })],
  ];
  for (const [label, edit] of edits) add(`body edited: ${label}`, editBody(s, edit));
  add("body re-serialized with whitespace", `${Buffer.from(JSON.stringify(JSON.parse(Buffer.from(body, "base64url").toString("utf8")), null, 1)).toString("base64url")}.${mac}`);
  return out;
}

// ---- fixtures ---------------------------------------------------------------

beforeAll(async () => {
  console.log(`page-tokens seed=${rnd.seed}`);
  server = await startTestServer();
  a = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
  const admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
  const { adminKeySecret } = await admin.createTenant({ id: "tokens-b" });
  b = clientFor(LedgerService, server.url, "grpc", adminKeySecret);

  for (const id of ["pt-x", "pt-y", ...Array.from({ length: 30 }, (_, i) => `la-${String(i).padStart(2, "0")}`)]) {
    await a.createAccount({ id, overdraftLimit: 1_000_000_000n });
    aAccounts.add(id);
  }
  const transfers: TransferInit[] = [];
  for (let i = 0; i < 600; i++) {
    const [debit, credit] = rnd.pick([
      ["@world", "pt-x"],
      ["@world", "pt-y"],
      ["pt-x", "pt-y"],
      ["pt-y", "pt-x"],
    ] as const);
    transfers.push({ idempotencyKey: `a-${i}`, debitAccountId: debit, creditAccountId: credit, asset: rnd.pick(["USD", "EUR"]), amount: BigInt(rnd.int(1, 999)) });
  }
  for (const r of (await a.postTransfers({ transfers })).results) aTransfers.add(r.transfer!.id);

  // B has an account with the same id as A's, so only the tenant tells their tokens apart.
  await b.createAccount({ id: "pt-x" });
  await b.createAccount({ id: "b-only" });
  await b.postTransfers({
    transfers: Array.from({ length: 100 }, (_, i) => ({ idempotencyKey: `b-${i}`, debitAccountId: "@world", creditAccountId: "pt-x", asset: "USD", amount: 5n })),
  });

  const sources = [
    q("LT pt-x", "transactions", "pt-x", "", 5),
    q("LT pt-x USD", "transactions", "pt-x", "USD", 5),
    q("LT pt-x EUR", "transactions", "pt-x", "EUR", 7),
    q("LT pt-y", "transactions", "pt-y", "", 10),
    q("LT pt-y USD", "transactions", "pt-y", "USD", 3),
    q("LA size 5", "accounts", "", "", 5),
    q("LA size 2", "accounts", "", "", 2),
  ];
  // Three tokens per query: the first page's and two deeper ones.
  for (const query of sources) {
    let token = "";
    for (let page = 1; page <= 3; page++) {
      const next =
        query.kind === "accounts"
          ? (await a.listAccounts({ pageSize: query.pageSize, pageToken: token })).nextPageToken
          : (await a.listTransactions({ accountId: query.accountId, asset: query.asset, pageSize: query.pageSize, pageToken: token })).nextPageToken;
      expect(next).not.toBe("");
      issued.push({ label: `${query.label} page ${page + 1}`, query, token: next });
      token = next;
    }
  }
});

afterAll(async () => {
  await server?.close();
});

// ---- tests ------------------------------------------------------------------

describe("valid tokens (the baseline every refusal is measured against)", () => {
  it("are accepted for the query that issued them, and replaying one returns the same page", async () => {
    for (const t of issued) {
      const first = await present(a, t.query, t.token);
      expect(first, t.label).toMatchObject({ kind: "accepted", foreign: 0 });
      expect((first as { rows: number }).rows, t.label).toBeGreaterThan(0);
    }
    // Tokens are stateless keyset cursors: replaying one gives the very same rows.
    const t = issued[1]!;
    const page = () => a.listTransactions({ accountId: t.query.accountId, pageSize: t.query.pageSize, pageToken: t.token });
    const [x, y] = [await page(), await page()];
    expect(y.transactions.map((r) => r.sequence)).toEqual(x.transactions.map((r) => r.sequence));
  });
});

describe("mutated tokens", () => {
  it("every deterministic mutation (truncation, bit flips, appended chars, body edits) is refused", async () => {
    const probes = issued.flatMap((t, i) => mutationsOf(t, issued[(i + 4) % issued.length]!));
    const t0 = performance.now();
    const r = await runProbes(probes);
    console.log(
      `deterministic mutations: ${r.total} presented, ${r.refused} refused, ${r.bad.length} not refused ` +
        `(foreign rows ${r.foreignRows}, internal errors ${r.internal}) in ${(performance.now() - t0).toFixed(0)} ms`,
    );
    expect(r.total).toBeGreaterThan(3000);
    expect(r.foreignRows).toBe(0);
    expect(r.internal).toBe(0);
    // One line per offender, so the failure shows which kinds of mutation got through.
    expect(r.bad.map((x) => `${x.label} -> ${x.outcome.kind}`).slice(0, 40), `${r.bad.length} mutated tokens were not refused`).toEqual([]);
  });

  it("a valid MAC in a non-canonical base64url spelling is refused (no token malleability)", async () => {
    const t = issued.find((x) => x.query.kind === "transactions")!;
    const { body, mac } = splitToken(t.token);
    // 32 bytes in base64url are 43 chars whose last char carries 2 unused bits;
    // a lenient decoder maps all these strings to the same 32 bytes.
    const last = mac.charCodeAt(mac.length - 1);
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const v = alphabet.indexOf(String.fromCharCode(last));
    const variants = [
      `${body}.${mac}=`,
      `${body}.${mac}==`,
      `${body}.${mac.slice(0, -1)}${alphabet[v ^ 1]}`,
      `${body}.${mac.slice(0, -1)}${alphabet[v ^ 2]}`,
      `${body}.${mac.slice(0, 5)}!${mac.slice(5)}`,
      `${body}.${mac}\n`,
    ];
    const outcomes = await Promise.all(variants.map(async (token) => ({ token, outcome: await present(a, t.query, token) })));
    expect(outcomes.filter((o) => o.outcome.kind !== "refused")).toEqual([]);
  });

  it("a few thousand random mutations (fast-check) are all refused", async () => {
    type Mutation =
      | { kind: "flip"; pos: number; bit: number }
      | { kind: "insert"; pos: number; text: string }
      | { kind: "delete"; pos: number; len: number }
      | { kind: "replace"; pos: number; text: string };
    const mutation: fc.Arbitrary<Mutation> = fc.oneof(
      fc.record({ kind: fc.constant("flip" as const), pos: fc.nat(), bit: fc.integer({ min: 0, max: 6 }) }),
      fc.record({ kind: fc.constant("insert" as const), pos: fc.nat(), text: fc.string({ unit: "binary-ascii", minLength: 1, maxLength: 4 }) }),
      fc.record({ kind: fc.constant("delete" as const), pos: fc.nat(), len: fc.integer({ min: 1, max: 8 }) }),
      fc.record({ kind: fc.constant("replace" as const), pos: fc.nat(), text: fc.string({ unit: "binary-ascii", minLength: 1, maxLength: 3 }) }),
    );
    const apply = (s: string, m: Mutation): string => {
      const pos = s.length === 0 ? 0 : m.pos % (s.length + (m.kind === "insert" ? 1 : 0));
      switch (m.kind) {
        case "flip":
          return s.length === 0 ? s : flipBit(s, pos, m.bit);
        case "insert":
          return s.slice(0, pos) + m.text + s.slice(pos);
        case "delete":
          return s.slice(0, pos) + s.slice(pos + m.len);
        case "replace":
          return s.slice(0, pos) + m.text + s.slice(pos + m.text.length);
      }
    };
    let runs = 0;
    const t0 = performance.now();
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: issued.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 3 }), async (i, ms) => {
        const t = issued[i]!;
        const token = ms.reduce(apply, t.token);
        // An unchanged token is valid, and an empty one asks for the first page: neither is a forgery.
        fc.pre(token !== t.token && token !== "");
        runs++;
        const outcome = await present(a, t.query, token);
        expect(outcome, `${t.label} mutated to ${JSON.stringify(token)}`).toEqual({ kind: "refused" });
      }),
      { numRuns: 2500, seed: rnd.seed },
    );
    console.log(`fast-check: ${runs} random mutations refused in ${(performance.now() - t0).toFixed(0)} ms`);
  });
});

describe("re-targeted tokens", () => {
  it("a token is refused on any query but its own: other list, account, asset filter or tenant", async () => {
    const probes: Probe[] = [];
    const otherTenantKey = b;
    for (const t of issued) {
      const add = (label: string, client: Ledger, query: Query) => probes.push({ label: `${t.label} ${label}`, client, query, token: t.token });
      if (t.query.kind === "transactions") {
        add("on ListAccounts", a, queries["LA size 5"]!);
        const otherAccount = t.query.accountId === "pt-x" ? "pt-y" : "pt-x";
        add(`for account ${otherAccount}`, a, { ...t.query, accountId: otherAccount });
        add("for a nonexistent account", a, { ...t.query, accountId: "no-such-account" });
        for (const asset of ["", "USD", "EUR", "GBP"].filter((x) => x !== t.query.asset)) {
          add(`with asset ${JSON.stringify(asset)}`, a, { ...t.query, asset });
        }
        // B owns an account "pt-x" too: only the tenant differs.
        add("with tenant B's key", otherTenantKey, t.query);
        add("with tenant B's key on B's own account", otherTenantKey, { ...t.query, accountId: "b-only" });
      } else {
        add("on ListTransactions", a, queries["LT pt-x"]!);
        add("with tenant B's key", otherTenantKey, t.query);
      }
    }
    // And B's own valid tokens presented by A.
    const bTransactions = await b.listTransactions({ accountId: "pt-x", pageSize: 5 });
    const bAccounts = await b.listAccounts({ pageSize: 1 });
    for (const [label, token] of [
      ["B's ListTransactions token", bTransactions.nextPageToken],
      ["B's ListAccounts token", bAccounts.nextPageToken],
    ] as const) {
      expect(token).not.toBe("");
      probes.push({ label: `${label} presented by A`, client: a, query: queries["LT pt-x"]!, token });
      probes.push({ label: `${label} presented by A to ListAccounts`, client: a, query: queries["LA size 5"]!, token });
    }
    const r = await runProbes(probes);
    console.log(`re-targeted tokens: ${r.total} presented, ${r.refused} refused, foreign rows ${r.foreignRows}, internal ${r.internal}`);
    expect(r.foreignRows).toBe(0);
    expect(r.bad).toEqual([]);
  });

  it("an account-scoped key presenting any token to ListAccounts is refused, not answered", async () => {
    const admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
    const { secret } = await admin.createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: "pt-x" });
    const reader = clientFor(LedgerService, server.url, "connect-binary", secret);
    // Sanity: this key sees exactly its own account and never gets a token to continue with.
    const own = await reader.listAccounts({});
    expect(own.accounts.map((x) => x.id)).toEqual(["pt-x"]);
    expect(own.nextPageToken).toBe("");
    const la = issued.find((t) => t.query.kind === "accounts")!;
    const tokens = [la.token, `${la.token}x`, "garbage", "a.b"];
    const outcomes = await Promise.all(tokens.map((token) => present(reader, la.query, token)));
    expect(outcomes).toEqual(tokens.map(() => ({ kind: "refused" })));
  });

  it("an account-scoped key may continue a walk of its own account's journal with the admin's token", async () => {
    // The cursor binds (tenant, query), not the key: a reader of pt-x sees exactly what the admin sees there.
    const admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
    const { secret } = await admin.createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: "pt-x" });
    const reader = clientFor(LedgerService, server.url, "connect-json", secret);
    const t = issued.find((x) => x.query.label === "LT pt-x")!;
    const viaAdmin = await a.listTransactions({ accountId: "pt-x", pageSize: 5, pageToken: t.token });
    const viaReader = await reader.listTransactions({ accountId: "pt-x", pageSize: 5, pageToken: t.token });
    expect(viaReader.transactions.map((x) => x.sequence)).toEqual(viaAdmin.transactions.map((x) => x.sequence));
    // But the same token on pt-y is refused before anything is read (and pt-y is not its account anyway).
    const y = await present(reader, { ...t.query, accountId: "pt-y" }, t.token);
    expect(y.kind).toBe("other");
    expect(y).toMatchObject({ code: Code[Code.NotFound] });
  });
});
