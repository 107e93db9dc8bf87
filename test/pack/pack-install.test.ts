import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { expectServesGetBalance, run, startBinaryServer } from "../support/binary.js";
import { tempDir } from "../support/server.js";

// `npm run test:pack`, not part of `npm test`: installing the tarball
// compiles better-sqlite3 from source, well over a minute on two cores.
// `npm pack` runs `prepare`, so this rebuilds the checkout's dist/.
const REPO = join(import.meta.dirname, "..", "..");
const VERSION = (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string }).version;
const work = tempDir("tally-pack-");
afterAll(() => work.remove());

/** npm and npx without the test runner's loader (NODE_OPTIONS) or npm's lifecycle variables. */
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== "NODE_OPTIONS" && !k.startsWith("npm_")));

describe("npm pack", () => {
  let tarball = "";

  it("packs the compiled service and the dashboard's sources: bin/, dist/src, dist/gen, ui/ and gen/ (bundled by the server), package.json, README", async () => {
    const packed = await run("npm", ["pack", "--json", "--pack-destination", work.dir], { cwd: REPO, env, timeoutMs: 300_000 });
    expect(packed.code, packed.stderr).toBe(0);
    // prepare's output comes first on stdout; the JSON report is the last thing printed.
    const report = JSON.parse(packed.stdout.slice(packed.stdout.lastIndexOf("\n[") + 1)) as { filename: string; files: { path: string }[] }[];
    const files = report[0]!.files.map((f) => f.path);
    tarball = join(work.dir, report[0]!.filename);
    expect(files).toContain("bin/tally.js");
    expect(files).toContain("dist/src/main.js");
    expect(files).toContain("dist/gen/tally/ledger/v1/ledger_pb.js");
    expect(files).toContain("ui/src/main.ts");
    const unexpected = files.filter((f) => !/^(bin\/tally\.js|dist\/(src|gen)\/.+\.js|gen\/.+_pb\.ts|ui\/.+|package\.json|README\.md|LICENSE)$/.test(f));
    expect(unexpected).toEqual([]);
  }, 300_000);

  it("installs into an empty folder, where `npx tally --version` and `npx tally serve` work", async () => {
    expect(tarball).not.toBe("");
    const app = join(work.dir, "app");
    mkdirSync(app);
    const installed = await run("npm", ["install", "--no-audit", "--no-fund", tarball], { cwd: app, env, timeoutMs: 600_000 });
    expect(installed.code, installed.stdout + installed.stderr).toBe(0);
    // The tarball's dependencies only: tsx (a dev dependency) must not be needed, so it is not there.
    const lock = readFileSync(join(app, "package-lock.json"), "utf8");
    expect(lock).not.toContain("node_modules/tsx");

    const version = await run("npx", ["--no-install", "tally", "--version"], { cwd: app, env });
    expect(version).toMatchObject({ code: 0, stdout: `${VERSION}\n` });

    const server = await startBinaryServer("npx", ["--no-install", "tally", "serve", "--port", "0", "--db", join(app, "tally.db")], { cwd: app, env });
    try {
      await expectServesGetBalance(server);
      // The dashboard is bundled from the installed package's ui/ on the first request.
      const page = await fetch(`${server.url}/ui/`);
      expect([page.status, page.headers.get("content-type")]).toEqual([200, "text/html; charset=utf-8"]);
      const script = /src="assets\/(app-[^"]+\.js)"/.exec(await page.text())?.[1];
      expect((await fetch(`${server.url}/ui/assets/${script}`)).status).toBe(200);
    } finally {
      await server.stop();
    }
  }, 660_000);
});
