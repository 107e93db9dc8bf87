import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { WEB_PROTOCOLS } from "../ui/src/client.js";
import { chromiumUnavailable, launchChromium } from "./support/browser.js";
import type { TestBrowser } from "./support/browser.js";
import type { CorsResult, CorsRun } from "./support/cors-page.js";
import { clientFor, spawnServer, tempDir } from "./support/server.js";
import type { ChildServer } from "./support/server.js";

/**
 * connect-web from a page on another origin than Tally's, in headless
 * Chromium: allowed by `--cors-origins` (the real flag, on a real
 * `tally serve`), every call works over Connect and gRPC-Web; from an
 * origin not on the list, the browser refuses with a CORS error.
 */
const unavailable = chromiumUnavailable();

/** A tiny static server: the test page and its bundle, on an origin of its own. */
async function pageServer(js: string): Promise<{ origin: string; close(): Promise<void> }> {
  const html = '<!doctype html><meta charset="utf-8"><title>cross-origin page</title><script type="module" src="/page.js"></script>';
  const server = http.createServer((req, res) => {
    const [type, body] = req.url === "/page.js" ? ["text/javascript", js] : ["text/html; charset=utf-8", html];
    res.writeHead(200, { "content-type": type, "cache-control": "no-store" });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

async function bundlePage(): Promise<string> {
  const esbuild = await import("esbuild");
  const out = await esbuild.build({
    entryPoints: [join(import.meta.dirname, "support", "cors-page.ts")],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    target: ["es2022"],
    logLevel: "silent",
  });
  return out.outputFiles[0]!.text;
}

async function runIn(page: Page, origin: string, run: CorsRun): Promise<CorsResult> {
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => typeof (globalThis as unknown as { tallyRun?: unknown }).tallyRun === "function");
  return page.evaluate((r) => (globalThis as unknown as { tallyRun: (r: CorsRun) => Promise<CorsResult> }).tallyRun(r), run);
}

describe.skipIf(unavailable !== undefined)(`connect-web from another origin${unavailable ? ` (skipped: ${unavailable})` : ""}`, () => {
  let allowed: Awaited<ReturnType<typeof pageServer>>;
  let denied: Awaited<ReturnType<typeof pageServer>>;
  let tally: ChildServer;
  let dir: ReturnType<typeof tempDir>;
  let browser: TestBrowser | undefined;
  let adminKey: string;

  beforeAll(async () => {
    const js = await bundlePage();
    allowed = await pageServer(js);
    denied = await pageServer(js);
    dir = tempDir();
    tally = await spawnServer(join(dir.dir, "tally.db"), ["--cors-origins", allowed.origin, "--max-connections-per-address", "0"]);
    adminKey = tally.adminKey!;
    const ledger = clientFor(LedgerService, tally.url, "connect-binary", adminKey);
    for (const protocol of WEB_PROTOCOLS) {
      const accountId = `cors-${protocol}`;
      await ledger.createAccount({ id: accountId });
      await ledger.postTransfers({
        transfers: Array.from({ length: 250 }, (_, i) => ({
          idempotencyKey: `cors-${protocol}-${i}`,
          debitAccountId: "@world",
          creditAccountId: accountId,
          asset: "USD",
          amount: 1n,
        })),
      });
    }
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await tally?.stop();
    await allowed?.close();
    await denied?.close();
    dir?.remove();
  });

  describe.each(WEB_PROTOCOLS)("over %s", (protocol) => {
    it("works from an allowed origin: a balance, a transfer seen live, 250 entries paged", async () => {
      const page = await browser!.newPage();
      try {
        const r = await runIn(page, allowed.origin, { baseUrl: tally.url, apiKey: adminKey, protocol, accountId: `cors-${protocol}`, idempotencyKey: `cors-page-${protocol}` });
        expect(r).toMatchObject({ ok: true, before: "250", snapshot: "250", live: "1000250", entries: 251, pages: 3 });
      } finally {
        await page.close();
      }
    });

    it("fails with a CORS error from an origin not on the list", async () => {
      const page = await browser!.newPage();
      const console: string[] = [];
      page.on("console", (m) => console.push(m.text()));
      try {
        const r = await runIn(page, denied.origin, { baseUrl: tally.url, apiKey: adminKey, protocol, accountId: `cors-${protocol}`, idempotencyKey: `cors-denied-${protocol}` });
        expect(r.ok).toBe(false);
        expect(r.ok ? "" : r.error).toContain("Failed to fetch");
        await expect.poll(() => console.some((t) => t.includes("blocked by CORS policy")), { timeout: 10_000 }).toBe(true);
        // Refused before anything was sent: not even the balance was read, let alone a transfer made.
        const { balance } = await clientFor(LedgerService, tally.url, "connect-binary", adminKey).getBalance({ accountId: `cors-${protocol}`, asset: "USD" });
        expect(balance?.posted).toBe(1_000_250n);
      } finally {
        await page.close();
      }
    });
  });
});
