import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import type { BrowserContext, Page } from "playwright-core";

/** Debian's Chromium (apt-get install chromium); Playwright cannot download its own here. */
export const CHROMIUM = "/usr/bin/chromium";

/**
 * Why browser tests cannot run, or undefined when they can. In CI a missing
 * Chromium is a failure (.ci/run installs it), not a skip.
 */
export function chromiumUnavailable(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  const reason = `${CHROMIUM} is missing (apt-get install -y chromium)`;
  if (process.env.CI) throw new Error(`CI needs Chromium: ${reason}`);
  return reason;
}

/**
 * The flags this machine needs: root needs --no-sandbox, and the network
 * is closed, so Chromium's own background connections (updates, sync,
 * QUIC probes) would only be refused, many at a time.
 */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** A headless Chromium with a fresh, empty profile, removed on close. */
export interface TestBrowser {
  readonly context: BrowserContext;
  /** A new tab: its own sessionStorage, so its own dashboard session. */
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

/** Starts headless Chromium on a new --user-data-dir. Uncaught page errors and CSP refusals are collected for the test to check. */
export async function launchChromium(): Promise<TestBrowser & { readonly pageErrors: string[] }> {
  const profile = mkdtempSync(join(tmpdir(), "tally-chromium-"));
  // launchPersistentContext is how Playwright takes a --user-data-dir of ours.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1400, height: 900 },
  });
  const pageErrors: string[] = [];
  return {
    context,
    pageErrors,
    async newPage() {
      const page = await context.newPage();
      page.on("pageerror", (e) => pageErrors.push(e.message));
      // Failed calls log "Failed to load resource" by design (a 412 is an answer); a CSP refusal is a bug.
      page.on("console", (m) => {
        if (m.type() === "error" && /Content Security Policy|Trusted Type/i.test(m.text())) pageErrors.push(`console: ${m.text()}`);
      });
      return page;
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
