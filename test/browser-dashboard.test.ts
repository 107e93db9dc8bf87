import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Client } from "@connectrpc/connect";
import type { Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService, KeyScope } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { startTally } from "../src/app.js";
import type { Tally } from "../src/app.js";
import { jsonLogger } from "../src/transport/log.js";
import { formatAmount } from "../ui/src/amount.js";
import { WEB_PROTOCOLS } from "../ui/src/client.js";
import type { WebProtocol } from "../ui/src/client.js";
import { chromiumUnavailable, launchChromium } from "./support/browser.js";
import type { TestBrowser } from "./support/browser.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

/**
 * The dashboard at /ui/, in headless Chromium, against a real Tally on a
 * real SQLite file, over Connect and over gRPC-Web. Every wait is on a
 * condition (a locator, or expect.poll on what the page shows): the machine
 * is shared, so no fixed sleep would be long enough or short enough.
 */
const unavailable = chromiumUnavailable();
const OUTPUT = join(import.meta.dirname, "..", "test-output");
/** USD counts micro-dollars (scale 6): 2^53+1 units is not a Number. */
const FUNDING = 2n ** 53n + 1n;
const SCALE = 6;
const usd = (units: bigint) => formatAmount(units, SCALE);
/** Generous: Chromium and Tally share two busy cores. */
const WAIT = { timeout: 20_000, interval: 50 };

let server: TestServer;
/** The Tally serving now (a new one after the restart test). */
let tally: Tally;
let browser: (TestBrowser & { readonly pageErrors: string[] }) | undefined;
let ledger: Client<typeof LedgerService>;
let admin: Client<typeof AdminService>;
/** One tab per protocol, logged in with the admin key, kept open for the restart test at the end. */
const pages = new Map<WebProtocol, Page>();

const names = (p: WebProtocol) => {
  const s = p === "connect" ? "c" : "gw";
  return { alice: `alice-${s}`, bob: `bob-${s}`, pager: `pager-${s}` };
};

async function balance(accountId: string): Promise<bigint> {
  return (await ledger.getBalance({ accountId, asset: "USD" })).balance!.posted;
}

function balanceCell(page: Page, field: "posted" | "pendingOut" | "available"): Locator {
  return page.locator(`[data-testid=balance-row][data-asset=USD] [data-field=${field}]`);
}

async function login(page: Page, key: string, protocol: WebProtocol): Promise<void> {
  await page.goto(`${tally.url}/ui/`);
  await page.getByTestId("api-key").fill(key);
  await page.getByTestId("protocol").selectOption(protocol);
  await page.getByTestId("login-submit").click();
  await page.locator(`[data-testid=dashboard][data-protocol="${protocol}"]`).waitFor();
}

async function select(page: Page, accountId: string): Promise<void> {
  await page.locator(`[data-testid=account-row][data-account="${accountId}"] button`).click();
  await expect.poll(() => page.getByTestId("account-title").textContent(), WAIT).toBe(accountId);
  await expect.poll(() => page.getByTestId("watch-state").getAttribute("data-state"), WAIT).toBe("live");
}

async function submitTransfer(page: Page, t: { from: string; to: string; amount: string; hold?: boolean }): Promise<{ transfer: string; key: string; text: string }> {
  await page.locator("#transfer-from").fill(t.from);
  await page.locator("#transfer-to").fill(t.to);
  await page.locator("#transfer-asset").fill("USD");
  await page.locator("#transfer-amount").fill(t.amount);
  await page.locator("#transfer-hold").setChecked(t.hold ?? false);
  const result = page.getByTestId("transfer-result");
  // Each submission must be told apart from the last one's result.
  const before = await result.getAttribute("data-transfer");
  await page.getByTestId("transfer-submit").click();
  await expect.poll(async () => {
    const state = await result.getAttribute("data-state");
    return state === "error" || (state === "ok" && (await result.getAttribute("data-transfer")) !== before) ? state : "waiting";
  }, WAIT).not.toBe("waiting");
  return { transfer: (await result.getAttribute("data-transfer")) ?? "", key: (await result.getAttribute("data-key")) ?? "", text: (await result.textContent()) ?? "" };
}

describe.skipIf(unavailable !== undefined)(`the dashboard in Chromium${unavailable ? ` (skipped: ${unavailable})` : ""}`, () => {
  beforeAll(async () => {
    server = await startTestServer();
    tally = server.tally;
    ledger = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);
    admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
    for (const p of WEB_PROTOCOLS) {
      const n = names(p);
      for (const id of [n.alice, n.bob, n.pager]) await ledger.createAccount({ id });
      await ledger.postTransfer({ idempotencyKey: `fund-${n.alice}`, debitAccountId: "@world", creditAccountId: n.alice, asset: "USD", amount: FUNDING });
      // 250 journal entries on the pager account, in one atomic batch.
      await ledger.postTransfers({
        transfers: Array.from({ length: 250 }, (_, i) => ({
          idempotencyKey: `page-${n.pager}-${i}`,
          debitAccountId: "@world",
          creditAccountId: n.pager,
          asset: "USD",
          amount: BigInt(i + 1),
        })),
      });
    }
    browser = await launchChromium();
    mkdirSync(OUTPUT, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    await tally?.close();
    await server?.close();
  });

  describe.each(WEB_PROTOCOLS)("over %s", (protocol) => {
    const n = names(protocol);
    let page: Page;

    it("logs in with a key (kept in sessionStorage, not in the URL) and shows an exact balance", async () => {
      page = await browser!.newPage();
      pages.set(protocol, page);
      await login(page, server.adminKey, protocol);
      expect(page.url()).not.toContain(server.adminKey);
      expect(await page.evaluate(() => (globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } }).sessionStorage.getItem("tally.apiKey"))).toBe(server.adminKey);
      await expect.poll(() => page.getByTestId("scope").textContent(), WAIT).toBe("admin key");
      await select(page, n.alice);
      await expect.poll(() => balanceCell(page, "posted").textContent(), WAIT).toBe("9007199254.740993");
    });

    it("posts transfers from the form, a new idempotency key each, and the live balance follows without a reload", async () => {
      // Page code runs in the browser (this file is typed for Node: no DOM types): a reload would drop this mark.
      await page.evaluate(() => ((globalThis as unknown as { notReloaded: boolean }).notReloaded = true));
      const first = await submitTransfer(page, { from: n.alice, to: n.bob, amount: "1.5" });
      expect(first.text).toContain("Transfer");
      await expect.poll(() => balanceCell(page, "posted").textContent(), WAIT).toBe(usd(FUNDING - 1_500_000n));
      // The same form values again are a second transfer, not a replay of the first.
      const second = await submitTransfer(page, { from: n.alice, to: n.bob, amount: "1.5" });
      expect(second.key).not.toBe(first.key);
      expect(second.text).not.toContain("replayed");
      await expect.poll(() => balanceCell(page, "posted").textContent(), WAIT).toBe(usd(FUNDING - 3_000_000n));
      expect(await balance(n.alice)).toBe(FUNDING - 3_000_000n);
      expect(await page.evaluate(() => (globalThis as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    });

    it("shows a change made by another client, live, balance and journal", async () => {
      const { transfer } = await ledger.postTransfer({ idempotencyKey: `elsewhere-${n.alice}`, debitAccountId: "@world", creditAccountId: n.alice, asset: "USD", amount: 1n });
      await expect.poll(() => balanceCell(page, "posted").textContent(), WAIT).toBe(usd(FUNDING - 3_000_000n + 1n));
      await expect.poll(() => page.locator("[data-testid=journal-row]").first().getAttribute("data-transfer"), WAIT).toBe(transfer!.id);
    });

    it("makes two holds from the form, posts one and voids the other", async () => {
      const before = await balance(n.alice);
      const posted = await submitTransfer(page, { from: n.alice, to: n.bob, amount: "2", hold: true });
      const voided = await submitTransfer(page, { from: n.alice, to: n.bob, amount: "3", hold: true });
      expect(posted.text).toContain("Hold");
      await expect.poll(() => balanceCell(page, "pendingOut").textContent(), WAIT).toBe(usd(5_000_000n));
      await expect.poll(() => balanceCell(page, "available").textContent(), WAIT).toBe(usd(before - 5_000_000n));
      await page.locator(`[data-testid=hold-row][data-transfer="${posted.transfer}"] [data-action=post]`).click();
      await page.locator(`[data-testid=hold-row][data-transfer="${voided.transfer}"] [data-action=void]`).click();
      await expect.poll(() => page.locator("[data-testid=hold-row]").count(), WAIT).toBe(0);
      await expect.poll(() => balanceCell(page, "pendingOut").textContent(), WAIT).toBe(usd(0n));
      await expect.poll(() => balanceCell(page, "posted").textContent(), WAIT).toBe(usd(before - 2_000_000n));
      expect((await ledger.getTransfer({ id: posted.transfer })).transfer?.postedAmount).toBe(2_000_000n);
      expect((await ledger.getTransfer({ id: voided.transfer })).transfer?.postedAmount).toBe(0n);
    });

    it("locks the account (a debit is then refused) and unlocks it", async () => {
      const toggle = page.getByTestId("lock-toggle");
      await toggle.click();
      await page.getByTestId("account-locked").waitFor({ state: "visible" });
      await expect.poll(() => toggle.textContent(), WAIT).toBe("Unlock");
      expect((await ledger.getAccount({ id: n.alice })).account?.locked).toBe(true);
      const refused = await submitTransfer(page, { from: n.alice, to: n.bob, amount: "1" });
      expect(refused.text).toContain("balance_locked");
      await toggle.click();
      await page.getByTestId("account-locked").waitFor({ state: "hidden" });
      expect((await ledger.getAccount({ id: n.alice })).account?.locked).toBe(false);
    });

    it("pages through 250 journal entries with page tokens, and back", async () => {
      await select(page, n.pager);
      const rows = page.locator("[data-testid=journal-row]");
      const older = page.getByTestId("journal-older");
      const label = page.getByTestId("journal-page");
      const seen: string[] = [];
      for (let p = 1; ; p++) {
        await expect.poll(() => label.textContent(), WAIT).toBe(`page ${p}`);
        await expect.poll(() => rows.count(), WAIT).toBe(50);
        seen.push(...(await rows.evaluateAll((els) => els.map((e) => e.getAttribute("data-sequence")!))));
        if (await older.isDisabled()) break;
        await older.click();
      }
      expect(seen).toHaveLength(250);
      expect(new Set(seen).size).toBe(250);
      // Newest first: the sequences fall all the way down.
      const numbers = seen.map(BigInt);
      expect(numbers.every((s, i) => i === 0 || s < numbers[i - 1]!)).toBe(true);
      await page.getByTestId("journal-newer").click();
      await expect.poll(() => label.textContent(), WAIT).toBe("page 4");
      await expect.poll(() => rows.first().getAttribute("data-sequence"), WAIT).toBe(seen[150]);
      // The last entry's balance: 1 + 2 + … + 250 units.
      await expect.poll(() => balanceCell(page, "posted").textContent(), WAIT).toBe(usd(BigInt((250 * 251) / 2)));
    });

    it("verifies the ledger: ok", async () => {
      await page.getByTestId("verify").click();
      const result = page.getByTestId("verify-result");
      await expect.poll(() => result.getAttribute("data-state"), WAIT).toBe("ok");
      expect(await result.textContent()).toMatch(/^ok — \d+ accounts/);
      await page.screenshot({ path: join(OUTPUT, `dashboard-${protocol}.png`), fullPage: true });
    });

    it("with an account_read key, shows only that account, read-only, and live", async () => {
      const { secret } = await admin.createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: n.bob, label: `dashboard ${protocol}` });
      const reader = await browser!.newPage();
      try {
        await login(reader, secret, protocol);
        await expect.poll(() => reader.getByTestId("scope").textContent(), WAIT).toBe(`read-only key: ${n.bob}`);
        expect(await reader.getByTestId("dashboard").getAttribute("data-read-only")).toBe("true");
        await expect.poll(() => reader.getByTestId("account-title").textContent(), WAIT).toBe(n.bob);
        expect(await reader.locator("[data-testid=account-row]").evaluateAll((els) => els.map((e) => e.getAttribute("data-account")))).toEqual([n.bob]);
        await expect.poll(() => balanceCell(reader, "posted").textContent(), WAIT).toBe(usd(await balance(n.bob)));
        expect(await reader.getByTestId("transfer-form").count()).toBe(0);
        expect(await reader.getByTestId("verify").count()).toBe(0);
        expect(await reader.getByTestId("lock-toggle").isHidden()).toBe(true);
        await ledger.postTransfer({ idempotencyKey: `to-reader-${n.bob}`, debitAccountId: "@world", creditAccountId: n.bob, asset: "USD", amount: 7n });
        await expect.poll(() => balanceCell(reader, "posted").textContent(), WAIT).toBe(usd(await balance(n.bob)));
        await reader.screenshot({ path: join(OUTPUT, `dashboard-read-only-${protocol}.png`), fullPage: true });
      } finally {
        await reader.close();
      }
    });
  });

  // The watch's resumption with after_sequence is checked exactly in dashboard-client.test.ts; here, that it happens in a real browser.
  it("keeps the balances live across a server restart: the streams reconnect by themselves", async () => {
    expect(pages.size).toBe(WEB_PROTOCOLS.length);
    const port = tally.port;
    await tally.close();
    for (const page of pages.values()) {
      await expect.poll(() => page.getByTestId("watch-state").getAttribute("data-state"), WAIT).not.toBe("live");
    }
    tally = await startTally({ databasePath: server.dbPath, port, logger: jsonLogger(process.stderr, "error"), shutdownGraceMs: 2000, maxConnectionsPerAddress: 0 });
    ledger = clientFor(LedgerService, tally.url, "connect-binary", server.adminKey);
    for (const [protocol, page] of pages) {
      const { pager } = names(protocol);
      await ledger.postTransfer({ idempotencyKey: `after-restart-${pager}`, debitAccountId: "@world", creditAccountId: pager, asset: "USD", amount: 1_000_000n });
      await expect.poll(() => balanceCell(page, "posted").textContent(), WAIT).toBe(usd(await balance(pager)));
      await expect.poll(() => page.getByTestId("watch-state").getAttribute("data-state"), WAIT).toBe("live");
      expect(Number(await page.getByTestId("watch-state").getAttribute("data-reconnects"))).toBeGreaterThanOrEqual(1);
    }
    expect(browser!.pageErrors).toEqual([]);
  });
});
