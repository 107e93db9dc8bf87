import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startTally } from "../src/app.js";
import { parseServeConfig, toTallyOptions } from "../src/config.js";
import { spawnServer, tempDir } from "./support/server.js";

describe("--cors-origins of tally serve", () => {
  it("is off by default", () => {
    const c = parseServeConfig([], {});
    expect(c.corsOrigins).toEqual([]);
    expect("corsOrigins" in toTallyOptions(c)).toBe(false);
  });

  it("takes a comma list of origins, from the flag over TALLY_CORS_ORIGINS, normalised as browsers send them", () => {
    const fromEnv = parseServeConfig([], { TALLY_CORS_ORIGINS: "https://App.example.com, http://localhost:3000" });
    expect(fromEnv.corsOrigins).toEqual(["https://app.example.com", "http://localhost:3000"]);
    expect(toTallyOptions(fromEnv).corsOrigins).toEqual(["https://app.example.com", "http://localhost:3000"]);
    const fromFlag = parseServeConfig(["--cors-origins", "*"], { TALLY_CORS_ORIGINS: "https://app.example.com" });
    expect(fromFlag.corsOrigins).toEqual(["*"]);
    // An empty flag switches it off again.
    expect(parseServeConfig(["--cors-origins", ""], { TALLY_CORS_ORIGINS: "*" }).corsOrigins).toEqual([]);
  });

  it("refuses what is not an origin with a message naming the flag and the entry", () => {
    expect(() => parseServeConfig(["--cors-origins", "http://x/path"], {})).toThrow(/^--cors-origins: "http:\/\/x\/path" is not an origin: .*did you mean "http:\/\/x"\?$/);
    expect(() => parseServeConfig([], { TALLY_CORS_ORIGINS: "https://a.example,*" })).toThrow(/--cors-origins: "\*" allows every origin and cannot be combined/);
    expect(() => parseServeConfig(["--cors-origins", "https://a.example,"], {})).toThrow(/--cors-origins: "" is not an origin: empty entry/);
  });

  it("refuses a bad origin given to startTally before opening anything", async () => {
    const { dir, remove } = tempDir();
    try {
      await expect(startTally({ databasePath: join(dir, "t.db"), port: 0, corsOrigins: ["https://a.example/app"] })).rejects.toThrow(/is not an origin/);
      expect(existsSync(join(dir, "t.db"))).toBe(false);
    } finally {
      remove();
    }
  });

  it("stops tally serve at start-up with that message and exit code 2", async () => {
    const { dir, remove } = tempDir();
    try {
      const started = spawnServer(join(dir, "t.db"), ["--cors-origins", "http://x/path"]);
      await expect(started).rejects.toThrow(/server exited with 2:\s*tally: --cors-origins: "http:\/\/x\/path" is not an origin/);
    } finally {
      remove();
    }
  });
});
