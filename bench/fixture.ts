import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { GetBalanceRequestSchema } from "../gen/tally/ledger/v1/ledger_pb.js";
import { Access } from "../src/domain/access.js";
import { Ledger } from "../src/domain/ledger.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";

/** The data every measurement runs against. */
export interface Fixture {
  readonly dbPath: string;
  readonly tenantId: string;
  /** A tenant admin key: may read any account and post transfers. */
  readonly adminKey: string;
  /** The account GetBalance reads: funded, so its balance row exists. */
  readonly readAccount: string;
  /** An account-scoped (read) key of readAccount: what the REST dialects' GET /balance routes act for. */
  readonly readerKey: string;
  /** The account PostTransfer debits; funded far beyond what a run can spend. */
  readonly payer: string;
  /** The accounts PostTransfer credits, one per client. */
  readonly payees: readonly string[];
  /** Funded payers that with the payees make 100 accounts: the load without one hot payer. */
  readonly spreadPayers: readonly string[];
  /** Transfers the fixture itself posted (funding), not counted as load. */
  readonly fundingTransfers: number;
  readonly asset: string;
}

/**
 * Creates the benchmark database through the domain API (not raw SQL), so it
 * holds exactly what a real deployment would: a tenant, its admin key, and
 * funded accounts. The store is closed again before any server opens the file.
 */
export async function prepareFixture(dir: string, payeeCount: number): Promise<Fixture> {
  const dbPath = join(dir, "tally.db");
  const store = SqliteStore.open({ path: dbPath });
  try {
    const ledger = new Ledger({ store });
    const access = new Access(store, () => ledger.now());
    const tenantId = "bench";
    const { admin } = await access.createTenant({ id: tenantId, name: "Benchmark tenant" });
    const asset = "USD";
    const readAccount = "reader";
    const payer = "payer";
    const payees = Array.from({ length: payeeCount }, (_, i) => `payee-${i}`);
    const spreadPayers = Array.from({ length: Math.max(1, 100 - payeeCount) }, (_, i) => `spread-payer-${i}`);
    for (const id of [readAccount, payer, ...payees, ...spreadPayers]) {
      await ledger.createAccount(tenantId, { id, overdraftLimit: 0n, overdraftUnlimited: false, metadata: {} });
    }
    const fund = (to: string, amount: bigint) =>
      ledger.postTransfer(tenantId, {
        idempotencyKey: `fund-${to}`,
        debitAccountId: "@world",
        creditAccountId: to,
        asset,
        amount,
        kind: "adjustment",
        note: "benchmark funding",
        metadata: {},
        pending: false,
      });
    await fund(readAccount, 123_456_789n);
    await fund(payer, 1_000_000_000_000_000n);
    for (const id of spreadPayers) await fund(id, 1_000_000_000_000n);
    const reader = await access.createKey(tenantId, { scope: "account_read", accountId: readAccount, label: "bench reader" });
    return {
      dbPath,
      tenantId,
      adminKey: admin.secret,
      readAccount,
      readerKey: reader.secret,
      payer,
      payees,
      spreadPayers,
      fundingTransfers: 2 + spreadPayers.length,
      asset,
    };
  } finally {
    await store.close();
  }
}

/** The three request bodies of one GetBalance call, as h2load sends them. */
export interface GetBalanceBodies {
  /** gRPC: the 5-byte prefix (flag 0, big-endian length) then the binary message. */
  readonly grpc: string;
  /** Connect unary binary: the bare binary message. */
  readonly connectBinary: string;
  /** Connect unary JSON. */
  readonly connectJson: string;
}

/** Writes the GetBalance request bodies to files under `dir` and returns their paths. */
export function writeGetBalanceBodies(dir: string, accountId: string, asset: string): GetBalanceBodies {
  const msg = create(GetBalanceRequestSchema, { accountId, asset });
  const bin = toBinary(GetBalanceRequestSchema, msg);
  const framed = new Uint8Array(5 + bin.length);
  new DataView(framed.buffer).setUint32(1, bin.length, false);
  framed.set(bin, 5);
  const paths = {
    grpc: join(dir, "get-balance.grpc"),
    connectBinary: join(dir, "get-balance.bin"),
    connectJson: join(dir, "get-balance.json"),
  };
  writeFileSync(paths.grpc, framed);
  writeFileSync(paths.connectBinary, bin);
  writeFileSync(paths.connectJson, toJsonString(GetBalanceRequestSchema, msg));
  return paths;
}
