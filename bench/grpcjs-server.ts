/**
 * Baseline (a): Tally's GetBalance logic served by the stock Node gRPC stack,
 * @grpc/grpc-js with @grpc/proto-loader (protobufjs), instead of connect-node.
 *
 * It does the same application work per call as Tally's handler: resolve the
 * bearer key (Access.authenticate: one SQLite read and a SHA-256), apply the
 * account-read rule, then Ledger.getBalance over a SqliteStore opened on the
 * same database file. What differs is only the RPC stack (routing, framing,
 * (de)serialization, interceptors, logging), which is what the ratio is about.
 *
 * With --constant ACCOUNT:ASSET it is baseline (c) instead: grpc-js
 * answering every call with one constant GetBalanceResponse (that balance,
 * read once at start), with no key check and no database read per call: the
 * fastest thing a Node gRPC user could run on this proto.
 *
 * Usage: node --import tsx bench/grpcjs-server.ts --db FILE [--constant ACCOUNT:ASSET]
 * Prints `READY port=N` once listening.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Access } from "../src/domain/access.js";
import { LedgerError } from "../src/domain/errors.js";
import type { LedgerErrorCode } from "../src/domain/errors.js";
import { Ledger } from "../src/domain/ledger.js";
import type { Balance } from "../src/domain/model.js";
import { requireAccountRead } from "../src/services/principal.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";

// Not imported from children.ts: that module installs the bench's own signal handlers.
// The repository root, from bench/ or, compiled (BENCH_DIST=1), from dist/bench/.
const ROOT = join(dirname(fileURLToPath(import.meta.url)), import.meta.url.includes("/dist/bench/") ? "../.." : "..");

const { values } = parseArgs({ options: { db: { type: "string" }, host: { type: "string", default: "127.0.0.1" }, constant: { type: "string" } } });
if (!values.db) throw new Error("--db FILE is required");

const store = SqliteStore.open({ path: values.db });
const ledger = new Ledger({ store });
const access = new Access(store, () => ledger.now());

// protobufjs via proto-loader, as a grpc-js user would write it: int64 as decimal strings.
const definition = protoLoader.loadSync(join(ROOT, "proto/tally/ledger/v1/ledger.proto"), {
  includeDirs: [join(ROOT, "proto")],
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
});
const pkg = grpc.loadPackageDefinition(definition) as unknown as {
  tally: { ledger: { v1: { LedgerService: grpc.ServiceClientConstructor } } };
};

const STATUS: Record<LedgerErrorCode, grpc.status> = {
  invalid_argument: grpc.status.INVALID_ARGUMENT,
  not_found: grpc.status.NOT_FOUND,
  already_exists: grpc.status.ALREADY_EXISTS,
  failed_precondition: grpc.status.FAILED_PRECONDITION,
  out_of_range: grpc.status.OUT_OF_RANGE,
  permission_denied: grpc.status.PERMISSION_DENIED,
  unauthenticated: grpc.status.UNAUTHENTICATED,
  resource_exhausted: grpc.status.RESOURCE_EXHAUSTED,
  aborted: grpc.status.ABORTED,
  unavailable: grpc.status.UNAVAILABLE,
  internal: grpc.status.INTERNAL,
};

function timestamp(us: bigint): { seconds: string; nanos: number } {
  return { seconds: (us / 1_000_000n).toString(), nanos: Number(us % 1_000_000n) * 1000 };
}

/** The same fields as Tally's balanceToProto, in proto-loader's plain-object form. */
function balanceMessage(b: Balance): Record<string, unknown> {
  return {
    accountId: b.accountId,
    asset: b.asset,
    scale: b.scale,
    posted: b.posted.toString(),
    pendingIn: b.pendingIn.toString(),
    pendingOut: b.pendingOut.toString(),
    available: b.available.toString(),
    locked: b.frozenAt !== null,
    ...(b.frozenAt === null ? {} : { lockedAt: timestamp(b.frozenAt) }),
    updatedAt: timestamp(b.updatedAt),
    sequence: b.sequence.toString(),
  };
}

async function getBalance(call: grpc.ServerUnaryCall<{ accountId?: string; asset?: string }, unknown>): Promise<unknown> {
  const header = call.metadata.get("authorization")[0];
  const m = typeof header === "string" ? /^Bearer\s+(\S+)$/i.exec(header) : null;
  if (!m) throw new LedgerError("unauthenticated", "missing_credentials", "missing credentials");
  const principal = await access.authenticate(m[1]!);
  const accountId = call.request.accountId ?? "";
  requireAccountRead(principal, accountId);
  const balance = await ledger.getBalance(principal.tenantId, accountId, call.request.asset ?? "");
  return { balance: balanceMessage(balance) };
}

let constant: unknown;
if (values.constant !== undefined) {
  const [accountId, asset] = values.constant.split(":");
  const tenantId = (await store.listTenantIds())[0]!;
  constant = { balance: balanceMessage(await ledger.getBalance(tenantId, accountId!, asset!)) };
}

const server = new grpc.Server({ "grpc.max_concurrent_streams": 1000 });
server.addService(pkg.tally.ledger.v1.LedgerService.service, {
  getBalance(call: grpc.ServerUnaryCall<{ accountId?: string; asset?: string }, unknown>, callback: grpc.sendUnaryData<unknown>) {
    if (constant !== undefined) return callback(null, constant);
    getBalance(call).then(
      (res) => callback(null, res),
      (e: unknown) => {
        const code = e instanceof LedgerError ? STATUS[e.code] : grpc.status.INTERNAL;
        callback({ code, details: e instanceof Error ? e.message : String(e) });
      },
    );
  },
});
server.bindAsync(`${values.host}:0`, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stdout.write(`READY port=${port}\n`);
});
process.once("SIGTERM", () => {
  server.tryShutdown(() => {
    void store.close().then(() => process.exit(0));
  });
  setTimeout(() => process.exit(0), 2000).unref();
});
