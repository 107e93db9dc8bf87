import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { compressionBombs } from "./support/h2-frames.js";
import { clientFor, spawnServer, tempDir } from "./support/server.js";
import type { ChildServer } from "./support/server.js";
import { becomesTrue } from "./support/poll.js";

// The server's open-file limit in these tests, and the attack: twice that many connections.
const MAX_FILES = 256;
const ATTACK = 2 * MAX_FILES;
const ATTACKER = "127.0.0.2";
const IDLE_MS = 1000;
const bounds = ["--idle-timeout-ms", String(IDLE_MS), "--headers-timeout-ms", "1000"];

let server: ChildServer | undefined;
const dirs: Array<() => void> = [];
afterEach(async () => {
  await server?.stop();
  server = undefined;
  for (const remove of dirs.splice(0)) remove();
});

async function start(extra: string[]): Promise<{ server: ChildServer; port: number }> {
  const { dir, remove } = tempDir("tally-fd-");
  dirs.push(remove);
  server = await spawnServer(join(dir, "tally.db"), [...bounds, ...extra], {}, { maxOpenFiles: MAX_FILES });
  return { server, port: Number(new URL(server.url).port) };
}

const fds = (s: ChildServer) => readdirSync(`/proc/${s.child.pid}/fd`).length;

/** A GetBalance over gRPC from 127.0.0.1 (on a fresh connection unless given a client); true when answered. */
async function serves(s: ChildServer, client = clientFor(LedgerService, s.url, "grpc", s.adminKey)): Promise<boolean> {
  try {
    const { balance } = await client.getBalance({ accountId: "@world", asset: "USD" }, { timeoutMs: 5000 });
    return balance?.posted === 0n;
  } catch {
    return false;
  }
}


describe(`a server with ulimit -n ${MAX_FILES} under ${ATTACK} compression-error connections`, () => {
  it("keeps serving other addresses during the attack (per-address limit), and its fd count returns to baseline", async () => {
    const { server: s, port } = await start(["--max-connections-per-address", "64"]);
    expect(await serves(s)).toBe(true);
    const baseline = fds(s);
    let calls = 0;
    let failures = 0;
    let attacking = true;
    const client = clientFor(LedgerService, s.url, "grpc", s.adminKey);
    const legit = (async () => {
      while (attacking) {
        calls++;
        if (!(await serves(s, client))) failures++;
      }
    })();
    await compressionBombs(port, ATTACK, 64, undefined, ATTACKER);
    attacking = false;
    await legit;
    expect(calls).toBeGreaterThan(0);
    expect(failures).toBe(0);
    expect(await becomesTrue(() => fds(s) <= baseline, IDLE_MS + 5000), `fds: ${fds(s)}, baseline ${baseline}`).toBe(true);
    expect(await serves(s)).toBe(true);
    expect(s.output()).toMatch(/connection refused.*max_per_address/);
  });

  it("stays up with no per-address limit (the overall limit, below the fd limit, holds) and serves again", async () => {
    const { server: s, port } = await start(["--max-connections-per-address", "0"]);
    const baseline = fds(s);
    await compressionBombs(port, ATTACK, 128, undefined, ATTACKER);
    expect(s.child.exitCode).toBeNull();
    expect(await becomesTrue(() => serves(s), IDLE_MS + 10_000)).toBe(true);
    expect(await becomesTrue(() => fds(s) <= baseline + 1, IDLE_MS + 5000), `fds: ${fds(s)}, baseline ${baseline}`).toBe(true);
    expect(s.output()).toMatch(/connection refused.*max_connections/);
  });

  it("survives running out of descriptors when told a connection limit above them", async () => {
    const { server: s, port } = await start(["--max-connections-per-address", "0", "--max-connections", "5000"]);
    let most = 0;
    const sampler = setInterval(() => (most = Math.max(most, fds(s))), 10);
    await compressionBombs(port, ATTACK, 128, undefined, ATTACKER);
    clearInterval(sampler);
    // It did run out (libuv then accepts and drops connections until one is free again).
    expect(most).toBeGreaterThanOrEqual(MAX_FILES - 2);
    expect(s.child.exitCode).toBeNull();
    expect(await becomesTrue(() => serves(s), IDLE_MS + 10_000)).toBe(true);
  });
});
