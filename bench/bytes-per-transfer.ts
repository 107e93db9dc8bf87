/**
 * Bytes per transfer on disk: posts TRANSFERS transfers (64 at a time, one
 * payer, 64 payees, unique keys) through the domain API into a fresh SQLite
 * file and prints how much the file grew per transfer, after the store's
 * close checkpointed the WAL into it. The same script on an older checkout
 * gives the "before" figure.
 *
 * Usage: npx tsx bench/bytes-per-transfer.ts [transfers=20000]
 */
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Access } from "../src/domain/access.js";
import { Ledger } from "../src/domain/ledger.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";

const transfers = Number(process.argv[2] ?? 20_000);
const dir = mkdtempSync(join(tmpdir(), "tally-bytes-"));
const path = join(dir, "tally.db");
const size = () => ["", "-wal"].reduce((n, s) => n + (existsSync(path + s) ? statSync(path + s).size : 0), 0);
const payees = Array.from({ length: 64 }, (_, i) => `payee-${i}`);
try {
  const setup = SqliteStore.open({ path });
  const ledger = new Ledger({ store: setup });
  await new Access(setup, () => ledger.now()).createTenant({ id: "bench", name: "bench" });
  for (const id of ["payer", ...payees]) await ledger.createAccount("bench", { id, overdraftLimit: 0n, overdraftUnlimited: true, metadata: {} });
  await setup.close();
  const before = size();
  const store = SqliteStore.open({ path });
  const l = new Ledger({ store });
  for (let n = 0; n < transfers; n += payees.length) {
    await Promise.all(
      payees.map((payee, i) =>
        l.postTransfer("bench", {
          idempotencyKey: `bench-${Date.now()}-${i}-${n}`,
          debitAccountId: "payer",
          creditAccountId: payee,
          asset: "USD",
          amount: 1n,
          kind: "payment",
          note: "",
          metadata: {},
          pending: false,
        }),
      ),
    );
  }
  await store.close();
  const done = Math.ceil(transfers / payees.length) * payees.length;
  process.stdout.write(`${JSON.stringify({ transfers: done, bytesPerTransfer: Math.round((size() - before) / done) })}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
