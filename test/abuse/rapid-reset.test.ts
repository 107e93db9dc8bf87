import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerService } from "../../gen/tally/ledger/v1/ledger_pb.js";
import { clientFor, spawnServer, tempDir } from "../support/server.js";
import type { ChildServer } from "../support/server.js";

// The scenario: 8 attacking connections for 20 s, from an address of their own.
const ATTACK_S = Number(process.env.TALLY_RAPID_RESET_S ?? 20);
const CONNECTIONS = 8;
const ATTACKER = "127.0.0.2";

let server: ChildServer;
const dir = tempDir("tally-reset-");
beforeAll(async () => {
  // Server on core 0, attacker on core 1: the attacker does not simply starve the server of CPU.
  server = await spawnServer(join(dir.dir, "tally.db"), [], {}, { cpus: "0" });
});
afterAll(async () => {
  await server?.stop();
  dir.remove();
});

const fds = () => readdirSync(`/proc/${server.child.pid}/fd`).length;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

describe("rapid reset", () => {
  it(
    `from ${CONNECTIONS} connections for ${ATTACK_S} s: other clients' calls finish with p99 under 1 s, and the fd count returns to baseline`,
    async () => {
      const port = new URL(server.url).port;
      const clients = Array.from({ length: 4 }, () => clientFor(LedgerService, server.url, "grpc", server.adminKey));
      for (const c of clients) await c.getBalance({ accountId: "@world", asset: "USD" });
      const baseline = fds();

      const attacker = spawn("taskset", ["-c", "1", process.execPath, "--import", "tsx", "test/support/rapid-reset-attack.ts", port, String(CONNECTIONS), String(ATTACK_S), ATTACKER], {
        cwd: join(import.meta.dirname, "..", ".."),
        stdio: ["ignore", "pipe", "inherit"],
      });
      let out = "";
      attacker.stdout!.on("data", (d: Buffer) => (out += d.toString()));
      const finished = new Promise<void>((r) => attacker.once("exit", () => r()));
      let attacking = true;
      void finished.then(() => (attacking = false));

      const latencies: number[] = [];
      let failures = 0;
      await Promise.all(
        clients.map(async (c) => {
          while (attacking) {
            const t = performance.now();
            try {
              await c.getBalance({ accountId: "@world", asset: "USD" }, { timeoutMs: 10_000 });
              latencies.push(performance.now() - t);
            } catch {
              failures++;
            }
          }
        }),
      );
      await finished;
      const stats = JSON.parse(out) as { connects: number; streams: number; enhanceYourCalm: number; refused: number };
      latencies.sort((a, b) => a - b);
      const p99 = percentile(latencies, 99);
      console.log(JSON.stringify({ attack: stats, calls: latencies.length, failures, p50_ms: percentile(latencies, 50), p99_ms: p99, max_ms: latencies.at(-1) }));

      // The attack was real: many streams, and the server ended sessions for it.
      expect(stats.streams).toBeGreaterThan(10_000);
      expect(stats.enhanceYourCalm).toBeGreaterThan(0);
      expect(server.output()).toMatch(/session ended for abuse.*rapid_reset/);
      expect(server.output()).toMatch(/connection refused.*penalty/);
      expect(failures).toBe(0);
      expect(latencies.length).toBeGreaterThan(100);
      expect(p99).toBeLessThan(1000);

      const until = performance.now() + 10_000;
      while (fds() > baseline && performance.now() < until) await new Promise((r) => setTimeout(r, 100));
      expect(fds()).toBeLessThanOrEqual(baseline);
    },
    ATTACK_S * 1000 + 60_000,
  );
});
