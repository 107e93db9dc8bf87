/**
 * One serving process per SQLite file: a second `tally serve` on a file
 * another process serves is refused with a clear message (its streams would
 * never hear of the other's writes); the lock goes with the server (a clean
 * stop, or a SIGKILL, whose stale lock the next start replaces); commands
 * that do not serve keep working beside a server.
 */
import { existsSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { startTally } from "../src/app.js";
import { jsonLogger } from "../src/transport/log.js";
import { runTallyCli } from "./support/durability.js";
import { clientFor, spawnServer, tempDir } from "./support/server.js";

const { dir, remove } = tempDir();
afterAll(() => remove());

describe("one server per SQLite file", () => {
  it("refuses a second server on a file another process serves, naming it; read commands still work", async () => {
    const db = join(dir, "a.db");
    const first = await spawnServer(db);
    try {
      expect(existsSync(`${db}.lock`)).toBe(true);
      const second = await runTallyCli(["serve", "--db", db, "--port", "0"]);
      expect(second.code).not.toBe(0);
      expect(second.stderr).toMatch(new RegExp(`a\\.db is served by another Tally process \\(pid ${first.child.pid} on `));
      expect(second.stderr).toMatch(/stop it first, or remove .*a\.db\.lock if that process is gone/);
      // In this process too (startTally directly), and nothing is left open.
      await expect(startTally({ databasePath: db, port: 0, logger: jsonLogger(process.stderr, "silent") })).rejects.toThrow(/is served by another Tally process/);
      const verify = await runTallyCli(["verify", "--db", db]);
      expect(verify.code).toBe(0);
      expect(JSON.parse(verify.stdout.trim().split("\n")[0]!)).toMatchObject({ tenant: "default", ok: true });
      await clientFor(LedgerService, first.url, "grpc", first.adminKey).getBalance({ accountId: "@world", asset: "USD" });
    } finally {
      await first.stop();
    }
    expect(existsSync(`${db}.lock`)).toBe(false);
    const again = await startTally({ databasePath: db, port: 0, logger: jsonLogger(process.stderr, "silent") });
    await again.close();
  });

  it("replaces the stale lock of a server that was killed, or of a process that no longer exists", async () => {
    const db = join(dir, "b.db");
    const killed = await spawnServer(db);
    killed.child.kill("SIGKILL");
    await new Promise((r) => killed.child.once("exit", r));
    expect(existsSync(`${db}.lock`)).toBe(true);
    const next = await startTally({ databasePath: db, port: 0, logger: jsonLogger(process.stderr, "silent") });
    await next.close();
    // A pid that is surely not running (above the kernel's pid_max).
    writeFileSync(`${db}.lock`, JSON.stringify({ pid: 99_999_999, host: hostname(), token: "x", since: "2026-01-01T00:00:00Z" }));
    const after = await startTally({ databasePath: db, port: 0, logger: jsonLogger(process.stderr, "silent") });
    await after.close();
    // Another host's lock cannot be checked: refused.
    writeFileSync(`${db}.lock`, JSON.stringify({ pid: 1, host: "elsewhere.example", token: "x", since: "2026-01-01T00:00:00Z" }));
    await expect(startTally({ databasePath: db, port: 0, logger: jsonLogger(process.stderr, "silent") })).rejects.toThrow(/pid 1 on elsewhere\.example/);
  });
});
