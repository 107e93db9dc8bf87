import type { Transaction, Transfer } from "../../gen/tally/ledger/v1/ledger_pb.js";
import { TransferStatus } from "../../gen/tally/ledger/v1/ledger_pb.js";
import { parseAmount } from "./amount.js";
import { amountText, errorText } from "./context.js";
import type { DashboardContext } from "./context.js";
import { fill, h } from "./dom.js";

/** Open holds (pending transfers) and their post / void. */
export interface HoldsView {
  readonly element: HTMLElement;
  /** A hold this page just made. */
  add(transfer: Transfer): void;
  /** Journal entries seen: pending ones may be open holds, settled ones close them. */
  saw(entries: readonly Transaction[]): void;
}

/**
 * Tally has no "list pending transfers" call, so the holds shown are the
 * ones this page knows of: made from the transfer form, or seen pending in
 * a journal page, each confirmed still pending with GetTransfer. Post takes
 * an optional smaller amount; Void releases the reservation.
 */
export function holdsView(ctx: DashboardContext, onSettled: (transfer: Transfer) => void): HoldsView {
  const { ledger } = ctx.clients;
  const body = h("tbody");
  const holds = new Map<string, HTMLTableRowElement>();
  /** Transfer ids already checked or shown: each is looked up once. */
  const known = new Set<string>();
  const empty = h("p", { class: "hint", "data-testid": "holds-empty" }, "No open holds seen.");

  const sync = () => (empty.hidden = holds.size > 0);
  const remove = (id: string) => {
    holds.get(id)?.remove();
    holds.delete(id);
    sync();
  };
  const settle = async (t: Transfer, how: "post" | "void", amountInput: HTMLInputElement, buttons: HTMLButtonElement[]) => {
    buttons.forEach((b) => (b.disabled = true));
    try {
      let amount = 0n;
      if (how === "post" && amountInput.value.trim() !== "") {
        const scale = await ctx.scales.resolve(t.asset);
        if (scale === undefined) throw new Error(`the scale of ${t.asset} is not known`);
        amount = parseAmount(amountInput.value, scale);
      }
      const r = how === "post" ? await ledger.postPendingTransfer({ transferId: t.id, amount }) : await ledger.voidPendingTransfer({ transferId: t.id });
      remove(t.id);
      if (r.transfer !== undefined) onSettled(r.transfer);
      ctx.notify(`hold ${t.id} ${how === "post" ? "posted" : "voided"}`);
    } catch (e) {
      ctx.notify(e instanceof Error && !("code" in e) ? e.message : errorText(e), "error");
      buttons.forEach((b) => (b.disabled = false));
    }
  };
  const show = (t: Transfer) => {
    if (t.status !== TransferStatus.PENDING || holds.has(t.id)) return;
    const amount = h("input", { type: "text", inputmode: "decimal", placeholder: "all", size: 10, "aria-label": `amount to post of ${t.id}` });
    const post = h("button", { type: "button", "data-action": "post" }, "Post");
    const cancel = h("button", { type: "button", "data-action": "void" }, "Void");
    post.addEventListener("click", () => void settle(t, "post", amount, [post, cancel]));
    cancel.addEventListener("click", () => void settle(t, "void", amount, [post, cancel]));
    const row = h(
      "tr",
      { "data-testid": "hold-row", "data-transfer": t.id },
      h("td", {}, t.id),
      h("td", {}, `${t.debitAccountId} → ${t.creditAccountId}`),
      h("td", { class: "num" }, `${amountText(ctx.scales, t.asset, t.amount)} ${t.asset}`),
      h("td", {}, t.note),
      h("td", {}, ...(ctx.readOnly ? [] : [amount, post, cancel])),
    );
    holds.set(t.id, row);
    body.append(row);
    sync();
  };
  const element = h(
    "section",
    { class: "holds", "aria-labelledby": "holds-title" },
    h("h3", { id: "holds-title" }, "Open holds"),
    empty,
    h("table", { "data-testid": "holds" }, body),
  );
  fill(body);
  return {
    element,
    add(t) {
      known.add(t.id);
      show(t);
    },
    saw(entries) {
      for (const e of entries) {
        if (e.status !== TransferStatus.PENDING) {
          // A posted or voided entry settles its hold, whoever settled it.
          remove(e.transferId);
          known.add(e.transferId);
          continue;
        }
        if (known.has(e.transferId) || ctx.readOnly) continue;
        known.add(e.transferId);
        ledger.getTransfer({ id: e.transferId }, { signal: ctx.signal }).then(
          (r) => r.transfer !== undefined && show(r.transfer),
          (err: unknown) => ctx.signal.aborted || ctx.notify(`hold ${e.transferId}: ${errorText(err)}`, "error"),
        );
      }
    },
  };
}
