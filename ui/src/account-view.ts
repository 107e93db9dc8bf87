import type { Account, Balance, BalanceChange } from "../../gen/tally/ledger/v1/ledger_pb.js";
import { watchBalances } from "./balance-watch.js";
import type { BalanceWatch, WatchState } from "./balance-watch.js";
import { amountText, errorText, timeText } from "./context.js";
import type { DashboardContext } from "./context.js";
import { fill, h } from "./dom.js";

/** Told of what the selected account's live stream brings. */
export interface AccountEvents {
  onBalances(accountId: string, balances: Iterable<Balance>): void;
  onChange(accountId: string, change: BalanceChange): void;
  onLocked(account: Account): void;
}

/** The selected account: its live balances and its freeze. */
export interface AccountView {
  readonly element: HTMLElement;
  open(account: Account): void;
}

const STATE_TEXT: Record<WatchState, string> = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  failed: "stopped",
  stopped: "stopped",
};

const FIELDS = ["posted", "pendingIn", "pendingOut", "available"] as const;

/**
 * The selected account's balances per asset, kept live by WatchBalance
 * (balance-watch.ts reconnects with after_sequence), with lock/unlock for
 * admin keys. `extra` (the holds and the journal) is placed below.
 */
export function accountView(ctx: DashboardContext, events: AccountEvents, extra: readonly HTMLElement[]): AccountView {
  const { ledger } = ctx.clients;
  const title = h("h2", { "data-testid": "account-title" }, "No account selected");
  const badge = h("span", { class: "badge", "data-testid": "account-locked", hidden: true }, "locked");
  const state = h("span", { class: "watch", "data-testid": "watch-state", "data-state": "stopped" }, "");
  const lock = h("button", { type: "button", "data-testid": "lock-toggle", hidden: true }, "Lock");
  const body = h("tbody");
  const table = h(
    "table",
    { "data-testid": "balances" },
    h("thead", {}, h("tr", {}, h("th", {}, "Asset"), h("th", {}, "Posted"), h("th", {}, "Pending in"), h("th", {}, "Pending out"), h("th", {}, "Available"), h("th", {}, "Updated"))),
    body,
  );
  const element = h("section", { class: "account", hidden: true }, h("header", {}, title, badge, state, lock), table, ...extra);
  let account: Account | undefined;
  let watch: BalanceWatch | undefined;
  ctx.signal.addEventListener("abort", () => watch?.stop());

  const showLocked = (a: Account) => {
    badge.hidden = !a.locked;
    lock.textContent = a.locked ? "Unlock" : "Lock";
    lock.hidden = ctx.readOnly;
  };
  const render = (balances: ReadonlyMap<string, Balance>) => {
    const rows = [...balances.values()]
      .sort((a, b) => a.asset.localeCompare(b.asset))
      .map((b) => {
        ctx.scales.learn(b.asset, b.scale);
        return h(
          "tr",
          { "data-testid": "balance-row", "data-asset": b.asset, "data-sequence": b.sequence.toString() },
          h("th", {}, b.asset),
          ...FIELDS.map((f) => h("td", { class: "num", "data-field": f }, amountText(ctx.scales, b.asset, b[f]))),
          h("td", { class: "time" }, timeText(b.updatedAt)),
        );
      });
    fill(body, ...(rows.length === 0 ? [h("tr", {}, h("td", { colspan: 6 }, "No balances yet"))] : rows));
  };
  lock.addEventListener("click", () => {
    if (account === undefined) return;
    const id = account.id;
    lock.disabled = true;
    const call = account.locked ? ledger.unlockBalance({ accountId: id }) : ledger.lockBalance({ accountId: id });
    call
      .then(
        (r) => {
          if (r.account === undefined) return;
          if (account?.id === id) {
            account = r.account;
            showLocked(r.account);
          }
          events.onLocked(r.account);
          ctx.notify(`${id} ${r.account.locked ? "locked" : "unlocked"}`);
        },
        (e: unknown) => ctx.notify(errorText(e), "error"),
      )
      .finally(() => (lock.disabled = false));
  });

  return {
    element,
    open(a) {
      watch?.stop();
      account = a;
      element.hidden = false;
      title.textContent = a.id;
      showLocked(a);
      fill(body);
      const id = a.id;
      let watched: BalanceWatch | undefined;
      watched = watchBalances({
        watch: (req, opts) => ledger.watchBalance(req, opts),
        accountId: id,
        onBalances: (balances) => {
          render(balances);
          events.onBalances(id, balances.values());
        },
        onChange: (change) => events.onChange(id, change),
        onState: (s, error) => {
          state.dataset.state = s;
          state.textContent = STATE_TEXT[s];
          state.title = error === undefined ? "" : errorText(error);
          // How often the stream was opened again: for people debugging a flaky network, and for the browser test.
          // (Undefined during the first, synchronous call: nothing reconnected yet.)
          state.dataset.reconnects = String(watched?.reconnects ?? 0);
          if (s === "failed" && error !== undefined) ctx.notify(`live balances of ${id}: ${errorText(error)}`, "error");
        },
      });
      watch = watched;
    },
  };
}
