/**
 * Restarts the real PostgreSQL server under load (`npm run test:pg-restart`).
 * Not part of `npm test`: a restart would break every other test running
 * against the same server at that moment. The suite's
 * test/postgres-restart.test.ts covers the same path by killing only this
 * server's connections.
 *
 * Calls in flight when PostgreSQL goes away fail with `unavailable`; clients
 * retry them with the same idempotency key; nothing is applied twice, and the
 * same server process serves again once PostgreSQL is back.
 */
import { exec } from "node:child_process";
import { promisify } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { AdminService } from "../../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../../gen/tally/ledger/v1/ledger_pb.js";
import { clientFor, spawnServer, tempDir } from "../support/server.js";
import type { ChildServer } from "../support/server.js";
import { freshPgUrl } from "../support/postgres.js";

const tmp = tempDir("tally-pg-restart-");
let server: ChildServer;

beforeAll(async () => {
  server = await spawnServer(`${tmp.dir}/unused.db`, ["--database", freshPgUrl("restart")]);
});
afterAll(async () => {
  await server?.stop();
  tmp.remove();
});

it("survives a PostgreSQL restart: in-flight calls are unavailable, retries apply once, no process restart", async () => {
  const L = clientFor(LedgerService, server.url, "grpc", server.adminKey);
  await L.createAccount({ id: "a" });
  const codes = new Map<string, number>();
  const acked = new Set<string>();
  let next = 0;
  let stop = false;
  const worker = async (w: number) => {
    while (!stop) {
      const key = `r${w}-${next++}`;
      for (let attempt = 0; ; attempt++) {
        try {
          await L.postTransfer({ idempotencyKey: key, debitAccountId: "@world", creditAccountId: "a", asset: "USD", amount: 1n }, { timeoutMs: 10_000 });
          acked.add(key);
          break;
        } catch (e) {
          const code = Code[ConnectError.from(e).code];
          codes.set(code, (codes.get(code) ?? 0) + 1);
          if (attempt > 300) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
  };
  const workers = Array.from({ length: 8 }, (_, i) => worker(i));
  await new Promise((r) => setTimeout(r, 1500));
  const before = acked.size;
  await promisify(exec)("pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main restart");
  await new Promise((r) => setTimeout(r, 3000));
  stop = true;
  await Promise.all(workers);
  console.log(`acked ${before} before the restart, ${acked.size} in all; failures seen ${JSON.stringify([...codes])}`);
  expect(before).toBeGreaterThan(0);
  expect([...codes.keys()]).toEqual(["Unavailable"]);
  expect(acked.size).toBeGreaterThan(before);
  // Each key applied exactly once: the balance is the number of keys.
  const { balance } = await L.getBalance({ accountId: "a", asset: "USD" });
  expect(balance?.posted).toBe(BigInt(acked.size));
  const report = await clientFor(AdminService, server.url, "grpc", server.adminKey).verify({});
  expect(report.ok).toBe(true);
  expect(server.child.exitCode).toBeNull();
});
