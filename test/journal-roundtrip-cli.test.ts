/**
 * `tally export` and `tally import` as an operator runs them, on real SQLite
 * files: a 100k-transfer ledger (current and backdated transfers, holds
 * posted and voided, a frozen account) exports, imports into a fresh
 * database and exports again byte for byte; the import verifies and reports
 * its throughput; a second import changes nothing; stdin works; a refused
 * file exits non-zero and says why.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Access } from "../src/domain/access.js";
import { Ledger, type TransferInput } from "../src/domain/ledger.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { runTallyCli } from "./support/durability.js";
import { tempDir } from "./support/server.js";
import { payment } from "./support/transfer-input.js";

const TRANSFERS = 100_000;
const ACCOUNTS = 1_000;
const { dir, remove } = tempDir();
const source = join(dir, "source.db");
const target = join(dir, "target.db");
const first = join(dir, "first.ndjson");
const second = join(dir, "second.ndjson");
const small = join(dir, "small.db");

beforeAll(async () => {
  // Built through the domain in this process (the CLI is what is under test).
  const store = SqliteStore.open({ path: source });
  const T0 = BigInt(Date.UTC(2024, 0, 1)) * 1000n;
  const ledger = new Ledger({ store });
  await new Access(store, () => T0).createTenant({ id: "acme", name: "Acme Corp" });
  for (let i = 0; i < ACCOUNTS; i++) {
    await ledger.createAccount("acme", { id: `acct-${i}`, overdraftLimit: 0n, overdraftUnlimited: false, metadata: { n: String(i) }, effectiveAt: T0 });
  }
  let n = 0;
  const holds: string[] = [];
  // Backdated history, one effective second per batch, then current writes.
  for (let batch = 0; n < TRANSFERS; batch++) {
    const inputs: TransferInput[] = [];
    for (let i = 0; i < 1000 && n < TRANSFERS; i++, n++) {
      const to = `acct-${n % ACCOUNTS}`;
      const from = n < ACCOUNTS ? "@world" : `acct-${(n * 7 + 3) % ACCOUNTS}`;
      const backdated = batch < 60 ? { effectiveAt: T0 + BigInt(batch + 1) * 1_000_000n } : {};
      inputs.push({ ...payment(`k-${n}`, from, from === to ? "@world" : to, n < ACCOUNTS ? 1_000_000n : BigInt((n % 97) + 1)), pending: n >= ACCOUNTS && n % 50 === 7, ...backdated });
    }
    for (const r of await ledger.postTransfers("acme", inputs)) if (r.transfer.status === "PENDING") holds.push(r.transfer.id);
  }
  for (const [i, id] of holds.entries()) {
    if (i % 3 === 0) await ledger.voidPending("acme", id);
    else if (i % 3 === 1) await ledger.postPending("acme", id, 1n);
  }
  await ledger.setFrozen("acme", "acct-5", true);
  await store.close();
  const smallStore = SqliteStore.open({ path: small });
  await new Access(smallStore, () => T0).createTenant({ id: "shop", name: "Shop" });
  const smallLedger = new Ledger({ store: smallStore });
  await smallLedger.createAccount("shop", { id: "till", overdraftLimit: 0n, overdraftUnlimited: false, metadata: {} });
  for (let i = 0; i < 10; i++) await smallLedger.postTransfer("shop", payment(`s-${i}`, "@world", "till", 9_007_199_254_740_993n));
  await smallStore.close();
}, 600_000);

afterAll(() => remove());

describe("tally export / tally import", () => {
  it("round-trips 100k transfers byte for byte, verifies, and reports its throughput", async () => {
    const exported = await runTallyCli(["export", "--db", source, "--out", first], 300_000);
    expect(exported.stderr).toBe("");
    expect(exported.code).toBe(0);
    const summary = JSON.parse(exported.stdout) as { exported: { records: number; writes: number } };
    const holds = (TRANSFERS - ACCOUNTS) / 50;
    expect(summary.exported.writes).toBe(TRANSFERS + holds - Math.floor(holds / 3));

    const imported = await runTallyCli(["import", "--create", "--db", target, first], 600_000);
    expect(imported.stderr).toBe("");
    expect(imported.code).toBe(0);
    const report = (JSON.parse(imported.stdout) as { imported: { ok: boolean; transfersPerSecond: number; seconds: number; tenants: { tenant: string; transfersCreated: number; verified: boolean; adminKey: string }[] } }).imported;
    expect(report.ok).toBe(true);
    expect(report.tenants).toMatchObject([{ tenant: "acme", transfersCreated: TRANSFERS, verified: true }]);
    expect(report.tenants[0]!.adminKey).toMatch(/^tly_/);
    expect(report.transfersPerSecond).toBeGreaterThan(0);
    console.log(`import: ${TRANSFERS} transfers in ${report.seconds} s, ${report.transfersPerSecond} transfers/s`);

    expect((await runTallyCli(["export", "--db", target, "--out", second], 300_000)).code).toBe(0);
    expect(readFileSync(second).equals(readFileSync(first))).toBe(true);
    expect((await runTallyCli(["verify", "--db", target], 300_000)).code).toBe(0);

    const again = await runTallyCli(["import", "--db", target, first], 600_000);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ imported: { ok: true, tenants: [{ transfersCreated: 0, transfersPresent: TRANSFERS, accountsCreated: 0 }] } });
  }, 900_000);

  it("reads stdin, and exits non-zero naming the line of a file it refuses", async () => {
    const piped = await runTallyCli(["export", "--db", small, "--tenant", "shop"]);
    expect(piped.code).toBe(0);
    expect(piped.stdout).toMatch(/^\{"type":"header","format":"tally-journal","version":1\}\n\{"type":"tenant","id":"shop","name":"Shop"\}\n/);
    expect(piped.stdout).toContain('"amount":"9007199254740993"');
    expect(JSON.parse(piped.stderr)).toMatchObject({ exported: { file: null, writes: 10 } });
    const copy = join(dir, "stdin.db");
    const fromStdin = await runTallyCli(["import", "--create", "--db", copy, "--tenant", "copy", "-"], 60_000, piped.stdout);
    expect(fromStdin.stderr).toBe("");
    expect(JSON.parse(fromStdin.stdout)).toMatchObject({ imported: { ok: true, tenants: [{ tenant: "copy", transfersCreated: 10 }] } });
    const back = await runTallyCli(["export", "--db", copy]);
    expect(back.stdout).toBe(piped.stdout.replace('"id":"shop","name":"Shop"', '"id":"copy","name":"Shop"'));

    const bad = join(dir, "truncated.ndjson");
    writeFileSync(bad, piped.stdout.split("\n").slice(0, 8).join("\n"));
    const refused = await runTallyCli(["import", "--create", "--db", join(dir, "fresh.db"), bad]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/tally: the file has no end record: it is incomplete/);
    expect(refused.stdout).toBe("");
  }, 600_000);
});
