import { notFound } from "../domain/errors.js";
import { Ledger } from "../domain/ledger.js";
import type { VerifyReport } from "../domain/model.js";
import type { Store } from "../domain/store.js";
import type { Command } from "./command.js";
import { STORE_FLAGS, str } from "./flags.js";
import { withStore } from "./open-store.js";
import { printJson } from "./output.js";

/**
 * Recomputes every balance of the tenants (all when `tenantId` is undefined)
 * from the journal, handing each report to `report`; true when all agree.
 */
export async function verifyTenants(store: Store, tenantId: string | undefined, report: (tenant: string, r: VerifyReport) => void): Promise<boolean> {
  const ledger = new Ledger({ store });
  const tenants = tenantId === undefined ? await store.listTenantIds() : [tenantId];
  let ok = true;
  for (const t of tenants) {
    if (!(await store.getTenant(t))) throw notFound("tenant", t);
    const r = await ledger.verify(t);
    ok &&= r.ok;
    report(t, r);
  }
  return ok;
}

/** `tally verify`: one JSON report per tenant; exit 1 on any difference. */
export const verifyCommand: Command = {
  name: "verify",
  summary: "recompute every balance from the journal; exit 1 on any difference",
  synopsis: "[--tenant ID] [--db FILE | --database URL]",
  flags: { ...STORE_FLAGS, tenant: { type: "string", value: "ID", help: "only this tenant (default: every tenant)" } },
  async run({ values }) {
    return withStore(values, async (store) => ((await verifyTenants(store, str(values, "tenant"), (tenant, r) => printJson({ tenant, ...r }))) ? 0 : 1));
  },
};
