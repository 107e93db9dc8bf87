import { notFound } from "../domain/errors.js";
import { Ledger } from "../domain/ledger.js";
import type { VerifyReport } from "../domain/model.js";
import type { Store } from "../domain/store.js";
import type { Command } from "./command.js";
import { progressBar } from "../journal-file/progress.js";
import { STORE_FLAGS, str } from "./flags.js";
import { withStore } from "./open-store.js";
import { printJson } from "./output.js";

/**
 * Recomputes every balance of the tenants (all when `tenantId` is undefined)
 * from the journal, handing each report to `report`; true when all agree.
 */
export async function verifyTenants(
  store: Store,
  tenantId: string | undefined,
  report: (tenant: string, r: VerifyReport, seconds: number) => void,
  onProgress: (done: number, total: number) => void = () => {},
): Promise<boolean> {
  const ledger = new Ledger({ store });
  const tenants = tenantId === undefined ? await store.listTenantIds() : [tenantId];
  let ok = true;
  for (const [i, t] of tenants.entries()) {
    if (!(await store.getTenant(t))) throw notFound("tenant", t);
    const started = performance.now();
    const r = await ledger.verify(t);
    ok &&= r.ok;
    report(t, r, (performance.now() - started) / 1000);
    onProgress(i + 1, tenants.length);
  }
  return ok;
}

/**
 * `tally verify`: one JSON report per tenant, with its `seconds` and
 * `entriesPerSecond` (journal rows checked per second); a progress bar on a
 * terminal's stderr; exit 1 on any difference.
 */
export const verifyCommand: Command = {
  name: "verify",
  summary: "recompute every balance from the journal; exit 1 on any difference",
  synopsis: "[--tenant ID] [--db FILE | --database URL]",
  flags: { ...STORE_FLAGS, tenant: { type: "string", value: "ID", help: "only this tenant (default: every tenant)" } },
  async run({ values }) {
    return withStore(values, async (store) => {
      // A bar on a terminal's stderr (per tenant: one tenant's sums are one query); nothing otherwise.
      const bar = progressBar(process.stderr, "verify", "tenants");
      const ok = await verifyTenants(
        store,
        str(values, "tenant"),
        (tenant, r, seconds) => printJson({ tenant, ...r, seconds: Math.round(seconds * 1000) / 1000, entriesPerSecond: seconds > 0 ? Math.round(Number(r.entriesChecked) / seconds) : 0 }),
        (done, total) => bar.update(done, total),
      );
      bar.finish();
      return ok ? 0 : 1;
    });
  },
};
