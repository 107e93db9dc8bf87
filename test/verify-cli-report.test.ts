import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runTallyCli } from "./support/durability.js";
import { tempDir } from "./support/server.js";

describe("tally verify off a terminal", () => {
  const scratch = tempDir();
  afterAll(() => scratch.remove());

  it("prints no progress bar, and reports seconds and entries per second for each tenant", async () => {
    const db = join(scratch.dir, "v.db");
    writeFileSync(db, "");
    expect((await runTallyCli(["tenant", "create", "--id", "acme", "--db", db])).code).toBe(0);
    const r = await runTallyCli(["verify", "--db", db]);
    expect(r.code, r.stderr).toBe(0);
    // stderr is a pipe here: no bar, no carriage returns or escapes.
    expect(r.stderr).toBe("");
    expect(r.stdout).not.toMatch(/[\r\u001b]/);
    const reports = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(reports.map((x) => x.tenant)).toEqual(["acme"]);
    for (const x of reports) {
      expect(x).toMatchObject({ ok: true, seconds: expect.any(Number), entriesPerSecond: expect.any(Number) });
      expect(x.entriesPerSecond as number).toBeGreaterThanOrEqual(0);
    }
  }, 60_000);
});
