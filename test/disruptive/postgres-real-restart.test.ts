/**
 * Restarts the real PostgreSQL server under load (`npm run test:pg-restart`).
 * Not part of `npm test`: a restart would break every other test running
 * against the same server at that moment. The suite's
 * test/postgres-restart.test.ts covers the same path by killing only this
 * server's connections.
 *
 * Calls in flight when PostgreSQL goes away fail with `unavailable`; clients
 * retry them with the same idempotency key; nothing is applied twice, and the
 * same server process serves again once PostgreSQL is back. While it is
 * stopped, health says NOT_SERVING (and /readyz 503), then SERVING again.
 */
import { exec } from "node:child_process";
import { promisify } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
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

it("reports NOT_SERVING (gRPC health, /readyz) while PostgreSQL is stopped, and SERVING once it is back", async () => {
  const h = clientFor(Health, server.url, "grpc", undefined);
  const readyz = async () => (await fetch(`${server.url}/readyz`)).status;
  // Polled, not timed: the server probes its store every 2 s, a loaded machine may take longer.
  const until = async (want: Status, status: number) => {
    for (let i = 0; i < 300; i++) {
      const got = await h.check({ service: "" }).then((r) => r.status, () => undefined);
      if (got === want && (await readyz()) === status) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`health never became ${Status[want]}`);
  };
  await until(Status.SERVING, 200);
  const watch = h.watch({ service: "tally.ledger.v1.LedgerService" })[Symbol.asyncIterator]();
  expect((await watch.next()).value?.status).toBe(Status.SERVING);
  await promisify(exec)("pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main stop");
  try {
    expect((await watch.next()).value?.status).toBe(Status.NOT_SERVING);
    await until(Status.NOT_SERVING, 503);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  } finally {
    await promisify(exec)("pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start");
  }
  expect((await watch.next()).value?.status).toBe(Status.SERVING);
  await until(Status.SERVING, 200);
  await watch.return?.();
  expect(server.child.exitCode).toBeNull();
});
