import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { COMMANDS } from "../src/cli.js";
import { SERVE_FLAGS } from "../src/config.js";
import { editDistance, nearest } from "../src/cli/suggest.js";
import { runTallyCli } from "./support/durability.js";

const VERSION = (JSON.parse(readFileSync(join(import.meta.dirname, "..", "package.json"), "utf8")) as { version: string }).version;

/** Runs the CLI once per argument list, two at a time (two cores). */
async function runAll(argLists: string[][]) {
  const results: Awaited<ReturnType<typeof runTallyCli>>[] = [];
  for (let i = 0; i < argLists.length; i += 2) results.push(...(await Promise.all(argLists.slice(i, i + 2).map((a) => runTallyCli(a)))));
  return results;
}

describe("tally --version", () => {
  it("prints the package version, as --version, -v and version", async () => {
    for (const r of await runAll([["--version"], ["-v"], ["version"]])) expect(r).toMatchObject({ code: 0, stdout: `${VERSION}\n`, stderr: "" });
  });
});

describe("help", () => {
  it("every command answers --help", async () => {
    const names = COMMANDS.map((c) => c.name);
    const results = await runAll(names.map((n) => [...n.split(" "), "--help"]));
    names.forEach((name, i) => {
      expect(results[i]!.code, name).toBe(0);
      expect(results[i]!.stdout, name).toMatch(new RegExp(`^usage: tally ${name} `));
      expect(results[i]!.stdout, name).toContain("--help, -h");
    });
  }, 120_000);

  it("`tally help <command>` prints what `<command> --help` does", async () => {
    const names = ["serve", "key list", "backup"];
    const results = await runAll([...names.map((n) => ["help", ...n.split(" ")]), ...names.map((n) => [...n.split(" "), "--help"])]);
    names.forEach((name, i) => expect(results[i], name).toEqual(results[i + names.length]));
  });

  it("lists every command and every serve flag", async () => {
    const [top, serve, group] = await runAll([["--help"], ["serve", "-h"], ["key", "--help"]]);
    expect(top!.code).toBe(0);
    for (const c of COMMANDS) expect(top!.stdout).toContain(`  ${c.name} `);
    for (const [flag, f] of Object.entries(SERVE_FLAGS)) {
      expect(serve!.stdout).toContain(`--${flag} `);
      expect(serve!.stdout).toContain(`env ${f.env}`);
    }
    expect(group).toMatchObject({ code: 0 });
    expect(group!.stdout).toMatch(/key create[\s\S]*key list[\s\S]*key revoke/);
  });

  it("without a command prints the usage on stderr and exits 2", async () => {
    const [none, groupOnly] = await runAll([[], ["key"]]);
    expect(none).toMatchObject({ code: 2, stdout: "" });
    expect(none!.stderr).toMatch(/^usage: tally <command>/);
    expect(groupOnly).toMatchObject({ code: 2, stdout: "" });
    expect(groupOnly!.stderr).toContain("key revoke");
  });
});

describe("mistakes", () => {
  it("an unknown flag names the nearest one and exits 2, before anything is opened", async () => {
    const [serve, keyList, backup, nothingNear] = await runAll([
      ["serve", "--prot", "8080"],
      ["key", "list", "--tennant", "acme"],
      ["backup", "--db", "x.db", "--too", "y.db"],
      ["verify", "--zzzzzz"],
    ]);
    expect(serve).toMatchObject({ code: 2, stdout: "" });
    expect(serve!.stderr).toContain("unknown option --prot; did you mean --port?");
    expect(serve!.stderr).toContain("tally serve --help");
    expect(keyList!.stderr).toContain("unknown option --tennant; did you mean --tenant?");
    expect(backup!.stderr).toContain("unknown option --too; did you mean --to?");
    expect(nothingNear).toMatchObject({ code: 2 });
    expect(nothingNear!.stderr).toMatch(/unknown option --zzzzzz\n/);
  });

  it("an unknown command names the nearest one and exits 2", async () => {
    const [top, sub, option] = await runAll([["srve"], ["key", "lst"], ["--verison"]]);
    expect(top).toMatchObject({ code: 2, stdout: "" });
    expect(top!.stderr).toContain(`unknown command "srve"; did you mean "serve"?`);
    expect(sub!.stderr).toContain(`unknown command "key lst"; did you mean "key list"?`);
    expect(option).toMatchObject({ code: 2 });
    expect(option!.stderr).toContain("unknown option --verison; did you mean --version?");
  });

  it("a flag without its value, or a missing required flag, exits 2", async () => {
    const [noValue, missing] = await runAll([["serve", "--port"], ["key", "revoke", "--tenant", "acme"]]);
    expect(noValue).toMatchObject({ code: 2 });
    expect(noValue!.stderr).toMatch(/--port/);
    expect(missing).toMatchObject({ code: 2 });
    expect(missing!.stderr).toContain("--id is required");
  });
});

describe("nearest", () => {
  it("finds typos, swaps and abbreviations, and guesses nothing for nonsense", () => {
    const flags = Object.keys(SERVE_FLAGS);
    expect(nearest("prot", flags)).toBe("port");
    expect(nearest("hots", flags)).toBe("host");
    expect(nearest("durabilty", flags)).toBe("durability");
    expect(nearest("max-conn", flags)).toBe("max-connections");
    expect(nearest("cors", flags)).toBe("cors-origins");
    expect(nearest("x", flags)).toBeUndefined();
    expect(nearest("zzzzzz", flags)).toBeUndefined();
    expect(editDistance("prot", "port")).toBe(1);
    expect(editDistance("", "abc")).toBe(3);
  });
});
