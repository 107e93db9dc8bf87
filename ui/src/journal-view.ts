import type { Transaction } from "../../gen/tally/ledger/v1/ledger_pb.js";
import { TransferStatus } from "../../gen/tally/ledger/v1/ledger_pb.js";
import { amountText, errorText, timeText } from "./context.js";
import type { DashboardContext } from "./context.js";
import { fill, h } from "./dom.js";
import { PageStack } from "./page-stack.js";

/** The selected account's journal. */
export interface JournalView {
  readonly element: HTMLElement;
  open(accountId: string): void;
  /** A new entry from the live stream. */
  live(entry: Transaction): void;
}

/** Entries per page. */
export const JOURNAL_PAGE_SIZE = 50;

/** TransferStatus as a word. */
export function statusText(s: TransferStatus): string {
  return s === TransferStatus.PENDING ? "pending" : s === TransferStatus.POSTED ? "posted" : s === TransferStatus.VOIDED ? "voided" : "";
}

/**
 * An account's journal, newest first, paged with ListTransactions' page
 * tokens (Older / Newer). New entries from the live stream go on top while
 * the first page is shown; on an older page they are counted, and Newest
 * brings them in. `onEntries` sees every entry shown, for the holds view.
 */
export function journalView(ctx: DashboardContext, onEntries: (entries: readonly Transaction[]) => void): JournalView {
  const { ledger } = ctx.clients;
  const body = h("tbody");
  const pages = new PageStack();
  const label = h("span", { "data-testid": "journal-page" }, "");
  const newer = h("button", { type: "button", "data-testid": "journal-newer" }, "← Newer");
  const older = h("button", { type: "button", "data-testid": "journal-older" }, "Older →");
  const newest = h("button", { type: "button", "data-testid": "journal-newest", hidden: true }, "");
  let accountId: string | undefined;
  /** Loads started: an answer to an older one is dropped. */
  let generation = 0;
  let top: bigint | undefined;
  let unseen = 0;
  /** Live entries that came while a load was in flight: the page read may or may not hold them. */
  let arrived: Transaction[] = [];
  let loading = false;

  const row = (t: Transaction) =>
    h(
      "tr",
      { "data-testid": "journal-row", "data-sequence": t.sequence.toString(), "data-transfer": t.transferId, "data-status": statusText(t.status) },
      h("td", { class: "num" }, t.sequence.toString()),
      h("td", { class: "time" }, timeText(t.effectiveAt)),
      h("td", {}, t.counterpartyAccountId),
      h("td", {}, t.kind),
      h("td", {}, statusText(t.status)),
      h("td", { class: "num", "data-field": "amount" }, `${amountText(ctx.scales, t.asset, t.amount)} ${t.asset}`),
      h("td", { class: "num" }, amountText(ctx.scales, t.asset, t.balanceAfter)),
      h("td", {}, t.note),
    );
  const controls = () => {
    newer.disabled = !pages.hasPrevious;
    older.disabled = !pages.hasNext;
    label.textContent = `page ${pages.page}`;
    newest.hidden = unseen === 0;
    newest.textContent = `${unseen} newer ${unseen === 1 ? "entry" : "entries"} — show`;
  };
  const load = async (token: string) => {
    if (accountId === undefined) return;
    const mine = ++generation;
    newer.disabled = older.disabled = true;
    loading = true;
    arrived = [];
    try {
      const r = await ledger.listTransactions({ accountId, pageSize: JOURNAL_PAGE_SIZE, pageToken: token }, { signal: ctx.signal });
      if (mine !== generation) return;
      // Journal entries carry no scale: make sure every asset on the page has one.
      for (const asset of new Set(r.transactions.map((t) => t.asset))) await ctx.scales.resolve(asset);
      if (mine !== generation) return;
      pages.loaded(r.nextPageToken);
      if (pages.page === 1) {
        top = r.transactions[0]?.sequence;
        unseen = 0;
      }
      fill(body, ...(r.transactions.length === 0 ? [h("tr", {}, h("td", { colspan: 8 }, "No entries"))] : r.transactions.map(row)));
      onEntries(r.transactions);
      loading = false;
      for (const entry of arrived) show(entry);
      arrived = [];
    } catch (e) {
      if (!ctx.signal.aborted) ctx.notify(`journal: ${errorText(e)}`, "error");
    } finally {
      if (mine === generation) {
        loading = false;
        controls();
      }
    }
  };
  const show = (entry: Transaction) => {
    if (top !== undefined && entry.sequence <= top) return;
    onEntries([entry]);
    if (pages.page === 1) {
      body.querySelector("tr:not([data-sequence])")?.remove();
      body.prepend(row(entry));
      top = entry.sequence;
    } else {
      unseen++;
      controls();
    }
  };
  older.addEventListener("click", () => void load(pages.forward()));
  newer.addEventListener("click", () => void load(pages.back()));
  newest.addEventListener("click", () => {
    pages.reset();
    void load("");
  });

  const element = h(
    "section",
    { class: "journal", "aria-labelledby": "journal-title" },
    h("h3", { id: "journal-title" }, "Journal"),
    h("div", { class: "pager" }, newer, label, older, newest),
    h(
      "table",
      { "data-testid": "journal" },
      h(
        "thead",
        {},
        h("tr", {}, ...["Seq", "Effective", "Counterparty", "Kind", "Status", "Amount", "Balance after", "Note"].map((c) => h("th", {}, c))),
      ),
      body,
    ),
  );
  return {
    element,
    open(id) {
      accountId = id;
      pages.reset();
      top = undefined;
      unseen = 0;
      fill(body);
      void load("");
    },
    live(entry) {
      if (loading) arrived.push(entry);
      else show(entry);
    },
  };
}
