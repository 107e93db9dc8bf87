import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run, startBinaryServer, expectServesGetBalance } from "./support/binary.js";
import { tempDir } from "./support/server.js";

// The compiled CLI, as bin/tally.js runs it, built the way `npm run build`
// builds dist/ (tsconfig.build.json) but into a folder of its own, so that
// the test neither needs nor disturbs the checkout's dist/. The folder is
// inside the repository (.tmp/, ignored) so that node_modules and
// package.json resolve as they do for dist/.
const REPO = join(import.meta.dirname, "..");
const OUT = join(REPO, ".tmp", `compiled-${process.pid}`);
const BIN = join(OUT, "bin", "tally.js");
const VERSION = (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string }).version;

/** Plain node: no tsx loader inherited from the test runner. */
const env = { ...process.env, NODE_OPTIONS: "" };

beforeAll(async () => {
  const built = await run(process.execPath, [join(REPO, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json", "--outDir", join(OUT, "dist")], { cwd: REPO, timeoutMs: 120_000 });
  expect(built.stdout + built.stderr).toBe("");
  expect(built.code).toBe(0);
  mkdirSync(join(OUT, "bin"));
  copyFileSync(join(REPO, "bin", "tally.js"), BIN);
}, 150_000);
afterAll(() => rmSync(OUT, { recursive: true, force: true }));

describe("the compiled binary", () => {
  it("compiles src/ and gen/ only, with gen/ beside src/ as the sources' ../gen imports expect", () => {
    expect(readdirSync(join(OUT, "dist")).sort()).toEqual(["gen", "src"]);
    expect(readdirSync(join(OUT, "dist", "src"))).toContain("main.js");
    expect(readdirSync(join(OUT, "dist", "gen", "tally"))).toContain("ledger");
  });

  it("prints its version with plain node", async () => {
    for (const flag of ["--version", "-v"]) {
      const r = await run(process.execPath, [BIN, flag], { cwd: REPO, env });
      expect(r).toMatchObject({ code: 0, stdout: `${VERSION}\n`, stderr: "" });
    }
  });

  it("serves GetBalance with plain node", async () => {
    const { dir, remove } = tempDir();
    const server = await startBinaryServer(process.execPath, [BIN, "serve", "--port", "0", "--db", join(dir, "t.db"), "--log-level", "error"], { cwd: dir, env });
    try {
      await expectServesGetBalance(server);
    } finally {
      await server.stop();
      remove();
    }
  });
});
