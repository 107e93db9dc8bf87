import { Access } from "../domain/access.js";
import { notFound } from "../domain/errors.js";
import { systemClock } from "../domain/ledger.js";
import type { ApiKeyRecord } from "../domain/model.js";
import type { Store } from "../domain/store.js";
import type { Command } from "./command.js";
import { STORE_FLAGS, UsageError, bool, required, str } from "./flags.js";
import { withStore } from "./open-store.js";
import { isoTime, printJson } from "./output.js";

const TENANT_FLAG = { type: "string", value: "ID", help: "the tenant (required)" } as const;

/** `tally key create`: an API key, printed once. Holding the database is the authority, so no key is needed to mint one. */
export const keyCreateCommand: Command = {
  name: "key create",
  summary: "issue an API key and print it (shown once)",
  synopsis: "--tenant ID (--admin [--operator] | --account ACCOUNT_ID) [--label TEXT] [--db FILE | --database URL]",
  details:
    "Also the way back in when a tenant's admin key is lost: `tally key create --tenant ID --admin`\n" +
    "works on the database directly (run it where the server's --db or --database points; it may run\n" +
    "while the server does). Add --operator for a key that may also create tenants, like the bootstrap\n" +
    "key of the tenant \"default\". Then revoke the lost key (`tally key list`, `tally key revoke`).",
  flags: {
    ...STORE_FLAGS,
    tenant: TENANT_FLAG,
    admin: { type: "boolean", help: "a tenant admin key: everything within the tenant" },
    operator: { type: "boolean", help: "with --admin: the key may also create tenants (AdminService.CreateTenant)" },
    account: { type: "string", value: "ACCOUNT_ID", help: "a read-only key for this one account" },
    label: { type: "string", value: "TEXT", help: "a note kept with the key (shown by key list)" },
  },
  async run({ values }) {
    const tenant = required(values, "tenant");
    const admin = bool(values, "admin");
    const account = str(values, "account");
    if (admin === (account !== undefined)) throw new UsageError("give exactly one of --admin or --account ACCOUNT_ID");
    if (bool(values, "operator") && !admin) throw new UsageError("--operator goes with --admin");
    return withStore(values, async (store) => {
      await requireTenant(store, tenant);
      const issued = await new Access(store, systemClock).createKey(tenant, {
        scope: admin ? "tenant_admin" : "account_read",
        accountId: account ?? "",
        label: str(values, "label") ?? "",
        operator: bool(values, "operator"),
      });
      printJson({ id: issued.key.id, key: issued.secret });
      return 0;
    });
  },
};

/** `tally key list`: a tenant's keys, one JSON line each; never a secret or its hash. */
export const keyListCommand: Command = {
  name: "key list",
  summary: "list a tenant's API keys (id, scope, account, label, created, revoked; never secrets)",
  synopsis: "--tenant ID [--db FILE | --database URL]",
  flags: { ...STORE_FLAGS, tenant: TENANT_FLAG },
  async run({ values }) {
    const tenant = required(values, "tenant");
    return withStore(values, async (store) => {
      await requireTenant(store, tenant);
      for (const k of await new Access(store, systemClock).listKeys(tenant)) printJson(describeKey(k));
      return 0;
    });
  },
};

/** `tally key revoke`: takes effect on the next call, on a running server too. */
export const keyRevokeCommand: Command = {
  name: "key revoke",
  summary: "revoke an API key (effective on the next call, also on a running server)",
  synopsis: "--tenant ID --id KEY_ID [--db FILE | --database URL]",
  details: "Revoking a key twice keeps the first time. KEY_ID is the `k…` part of `tly_k…_…`, as key list prints it.",
  flags: { ...STORE_FLAGS, tenant: TENANT_FLAG, id: { type: "string", value: "KEY_ID", help: "the key to revoke (required)" } },
  async run({ values }) {
    const tenant = required(values, "tenant");
    const id = required(values, "id");
    return withStore(values, async (store) => {
      await requireTenant(store, tenant);
      const access = new Access(store, systemClock);
      printJson(describeKey(await access.revokeKey(tenant, id)));
      const admins = (await access.listKeys(tenant)).filter((k) => k.scope === "tenant_admin" && k.revokedAt === null);
      if (admins.length === 0) {
        process.stderr.write(`tally: tenant "${tenant}" has no admin key left; mint one with: tally key create --tenant ${tenant} --admin\n`);
      }
      return 0;
    });
  },
};

/** What an operator may see of a key: everything but the secret's hash. */
function describeKey(k: ApiKeyRecord) {
  return {
    id: k.id,
    tenant: k.tenantId,
    scope: k.scope,
    account: k.accountId,
    operator: k.operator,
    label: k.label,
    created: isoTime(k.createdAt),
    revoked: isoTime(k.revokedAt),
  };
}

/** Exits 1 (not found) rather than silently listing nothing for a mistyped tenant. */
export async function requireTenant(store: Store, tenant: string): Promise<void> {
  if (!(await store.getTenant(tenant))) throw notFound("tenant", tenant);
}
