import { createClient } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AdminService, KeyScope } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import type { Fixture } from "./fixture.js";

/** bench/fixture.ts's Fixture without the SQLite file: the data as seen through the API. */
export type ApiFixture = Omit<Fixture, "dbPath">;

/** Clients of a running Tally server, every call carrying `key`. */
export function tallyClients(baseUrl: string, key: string) {
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
  const transport = createGrpcTransport({ baseUrl, interceptors: [bearer] });
  return { ledger: createClient(LedgerService, transport), admin: createClient(AdminService, transport) };
}

/**
 * The admin key `tally serve` prints when it bootstraps an empty store (the
 * operator key of tenant "default"), read from the server's stdout.
 */
export function bootstrapKeyOf(serverOutput: string): string {
  const m = /admin API key is shown only this once:\s+(\S+)/.exec(serverOutput);
  if (!m) throw new Error(`the server printed no bootstrap key (was the store not empty?); output:\n${serverOutput}`);
  return m[1]!;
}

/**
 * Builds, through a running server's gRPC API, exactly the data
 * bench/fixture.ts builds through the domain API on SQLite: tenant "bench"
 * (created with the bootstrap operator key, so the bench then uses an
 * ordinary tenant-admin key, as on SQLite), a funded `reader`, a funded
 * `payer`, `payeeCount` payees, and funded payers that with the payees make
 * 100 accounts (the load without a hot row). Going through the API needs nothing of the
 * store's own TypeScript, so it works for any store `tally serve` can open.
 */
export async function prepareFixtureViaApi(baseUrl: string, operatorKey: string, payeeCount: number): Promise<ApiFixture> {
  const tenantId = "bench";
  const created = await tallyClients(baseUrl, operatorKey).admin.createTenant({ id: tenantId, name: "Benchmark tenant" });
  const adminKey = created.adminKeySecret;
  if (!adminKey) throw new Error("CreateTenant returned no admin key secret");
  const { ledger } = tallyClients(baseUrl, adminKey);
  const asset = "USD";
  const readAccount = "reader";
  const payer = "payer";
  const payees = Array.from({ length: payeeCount }, (_, i) => `payee-${i}`);
  // With the payees, 100 accounts for the load without a hot payer.
  const spreadPayers = Array.from({ length: Math.max(1, 100 - payeeCount) }, (_, i) => `spread-payer-${i}`);
  for (const id of [readAccount, payer, ...payees, ...spreadPayers]) {
    await ledger.createAccount({ id, overdraftLimit: 0n, overdraftUnlimited: false });
  }
  const fund = (to: string, amount: bigint) =>
    ledger.postTransfer({
      idempotencyKey: `fund-${to}`,
      debitAccountId: "@world",
      creditAccountId: to,
      asset,
      amount,
      kind: "adjustment",
      note: "benchmark funding",
    });
  await fund(readAccount, 123_456_789n);
  await fund(payer, 1_000_000_000_000_000n);
  for (const id of spreadPayers) await fund(id, 1_000_000_000_000n);
  const reader = await tallyClients(baseUrl, adminKey).admin.createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: readAccount, label: "bench reader" });
  return { tenantId, adminKey, readAccount, readerKey: reader.secret, payer, payees, spreadPayers, asset, fundingTransfers: 2 + spreadPayers.length };
}
