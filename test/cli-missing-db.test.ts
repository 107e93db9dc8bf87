import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runTallyCli } from "./support/durability.js";
import { tempDir } from "./support/server.js";

// A mistyped --db used to succeed on a new, empty database and leave it behind.
describe("CLI commands on a SQLite file that does not exist", () => {
  const scratch = tempDir();
  // The folder the missing database would be in: it must stay empty.
  const empty = join(scratch.dir, "empty");
  const missing = join(empty, "typo.db");
  // An import's input lives outside that folder.
  const journal = join(scratch.dir, "journal.ndjson");
  afterAll(() => scratch.remove());

  const commands: string[][] = [
    ["verify"],
    ["verify", "--tenant", "default"],
    ["migrate"],
    ["backup", "--to", join(empty, "copy.db")],
    ["tenant", "create", "--id", "acme"],
    ["tenant", "list"],
    ["key", "create", "--tenant", "default", "--admin"],
    ["key", "list", "--tenant", "default"],
    ["key", "revoke", "--tenant", "default", "--id", "k1"],
    ["credential", "create", "--tenant", "default", "--kind", "metronome_platform_key"],
    ["export"],
    ["export", "--out", join(empty, "out.ndjson")],
    ["import", journal],
  ];

  it("each exits 1 naming the path, and creates nothing (no file, -wal, -shm or .lock)", async () => {
    mkdirSync(empty);
    writeFileSync(journal, '{"type":"header","format":"tally-journal","version":1}\n');
    // Two at a time: two cores.
    for (let i = 0; i < commands.length; i += 2) {
      const batch = commands.slice(i, i + 2);
      const results = await Promise.all(batch.map((args) => runTallyCli([...args, "--db", missing])));
      batch.forEach((args, j) => {
        const r = results[j]!;
        const name = args.join(" ");
        expect(r.code, `${name}: ${r.stderr}`).toBe(1);
        expect(r.stdout, name).toBe("");
        const hint = args[0] === "import" ? "give --create to import into a new database" : "serve creates one on first start";
        expect(r.stderr, name).toBe(`tally: no database at ${missing} (${hint})\n`);
        expect(readdirSync(empty), name).toEqual([]);
      });
    }
  }, 180_000);

  it("import from stdin is refused before it reads anything", async () => {
    const r = await runTallyCli(["import", "--db", missing, "-"], 30_000, '{"type":"header","format":"tally-journal","version":1}\n');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`no database at ${missing}`);
    expect(readdirSync(empty)).toEqual([]);
  });

  it("import --create makes a new database for the import; an existing file (even empty) is accepted without it", async () => {
    const source = join(scratch.dir, "source.db");
    const created = await runTallyCli(["tenant", "create", "--id", "shop", "--db", source]);
    // tenant create refuses a missing file too: an empty file is a valid, empty SQLite database.
    expect(created.code).toBe(1);
    writeFileSync(source, "");
    expect((await runTallyCli(["tenant", "create", "--id", "shop", "--db", source])).code).toBe(0);
    const exported = await runTallyCli(["export", "--db", source, "--out", join(scratch.dir, "shop.ndjson")]);
    expect(exported.code, exported.stderr).toBe(0);

    const fresh = join(scratch.dir, "fresh.db");
    const imported = await runTallyCli(["import", "--create", "--db", fresh, join(scratch.dir, "shop.ndjson")]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({ imported: { ok: true, tenants: [{ tenant: "shop", verified: true }] } });
    const listed = await runTallyCli(["tenant", "list", "--db", fresh]);
    expect(listed.stdout).toContain('"tenant":"shop"');
  }, 120_000);
});
