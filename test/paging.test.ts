import { Code } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import type { Transaction } from "../gen/tally/ledger/v1/ledger_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { PostTransferRequestSchema } from "../gen/tally/ledger/v1/ledger_pb.js";
import { failureOf } from "./support/rpc-expect.js";
import { seededRandom } from "./support/seeded-random.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

type Ledger = Client<typeof LedgerService>;
type TransferInit = MessageInitShape<typeof PostTransferRequestSchema>;

const BIG = "paging-big";
const MULTI = "paging-multi";
const ENTRIES = 10_000;
const ASSETS = ["USD", "EUR", "GBP"] as const;

const rnd = seededRandom();
let server: TestServer;
let client: Ledger;
/** BIG's entries as written in setup, by sequence. */
const bigSeqs = new Set<bigint>();

beforeAll(async () => {
  console.log(`paging seed=${rnd.seed}`);
  server = await startTestServer();
  client = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
  await client.createAccount({ id: BIG });
  // Ten atomic batches of 1000 are the fastest way to a 10,000-entry journal.
  for (let b = 0; b < ENTRIES / 1000; b++) {
    const transfers: TransferInit[] = [];
    for (let i = 0; i < 1000; i++) {
      transfers.push({ idempotencyKey: `big-${b}-${i}`, debitAccountId: "@world", creditAccountId: BIG, asset: "USD", amount: BigInt(b * 1000 + i + 1) });
    }
    const { results } = await client.postTransfers({ transfers });
    // BIG is the credit side, whose entry carries the transfer's sequence.
    for (const r of results) bigSeqs.add(r.transfer!.sequence);
  }
  expect(bigSeqs.size).toBe(ENTRIES);
});

afterAll(async () => {
  await server?.close();
});

interface Walk {
  readonly rows: Transaction[];
  readonly pageSizes: number[];
  readonly requested: number[];
  readonly pages: number;
}

/**
 * Walks every page of ListTransactions. `size` picks the page_size of each
 * request (so a walk can change it between pages), `onPage` runs after each page.
 */
async function walkTransactions(
  c: Ledger,
  accountId: string,
  size: (page: number) => number,
  asset = "",
  onPage?: (page: number) => Promise<void> | void,
): Promise<Walk> {
  const rows: Transaction[] = [];
  const pageSizes: number[] = [];
  const requested: number[] = [];
  let token = "";
  let page = 0;
  do {
    const pageSize = size(page);
    const res = await c.listTransactions({ accountId, asset, pageSize, pageToken: token });
    requested.push(pageSize === 0 ? 25 : pageSize);
    pageSizes.push(res.transactions.length);
    rows.push(...res.transactions);
    token = res.nextPageToken;
    page++;
    await onPage?.(page);
    if (page > 20_000) throw new Error("pagination does not terminate");
  } while (token !== "");
  return { rows, pageSizes, requested, pages: page };
}

/** Asserts the walk's invariants that hold whatever the page sizes: bounded pages, strictly newest first, no duplicates. */
function expectWellFormed(walk: Walk, accountId: string): void {
  walk.pageSizes.forEach((n, i) => {
    expect(n, `page ${i} has ${n} rows for page_size ${walk.requested[i]}`).toBeLessThanOrEqual(walk.requested[i]!);
    // Keyset paging fetches size+1 rows, so every page but the last is full.
    if (i < walk.pageSizes.length - 1) expect(n, `page ${i} is short but not last`).toBe(walk.requested[i]);
  });
  for (let i = 1; i < walk.rows.length; i++) {
    if (!(walk.rows[i]!.sequence < walk.rows[i - 1]!.sequence)) {
      throw new Error(`order broken at row ${i}: ${walk.rows[i - 1]!.sequence} then ${walk.rows[i]!.sequence}`);
    }
  }
  expect(walk.rows.every((r) => r.accountId === accountId)).toBe(true);
}

/** Keeps posting to BIG from another client (and protocol) until stopped; returns what it acknowledged and when. */
function startWriter(tag: string) {
  const writer = clientFor(LedgerService, server.url, "grpc", server.adminKey);
  const acked: { seq: bigint; at: number }[] = [];
  let stop = false;
  let n = 0;
  const done = (async () => {
    while (!stop) {
      const { transfer } = await writer.postTransfer({ idempotencyKey: `w-${tag}-${n++}`, debitAccountId: "@world", creditAccountId: BIG, asset: "USD", amount: 7n });
      acked.push({ seq: transfer!.sequence, at: performance.now() });
      // A short pause: each commit holds the event loop for an fsync, and a writer
      // that never pauses only makes the walk slower without adding interleavings.
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  return {
    acked,
    async firstAck() {
      while (acked.length === 0) await new Promise((r) => setTimeout(r, 2));
    },
    async stop() {
      stop = true;
      await done;
    },
  };
}

describe("ListTransactions walk under concurrent writes", () => {
  it.each([
    { label: "default (0)", size: 0 },
    { label: "100", size: 100 },
    { label: "1000", size: 1000 },
    { label: "random per page", size: -1 },
  ])("page_size $label: every entry present at the start appears exactly once, newest first", async ({ label, size }) => {
    const writer = startWriter(label.replace(/\W/g, ""));
    await writer.firstAck();
    const startedAt = performance.now();
    const presentAtStart = new Set(bigSeqs);
    for (const a of writer.acked) presentAtStart.add(a.seq);
    const pickSize = size === -1 ? () => rnd.int(1, 1000) : () => size;
    // Yield between pages so the writer really interleaves with the walk.
    const walk = await walkTransactions(client, BIG, pickSize, "", () => new Promise<void>((r) => setImmediate(r)));
    const finishedAt = performance.now();
    await writer.stop();
    const writtenDuring = writer.acked.filter((a) => a.at >= startedAt && a.at <= finishedAt).length;
    const writerSeqs = new Set(writer.acked.map((a) => a.seq));
    for (const a of writer.acked) bigSeqs.add(a.seq);

    expectWellFormed(walk, BIG);
    const seen = new Map<bigint, number>();
    for (const r of walk.rows) seen.set(r.sequence, (seen.get(r.sequence) ?? 0) + 1);
    const dups = [...seen].filter(([, n]) => n > 1);
    const missing = [...presentAtStart].filter((s) => !seen.has(s));
    const unknown = [...seen.keys()].filter((s) => !presentAtStart.has(s) && !writerSeqs.has(s));
    console.log(
      `walk page_size=${label}: ${walk.pages} pages, ${walk.rows.length} rows, ${writtenDuring} concurrent writes, ` +
        `${(finishedAt - startedAt).toFixed(0)} ms; duplicates ${dups.length}, missing ${missing.length}, unknown ${unknown.length}`,
    );
    expect(dups).toEqual([]);
    expect(missing).toEqual([]);
    expect(unknown).toEqual([]);
    // Without writes during the walk this test would prove nothing about concurrency.
    expect(writtenDuring).toBeGreaterThan(0);
  });

  it("page 10 costs about what page 1 costs (keyset, not OFFSET)", async () => {
    // Tokens for pages 1..10 of size 1000 and 1..100 of size 100, taken from a quiet journal.
    const tokensOf = async (size: number, pages: number) => {
      const tokens = [""];
      for (let i = 1; i < pages; i++) {
        const res = await client.listTransactions({ accountId: BIG, pageSize: size, pageToken: tokens[i - 1]! });
        expect(res.nextPageToken).not.toBe("");
        tokens.push(res.nextPageToken);
      }
      return tokens;
    };
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const time = async (size: number, token: string) => {
      const t0 = performance.now();
      const res = await client.listTransactions({ accountId: BIG, pageSize: size, pageToken: token });
      const ms = performance.now() - t0;
      expect(res.transactions).toHaveLength(size);
      return ms;
    };
    for (const [size, pages] of [
      [1000, 10],
      [100, 100],
    ] as const) {
      const tokens = await tokensOf(size, pages);
      const first: number[] = [];
      const last: number[] = [];
      // Interleaved, after a warm-up, so both see the same cache and GC conditions.
      await time(size, tokens[0]!);
      await time(size, tokens[pages - 1]!);
      for (let i = 0; i < 15; i++) {
        first.push(await time(size, tokens[0]!));
        last.push(await time(size, tokens[pages - 1]!));
      }
      const m1 = median(first);
      const mN = median(last);
      console.log(`page_size=${size}: page 1 median ${m1.toFixed(2)} ms, page ${pages} median ${mN.toFixed(2)} ms, ratio ${(mN / m1).toFixed(2)}`);
      expect(mN).toBeLessThan(10 * m1);
    }
  });
});

describe("page_size rules", () => {
  it("ListTransactions: default 25, 0 means default, max 1000, anything else is invalid_argument", async () => {
    expect((await client.listTransactions({ accountId: BIG })).transactions).toHaveLength(25);
    expect((await client.listTransactions({ accountId: BIG, pageSize: 0 })).transactions).toHaveLength(25);
    expect((await client.listTransactions({ accountId: BIG, pageSize: 1 })).transactions).toHaveLength(1);
    expect((await client.listTransactions({ accountId: BIG, pageSize: 1000 })).transactions).toHaveLength(1000);
    for (const pageSize of [1001, -1, 2 ** 31 - 1, -(2 ** 31), 5000]) {
      const f = await failureOf(() => client.listTransactions({ accountId: BIG, pageSize }));
      expect({ pageSize, code: f.codeName, reason: f.reason }).toEqual({ pageSize, code: Code[Code.InvalidArgument], reason: "invalid_page_size" });
    }
  });

  it("ListAccounts: default 25, 0 means default, max 1000, anything else is invalid_argument", async () => {
    const { adminKeySecret } = await clientFor(AdminService, server.url, "connect-binary", server.adminKey).createTenant({ id: "page-size-tenant" });
    const c = clientFor(LedgerService, server.url, "connect-json", adminKeySecret);
    const ids = Array.from({ length: 1100 }, (_, i) => `ps-${String(i).padStart(4, "0")}`);
    for (let i = 0; i < ids.length; i += 100) await Promise.all(ids.slice(i, i + 100).map((id) => c.createAccount({ id })));
    expect((await c.listAccounts({})).accounts).toHaveLength(25);
    expect((await c.listAccounts({ pageSize: 0 })).accounts).toHaveLength(25);
    expect((await c.listAccounts({ pageSize: 1000 })).accounts).toHaveLength(1000);
    for (const pageSize of [1001, -1, 2 ** 31 - 1, -(2 ** 31)]) {
      const f = await failureOf(() => c.listAccounts({ pageSize }));
      expect({ pageSize, code: f.codeName, reason: f.reason }).toEqual({ pageSize, code: Code[Code.InvalidArgument], reason: "invalid_page_size" });
    }
  });
});

describe("asset filter", () => {
  it("pages only the requested asset, completely, for every asset", async () => {
    await client.createAccount({ id: MULTI, overdraftLimit: 10n ** 15n });
    await client.createAccount({ id: "paging-sink" });
    // Credits and debits in three assets, interleaved, so a filter that leaks or skips shows.
    for (let b = 0; b < 3; b++) {
      const transfers: TransferInit[] = [];
      for (let i = 0; i < 1000; i++) {
        const debit = rnd.next() < 0.3;
        transfers.push({
          idempotencyKey: `multi-${b}-${i}`,
          debitAccountId: debit ? MULTI : "@world",
          creditAccountId: debit ? "paging-sink" : MULTI,
          asset: rnd.pick(ASSETS),
          amount: BigInt(rnd.int(1, 10_000)),
        });
      }
      await client.postTransfers({ transfers });
    }
    const all = await walkTransactions(client, MULTI, () => 1000);
    expectWellFormed(all, MULTI);
    expect(all.rows).toHaveLength(3000);
    for (const asset of ASSETS) {
      const expected = all.rows.filter((r) => r.asset === asset).map((r) => r.sequence);
      expect(expected.length).toBeGreaterThan(500);
      const walk = await walkTransactions(client, MULTI, () => rnd.int(1, 120), asset);
      expectWellFormed(walk, MULTI);
      const foreign = walk.rows.filter((r) => r.asset !== asset);
      expect(foreign).toEqual([]);
      expect(walk.rows.map((r) => r.sequence)).toEqual(expected);
    }
    // An asset the account never used pages to nothing rather than to everything.
    const none = await client.listTransactions({ accountId: MULTI, asset: "JPY", pageSize: 10 });
    expect(none.transactions).toEqual([]);
    expect(none.nextPageToken).toBe("");
  });
});

describe("ListAccounts paging", () => {
  it("returns each of ~300 accounts exactly once, in id order, for every page size", async () => {
    const admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
    const { adminKeySecret } = await admin.createTenant({ id: "paging-accounts" });
    const c = clientFor(LedgerService, server.url, "connect-binary", adminKeySecret);
    // Random ids over the whole alphabet, so byte order (not locale order) is what is checked.
    const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";
    const ids = new Set<string>();
    while (ids.size < 300) {
      let id = "";
      for (let n = rnd.int(1, 12); n > 0; n--) id += alphabet[rnd.int(0, alphabet.length - 1)];
      ids.add(id);
    }
    const list = [...ids];
    for (let i = 0; i < list.length; i += 50) await Promise.all(list.slice(i, i + 50).map((id) => c.createAccount({ id })));
    // Code-unit order is SQLite's BINARY order for ASCII ids.
    const expected = [...list, "@world"].sort();
    let got: string[] = [];
    for (const size of [1, 7, 0, 25, 299, 300, 301, 1000]) {
      got = [];
      let token = "";
      let pages = 0;
      do {
        const res = await c.listAccounts({ pageSize: size, pageToken: token });
        const limit = size === 0 ? 25 : size;
        expect(res.accounts.length).toBeLessThanOrEqual(limit);
        if (res.nextPageToken !== "") expect(res.accounts.length).toBe(limit);
        got.push(...res.accounts.map((a) => a.id));
        token = res.nextPageToken;
        if (++pages > 1000) throw new Error("ListAccounts does not terminate");
      } while (token !== "");
      expect(got, `page_size ${size}`).toEqual(expected);
    }
    // The default tenant's accounts never show up in this tenant's listing.
    expect(got).not.toContain(BIG);
  });
});
