import type { Account, Balance } from "../../gen/tally/ledger/v1/ledger_pb.js";
import { amountText, errorText } from "./context.js";
import type { DashboardContext } from "./context.js";
import { fill, h } from "./dom.js";

/** The account list: what other views tell it, and what it tells them. */
export interface AccountsView {
  readonly element: HTMLElement;
  /** Reads the first page. */
  load(): Promise<void>;
  /** Reads these accounts' balances again (after a write of this page). */
  refresh(accountIds: readonly string[]): void;
  /** Shows balances already known (from the live watch). */
  show(accountId: string, balances: Iterable<Balance>): void;
  setLocked(account: Account): void;
  /** Every account id listed so far, for the transfer form's suggestions. */
  ids(): string[];
}

/**
 * The tenant's accounts (an account key's own account only), a page at a
 * time through page tokens, each with its balances per asset (GetMany).
 * Only the selected account is watched live: over HTTP/1.1 a browser keeps
 * six connections per origin, and every open stream holds one.
 */
export function accountsView(ctx: DashboardContext, onSelect: (account: Account) => void): AccountsView {
  const { ledger } = ctx.clients;
  const rows = new Map<string, { row: HTMLTableRowElement; balances: HTMLTableCellElement; state: HTMLTableCellElement }>();
  const body = h("tbody");
  const more = h("button", { type: "button", hidden: true, "data-testid": "accounts-more" }, "More accounts");
  let nextToken = "";
  let selected: string | undefined;

  const showBalances = (id: string, balances: Iterable<Balance>) => {
    const cell = rows.get(id)?.balances;
    if (cell === undefined) return;
    const parts = [...balances].sort((a, b) => a.asset.localeCompare(b.asset)).map((b) => {
      ctx.scales.learn(b.asset, b.scale);
      return h("span", { class: "chip", "data-asset": b.asset }, `${b.asset} ${amountText(ctx.scales, b.asset, b.posted)}`);
    });
    fill(cell, ...(parts.length === 0 ? ["—"] : parts));
  };
  const readBalances = (id: string) => {
    ledger.getMany({ accountId: id }, { signal: ctx.signal }).then(
      (r) => showBalances(id, r.balances),
      (e: unknown) => ctx.signal.aborted || ctx.notify(`balances of ${id}: ${errorText(e)}`, "error"),
    );
  };
  const lockedText = (a: Account) => (a.locked ? "locked" : "");
  const add = (account: Account) => {
    const balances = h("td", { "data-field": "balances" }, "…");
    const state = h("td", { "data-field": "locked" }, lockedText(account));
    const row = h(
      "tr",
      { "data-testid": "account-row", "data-account": account.id },
      h("td", {}, h("button", { type: "button", class: "link", onclick: () => select(account) }, account.id)),
      balances,
      state,
    );
    rows.set(account.id, { row, balances, state });
    body.append(row);
    readBalances(account.id);
  };
  const select = (account: Account) => {
    if (selected !== undefined) rows.get(selected)?.row.removeAttribute("aria-selected");
    selected = account.id;
    rows.get(account.id)?.row.setAttribute("aria-selected", "true");
    onSelect(account);
  };
  const page = async (token: string) => {
    const r = await ledger.listAccounts({ pageSize: 25, pageToken: token }, { signal: ctx.signal });
    for (const a of r.accounts) if (!rows.has(a.id)) add(a);
    nextToken = r.nextPageToken;
    more.hidden = nextToken === "";
    return r.accounts;
  };
  more.addEventListener("click", () => {
    more.disabled = true;
    page(nextToken)
      .catch((e: unknown) => ctx.notify(errorText(e), "error"))
      .finally(() => (more.disabled = false));
  });

  const element = h(
    "section",
    { class: "accounts", "aria-labelledby": "accounts-title" },
    h("h2", { id: "accounts-title" }, "Accounts"),
    h("table", { "data-testid": "accounts" }, h("thead", {}, h("tr", {}, h("th", {}, "Account"), h("th", {}, "Posted balances"), h("th", {}, ""))), body),
    more,
  );
  return {
    element,
    async load() {
      const accounts = await page("");
      // An account key sees exactly one account: open it straight away.
      if (ctx.readOnly && accounts[0] !== undefined) select(accounts[0]);
    },
    refresh: (ids) => ids.filter((id) => rows.has(id)).forEach(readBalances),
    show: showBalances,
    setLocked(account) {
      const r = rows.get(account.id);
      if (r !== undefined) r.state.textContent = lockedText(account);
    },
    ids: () => [...rows.keys()],
  };
}
