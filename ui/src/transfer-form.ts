import { Code, ConnectError } from "@connectrpc/connect";
import type { Transfer } from "../../gen/tally/ledger/v1/ledger_pb.js";
import { TransferStatus } from "../../gen/tally/ledger/v1/ledger_pb.js";
import { parseAmount } from "./amount.js";
import { amountText, errorText } from "./context.js";
import type { DashboardContext } from "./context.js";
import { h } from "./dom.js";
import { SubmissionKeys } from "./submission-keys.js";

/** The transfer form. */
export interface TransferForm {
  readonly element: HTMLElement;
  /** Suggests the selected account as the source when none is typed. */
  suggestFrom(accountId: string): void;
  /** Refreshes the account and asset suggestions. */
  suggest(accountIds: readonly string[], assets: readonly string[]): void;
}

/** Failures after which the transfer may or may not have happened: a retry must reuse the key. */
const OUTCOME_UNKNOWN = new Set([Code.Unknown, Code.Unavailable, Code.DeadlineExceeded, Code.Canceled, Code.Aborted, Code.Internal]);

/**
 * PostTransfer from a form, as a direct transfer or a hold (pending).
 * The amount is typed in whole units and read exactly at the asset's scale.
 */
export function transferForm(ctx: DashboardContext, onPosted: (transfer: Transfer) => void): TransferForm {
  const { ledger } = ctx.clients;
  const keys = new SubmissionKeys();
  const accounts = h("datalist", { id: "account-ids" });
  const assets = h("datalist", { id: "asset-codes" });
  const input = (id: string, label: string, props: Record<string, string | boolean> = {}) => {
    const el = h("input", { id, type: "text", autocomplete: "off", spellcheck: "false", ...props });
    return { el, field: h("div", { class: "field" }, h("label", { for: id }, label), el) };
  };
  const from = input("transfer-from", "From (debit)", { list: "account-ids", required: true });
  const to = input("transfer-to", "To (credit)", { list: "account-ids", required: true });
  const asset = input("transfer-asset", "Asset", { list: "asset-codes", required: true, value: "USD" });
  const amount = input("transfer-amount", "Amount", { inputmode: "decimal", required: true, placeholder: "12.50" });
  const note = input("transfer-note", "Note");
  const kind = h(
    "select",
    { id: "transfer-kind" },
    ...["payment", "charge", "refund", "adjustment"].map((k) => h("option", { value: k }, k)),
  );
  const hold = h("input", { id: "transfer-hold", type: "checkbox" });
  const submit = h("button", { type: "submit", "data-testid": "transfer-submit" }, "Post transfer");
  const result = h("p", { class: "result", "data-testid": "transfer-result", role: "status" }, "");

  const send = async () => {
    const debitAccountId = from.el.value.trim();
    const creditAccountId = to.el.value.trim();
    const code = asset.el.value.trim();
    // The scale decides what "1.5" means: from the known assets, else from the server (a balance carries it).
    const scale = (await ctx.scales.resolve(code)) ?? (await ledger.getBalance({ accountId: debitAccountId, asset: code })).balance?.scale;
    if (scale === undefined) throw new Error(`the scale of ${code} is not known`);
    const units = parseAmount(amount.el.value, scale);
    const request = { debitAccountId, creditAccountId, asset: code, amount: units, kind: kind.value, note: note.el.value, pending: hold.checked };
    const idempotencyKey = keys.keyFor(JSON.stringify(request, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)));
    try {
      const r = await ledger.postTransfer({ ...request, idempotencyKey });
      keys.answered();
      return { transfer: r.transfer!, replayed: r.replayed, idempotencyKey };
    } catch (e) {
      if (!OUTCOME_UNKNOWN.has(ConnectError.from(e).code)) keys.answered();
      throw e;
    }
  };
  const element = h(
    "form",
    {
      class: "transfer",
      "data-testid": "transfer-form",
      onsubmit: (e) => {
        e.preventDefault();
        submit.disabled = true;
        result.dataset.state = "sending";
        result.textContent = "Sending…";
        send()
          .then(
            ({ transfer: t, replayed, idempotencyKey }) => {
              result.dataset.state = "ok";
              result.dataset.transfer = t.id;
              result.dataset.key = idempotencyKey;
              result.textContent =
                `${t.status === TransferStatus.PENDING ? "Hold" : "Transfer"} ${t.id}: ${amountText(ctx.scales, t.asset, t.amount)} ${t.asset} ` +
                `${t.debitAccountId} → ${t.creditAccountId}${replayed ? " (replayed)" : ""} · key ${idempotencyKey}`;
              amount.el.value = "";
              onPosted(t);
            },
            (err: unknown) => {
              result.dataset.state = "error";
              result.textContent = err instanceof ConnectError ? errorText(err) : String(err instanceof Error ? err.message : err);
            },
          )
          .finally(() => (submit.disabled = false));
      },
    },
    h("h3", {}, "Transfer"),
    from.field,
    to.field,
    asset.field,
    amount.field,
    h("div", { class: "field" }, h("label", { for: "transfer-kind" }, "Kind"), kind),
    note.field,
    h("div", { class: "field check" }, hold, h("label", { for: "transfer-hold" }, "Hold only (pending: post or void later)")),
    submit,
    result,
    accounts,
    assets,
  );
  return {
    element,
    suggestFrom(id) {
      if (from.el.value === "") from.el.value = id;
    },
    suggest(ids, codes) {
      accounts.replaceChildren(...ids.map((id) => h("option", { value: id })));
      assets.replaceChildren(...codes.map((c) => h("option", { value: c })));
    },
  };
}
