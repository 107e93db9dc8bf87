// The page of test/browser-cors.test.ts, served from another origin than
// Tally's and bundled by the test with esbuild. Browser code, typed without
// the DOM library (like the rest of test/): it only touches globalThis.
import { createTallyClients } from "../../ui/src/client.js";
import type { WebProtocol } from "../../ui/src/client.js";

/** What the test passes in (through page.evaluate: the key is never in the page's URL). */
export interface CorsRun {
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly protocol: WebProtocol;
  readonly accountId: string;
  readonly idempotencyKey: string;
}

/** What the page saw; amounts as strings, since bigints do not cross page.evaluate. */
export type CorsResult =
  | { readonly ok: true; readonly before: string; readonly snapshot: string; readonly live: string; readonly transferId: string; readonly entries: number; readonly pages: number }
  | { readonly ok: false; readonly error: string };

/**
 * GetBalance, WatchBalance (its snapshot, then the change a PostTransfer
 * with an idempotency key makes, live), and the whole journal through page
 * tokens: every kind of call a browser client makes, from this origin.
 */
async function run(o: CorsRun): Promise<CorsResult> {
  const { ledger } = createTallyClients(o);
  const stop = new AbortController();
  try {
    const before = (await ledger.getBalance({ accountId: o.accountId, asset: "USD" })).balance?.posted ?? 0n;
    const events = ledger.watchBalance({ accountId: o.accountId, asset: "USD" }, { signal: stop.signal })[Symbol.asyncIterator]();
    const first = await events.next();
    const snapshot = !first.done && first.value.event.case === "snapshot" ? (first.value.event.value.balances[0]?.posted ?? 0n) : -1n;
    const { transfer } = await ledger.postTransfer({
      idempotencyKey: o.idempotencyKey,
      debitAccountId: "@world",
      creditAccountId: o.accountId,
      asset: "USD",
      amount: 1_000_000n,
    });
    const second = await events.next();
    const live = !second.done && second.value.event.case === "change" ? (second.value.event.value.balance?.posted ?? 0n) : -1n;
    let token = "";
    let entries = 0;
    let pages = 0;
    do {
      const page = await ledger.listTransactions({ accountId: o.accountId, pageSize: 100, pageToken: token });
      entries += page.transactions.length;
      token = page.nextPageToken;
      pages++;
    } while (token !== "");
    return { ok: true, before: String(before), snapshot: String(snapshot), live: String(live), transferId: transfer?.id ?? "", entries, pages };
  } catch (e) {
    return { ok: false, error: String(e) };
  } finally {
    stop.abort();
  }
}

(globalThis as unknown as { tallyRun: typeof run }).tallyRun = run;
