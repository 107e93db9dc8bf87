/**
 * Export and import of the journal, on SQLite and (postgres project) on
 * PostgreSQL, through the domain (no socket): a ledger with backdated and
 * current transfers, holds posted in part, in full and voided, a frozen
 * account still receiving, a freeze lifted, two tenants and several assets
 * round-trips byte for byte (export → import into a fresh store → export);
 * balances, as_of reads and verify agree; importing twice changes nothing;
 * a truncated, malformed or conflicting file is refused with the line it
 * fails on. The ledgers' clocks are the test's.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Access } from "../src/domain/access.js";
import { Ledger } from "../src/domain/ledger.js";
import type { Store } from "../src/domain/store.js";
import { journalRecords } from "../src/journal-file/export.js";
import { importJournal, type ImportOptions } from "../src/journal-file/import.js";
import { encodeRecord } from "../src/journal-file/records.js";
import { openDomainStore } from "./support/domain-store.js";
import { payment } from "./support/transfer-input.js";

const T0 = 1_700_000_000_000_000n; // 2023-11-14, in µs
const HOUR = 3_600_000_000n;
let clock = T0 + 1000n * HOUR;
const stores: { store: Store; close: () => Promise<void> }[] = [];
let source: Store;
let sourceLedger: Ledger;

async function fresh(name: string): Promise<{ store: Store; ledger: Ledger; access: Access }> {
  const s = await openDomainStore(name);
  stores.push(s);
  return { store: s.store, ledger: new Ledger({ store: s.store, clock: () => clock }), access: new Access(s.store, () => clock) };
}

async function exportText(store: Store, tenants?: string[]): Promise<string> {
  let out = "";
  for await (const r of journalRecords(store, { tenants, pageSize: 7 })) out += encodeRecord(r) + "\n";
  return out;
}

function linesOf(text: string) {
  return async function* () {
    yield* text.split("\n");
  };
}

async function importText(target: { store: Store; ledger: Ledger; access: Access }, text: string, options: ImportOptions = {}) {
  return importJournal({ ledger: target.ledger, access: target.access, tenants: target.store }, linesOf(text), { batchSize: 5, ...options });
}

beforeAll(async () => {
  const s = await fresh("journal_src");
  source = s.store;
  sourceLedger = s.ledger;
  await s.access.createTenant({ id: "t1", name: "Tenant One" });
  await s.access.createTenant({ id: "t2", name: "Tenant Two" });
  const L = sourceLedger;
  await L.defineAsset("t1", "USD", 2);
  await L.defineAsset("t1", "PTS", 0);
  // Opened in the past, in an order that is not their id order.
  await L.createAccount("t1", { id: "zed", overdraftLimit: 500n, overdraftUnlimited: false, metadata: { tier: "gold", a: "é\n\"" }, effectiveAt: T0 });
  await L.createAccount("t1", { id: "alice", overdraftLimit: 0n, overdraftUnlimited: false, metadata: {}, effectiveAt: T0 + HOUR });
  await L.createAccount("t1", { id: "bob", overdraftLimit: 0n, overdraftUnlimited: true, metadata: { k: "v" }, effectiveAt: T0 + HOUR });
  await L.createAccount("t1", { id: "carol", overdraftLimit: 0n, overdraftUnlimited: false, metadata: {}, effectiveAt: T0 + 2n * HOUR });
  await L.createAccount("t1", { id: "dave", overdraftLimit: 0n, overdraftUnlimited: false, metadata: {}, effectiveAt: T0 + 2n * HOUR });
  // Backdated history, then holds, then current writes.
  await L.postTransfers("t1", [
    { ...payment("fund-a", "@world", "alice", 100_000n), effectiveAt: T0 + 3n * HOUR, note: "opening", metadata: { src: "import" } },
    { ...payment("fund-z", "@world", "zed", 9_000_000_000_000_000_001n), effectiveAt: T0 + 3n * HOUR, kind: "adjustment" },
    { ...payment("fund-p", "@world", "carol", 70n), asset: "PTS", effectiveAt: T0 + 3n * HOUR },
  ]);
  await L.postTransfer("t1", { ...payment("a-b-1", "alice", "bob", 2_500n), effectiveAt: T0 + 4n * HOUR });
  const h1 = (await L.postTransfer("t1", { ...payment("hold-1", "alice", "carol", 1_000n), pending: true, effectiveAt: T0 + 5n * HOUR })).transfer;
  const h2 = (await L.postTransfer("t1", { ...payment("hold-2", "alice", "carol", 300n), pending: true, effectiveAt: T0 + 5n * HOUR })).transfer;
  const h3 = (await L.postTransfer("t1", { ...payment("hold-3", "zed", "dave", 42n), pending: true })).transfer;
  await L.postPending("t1", h1.id, 400n, T0 + 6n * HOUR); // in part
  await L.voidPending("t1", h2.id, T0 + 6n * HOUR);
  await L.postPending("t1", h3.id, 0n); // in full, now
  // carol frozen, then still credited; dave frozen and the freeze lifted.
  await L.setFrozen("t1", "carol", true, T0 + 7n * HOUR);
  await L.postTransfer("t1", { ...payment("to-carol", "bob", "carol", 5n), effectiveAt: T0 + 8n * HOUR });
  await L.setFrozen("t1", "dave", true);
  clock += HOUR;
  await L.setFrozen("t1", "dave", false);
  clock += HOUR;
  for (let i = 0; i < 23; i++) await L.postTransfer("t1", payment(`cur-${i}`, "bob", "alice", BigInt(i + 1)));
  // A second tenant with the same ids.
  await L.createAccount("t2", { id: "alice", overdraftLimit: 0n, overdraftUnlimited: false, metadata: {} });
  await L.postTransfer("t2", payment("fund-a", "@world", "alice", 7n));
});

afterAll(async () => {
  for (const s of stores) await s.close();
});

describe("journal export and import", () => {
  it("round-trips byte for byte, with the same balances, as_of reads and a clean verify", async () => {
    const first = await exportText(source);
    const target = await fresh("journal_rt");
    const report = await importText(target, first);
    expect(report.ok).toBe(true);
    expect(report.tenants.map((t) => [t.tenant, t.accountsCreated, t.transfersCreated, t.settlements, t.freezes, typeof t.adminKey])).toEqual([
      ["t1", 5, 31, 3, 2, "string"],
      ["t2", 1, 1, 0, 0, "string"],
    ]);
    expect(await exportText(target.store)).toBe(first);

    for (const [tenant, ids] of [["t1", ["alice", "bob", "carol", "dave", "zed"]], ["t2", ["alice"]]] as const) {
      for (const id of ids) {
        const strip = (bs: Awaited<ReturnType<Ledger["getMany"]>>) => bs.map(({ sequence: _s, ...b }) => b);
        expect(strip(await target.ledger.getMany(tenant, id))).toEqual(strip(await sourceLedger.getMany(tenant, id)));
        for (const at of [T0 + 3n * HOUR, T0 + 5n * HOUR + 1n, T0 + 6n * HOUR, T0 + 9n * HOUR]) {
          expect(strip(await target.ledger.getMany(tenant, id, at))).toEqual(strip(await sourceLedger.getMany(tenant, id, at)));
        }
        expect(await target.ledger.getAccount(tenant, id)).toEqual(await sourceLedger.getAccount(tenant, id));
      }
    }
    expect((await target.ledger.verify("t1")).ok).toBe(true);
  });

  it("changes nothing when imported twice, or into the ledger it came from", async () => {
    const text = await exportText(source);
    const target = await fresh("journal_twice");
    await importText(target, text);
    const again = await importText(target, text);
    expect(again.tenants.map((t) => [t.accountsCreated, t.transfersCreated, t.settlements, t.freezes, t.adminKey])).toEqual([
      [0, 0, 0, 0, undefined],
      [0, 0, 0, 0, undefined],
    ]);
    expect(again.tenants[0]!.transfersPresent).toBe(31);
    expect(await exportText(target.store)).toBe(text);

    const self = await importJournal({ ledger: sourceLedger, access: new Access(source, () => clock), tenants: source }, linesOf(text));
    expect(self.tenants.map((t) => [t.accountsCreated, t.transfersCreated, t.settlements, t.freezes])).toEqual([
      [0, 0, 0, 0],
      [0, 0, 0, 0],
    ]);
    expect(await exportText(source)).toBe(text);
  });

  it("imports one tenant's export into another tenant", async () => {
    const text = await exportText(source, ["t2"]);
    const target = await fresh("journal_map");
    const report = await importText(target, text, { tenant: "copy" });
    expect(report.tenants.map((t) => t.tenant)).toEqual(["copy"]);
    expect((await target.ledger.getBalance("copy", "alice", "USD")).posted).toBe(7n);
    expect(await target.store.getTenant("t2")).toBeUndefined();
    await expect(importText(target, await exportText(source), { tenant: "copy" })).rejects.toThrow(/one tenant; this one has 2 tenant sections/);
  });

  it("refuses a truncated or malformed file before writing anything", async () => {
    const text = await exportText(source);
    const lines = text.trimEnd().split("\n");
    const target = await fresh("journal_bad");
    const refuse = async (body: string, message: RegExp) => {
      await expect(importText(target, body)).rejects.toThrow(message);
      expect(await target.store.listTenantIds()).toEqual([]);
    };
    await refuse(lines.slice(0, -1).join("\n"), /no end record: it is incomplete/);
    await refuse(lines.slice(0, 40).concat(lines.slice(41)).join("\n"), new RegExp(`line ${lines.length - 1}: the end record counts ${lines.length - 2} records, the file holds ${lines.length - 3}`));
    await refuse(lines.slice(1).join("\n"), /line 1: a journal file starts with a header record/);
    const transferLine = lines.findIndex((l) => l.includes('"type":"transfer"'));
    for (const [from, to, message] of [
      ['"amount":"100000"', '"amount":"0100000"', /transfer\.amount must be an integer as a decimal string/],
      ['"amount":"100000"', '"amount":100000', /transfer\.amount must be an integer as a decimal string/],
      ['"pending":false', '"pending":false,"pendng":true', /transfer record has an unknown field "pendng"/],
      [/"effective_at":"\d{4}-\d{2}-\d{2}/, '"effective_at":"2023-02-30', /transfer\.effective_at must be an RFC 3339 UTC time/],
      ['{"type":"transfer"', '{"type":"transfers"', /unknown record type "transfers"/],
    ] as const) {
      const bad = [...lines];
      bad[transferLine] = bad[transferLine]!.replace(from, to);
      expect(bad[transferLine]).not.toBe(lines[transferLine]);
      await refuse(bad.join("\n"), new RegExp(`line ${transferLine + 1}: ${message.source}`));
    }
  });

  it("stops at a record the ledger refuses, naming its line; a re-run after the fix finishes the import", async () => {
    const text = await exportText(source, ["t1"]);
    const lines = text.trimEnd().split("\n");
    // Move one of alice's backdated transfers before her last recorded time: the effective-time rule refuses it.
    const bad = lines.findIndex((l) => l.includes('"idempotency_key":"a-b-1"'));
    const broken = [...lines];
    broken[bad] = broken[bad]!.replace(/"effective_at":"[^"]+"/, '"effective_at":"2023-11-14T23:00:00.000000Z"');
    const target = await fresh("journal_refused");
    await expect(importText(target, broken.join("\n"))).rejects.toThrow(new RegExp(`line ${bad + 1}: effective_at 2023-11-14T23:00:00.000000Z is before`));
    // What came before the refused record is written; the rest is not.
    expect((await target.ledger.getBalance("t1", "alice", "USD")).posted).toBe(100_000n);
    expect((await target.ledger.getBalance("t1", "bob", "USD")).posted).toBe(0n);
    const report = await importText(target, text);
    expect(report.ok).toBe(true);
    expect(report.tenants[0]!.transfersPresent).toBe(3);
    expect(await exportText(target.store)).toBe(text);
  });

  it("refuses a file whose transfer id is already taken by another transfer", async () => {
    const text = await exportText(source, ["t2"]);
    const target = await fresh("journal_clash");
    await importText(target, text);
    const id = /"type":"transfer","id":"([^"]+)"/.exec(text)![1]!;
    const changed = text.replace('"amount":"7"', '"amount":"8"');
    const line = text.split("\n").findIndex((l) => l.includes(`"id":"${id}"`)) + 1;
    await expect(importText(target, changed)).rejects.toThrow(new RegExp(`line ${line}: transfer "${id}" already exists with another amount`));
    expect((await target.ledger.getBalance("t2", "alice", "USD")).posted).toBe(7n);
  });
});
