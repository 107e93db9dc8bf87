import { errorText } from "./context.js";
import type { DashboardContext } from "./context.js";
import { fill, h } from "./dom.js";

/**
 * AdminService.Verify: recomputes every balance of the tenant from the
 * journal and shows ok, or each discrepancy.
 */
export function verifyView(ctx: DashboardContext): HTMLElement {
  const result = h("div", { class: "result", "data-testid": "verify-result", role: "status" });
  const run = h("button", { type: "button", "data-testid": "verify" }, "Verify the ledger");
  run.addEventListener("click", () => {
    run.disabled = true;
    result.dataset.state = "running";
    fill(result, "Verifying…");
    ctx.clients.admin
      .verify({})
      .then(
        (r) => {
          result.dataset.state = r.ok ? "ok" : "failed";
          fill(
            result,
            h("strong", {}, r.ok ? "ok" : `${r.discrepancies.length} discrepancies`),
            ` — ${r.accountsChecked} accounts, ${r.balancesChecked} balances, ${r.entriesChecked} entries checked`,
            r.discrepancies.length === 0
              ? null
              : h(
                  "ul",
                  {},
                  ...r.discrepancies.map((d) => h("li", {}, `${d.accountId} ${d.asset} ${d.field}: stored ${d.stored}, recomputed ${d.recomputed} (seq ${d.sequence})`)),
                ),
          );
        },
        (e: unknown) => {
          result.dataset.state = "error";
          fill(result, errorText(e));
        },
      )
      .finally(() => (run.disabled = false));
  });
  return h("section", { class: "verify", "aria-labelledby": "verify-title" }, h("h3", { id: "verify-title" }, "Integrity"), run, result);
}
