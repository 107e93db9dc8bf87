import { Access } from "../domain/access.js";
import { systemClock } from "../domain/ledger.js";
import type { Command } from "./command.js";
import { STORE_FLAGS, str } from "./flags.js";
import { withStore } from "./open-store.js";
import { isoTime, printJson } from "./output.js";

/** `tally tenant create`: a tenant with its system accounts and first admin key (printed once). */
export const tenantCreateCommand: Command = {
  name: "tenant create",
  summary: "create a tenant and print its admin key (shown once)",
  synopsis: "[--id ID] [--name NAME] [--db FILE | --database URL]",
  flags: {
    ...STORE_FLAGS,
    id: { type: "string", value: "ID", help: "tenant id (default: a generated tn_… id)" },
    name: { type: "string", value: "NAME", help: "display name (default: the id)" },
  },
  async run({ values }) {
    return withStore(values, async (store) => {
      const { tenant, admin } = await new Access(store, systemClock).createTenant({ id: str(values, "id") ?? "", name: str(values, "name") ?? "" });
      printJson({ tenant: tenant.id, name: tenant.name, admin_key: admin.secret });
      return 0;
    });
  },
};

/** `tally tenant list`: one JSON line per tenant. */
export const tenantListCommand: Command = {
  name: "tenant list",
  summary: "list the tenants (id, name, created)",
  synopsis: "[--db FILE | --database URL]",
  flags: { ...STORE_FLAGS },
  async run({ values }) {
    return withStore(values, async (store) => {
      for (const id of await store.listTenantIds()) {
        const t = await store.getTenant(id);
        // Tenants are never removed, so every id listed is found; the check is for the type.
        if (t) printJson({ tenant: t.id, name: t.name, created: isoTime(t.createdAt) });
      }
      return 0;
    });
  },
};
