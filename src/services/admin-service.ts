import type { ConnectRouter } from "@connectrpc/connect";
import { AdminService, KeyScope } from "../../gen/tally/admin/v1/admin_pb.js";
import type { ApiKey } from "../../gen/tally/admin/v1/admin_pb.js";
import { ApiKeySchema } from "../../gen/tally/admin/v1/admin_pb.js";
import { create } from "@bufbuild/protobuf";
import type { Access } from "../domain/access.js";
import { LedgerError, invalidArgument } from "../domain/errors.js";
import type { Ledger } from "../domain/ledger.js";
import type { ApiKeyRecord } from "../domain/model.js";
import { timestampFromMicros } from "./convert.js";
import { principalOf, requireAdmin } from "./principal.js";

/** What the admin service needs. */
export interface AdminServiceDeps {
  readonly ledger: Ledger;
  readonly access: Access;
}

/** Registers tally.admin.v1.AdminService on a router. */
export function registerAdminService(router: ConnectRouter, deps: AdminServiceDeps): void {
  const { ledger, access } = deps;
  router.service(AdminService, {
    async createTenant(req, ctx) {
      const p = principalOf(ctx);
      if (!p.operator) throw new LedgerError("permission_denied", "operator_key_required", "creating tenants needs an operator key");
      const { tenant, admin } = await access.createTenant({ id: req.id, name: req.name });
      return {
        tenant: { id: tenant.id, name: tenant.name, createdAt: timestampFromMicros(tenant.createdAt) },
        adminKey: keyToProto(admin.key),
        adminKeySecret: admin.secret,
      };
    },

    async createApiKey(req, ctx) {
      const p = principalOf(ctx);
      requireAdmin(p);
      const scope =
        req.scope === KeyScope.TENANT_ADMIN ? "tenant_admin" : req.scope === KeyScope.ACCOUNT_READ ? "account_read" : undefined;
      if (!scope) throw invalidArgument("invalid_scope", "scope must be KEY_SCOPE_TENANT_ADMIN or KEY_SCOPE_ACCOUNT_READ");
      const issued = await access.createKey(p.tenantId, { scope, accountId: req.accountId, label: req.label });
      return { key: keyToProto(issued.key), secret: issued.secret };
    },

    async revokeApiKey(req, ctx) {
      const p = principalOf(ctx);
      requireAdmin(p);
      return { key: keyToProto(await access.revokeKey(p.tenantId, req.id)) };
    },

    async verify(_req, ctx) {
      const p = principalOf(ctx);
      requireAdmin(p);
      const r = await ledger.verify(p.tenantId);
      return {
        ok: r.ok,
        accountsChecked: r.accountsChecked,
        balancesChecked: r.balancesChecked,
        entriesChecked: r.entriesChecked,
        discrepancies: r.discrepancies.map((d) => ({ ...d })),
      };
    },
  });
}

function keyToProto(k: ApiKeyRecord): ApiKey {
  return create(ApiKeySchema, {
    id: k.id,
    tenantId: k.tenantId,
    scope: k.scope === "tenant_admin" ? KeyScope.TENANT_ADMIN : KeyScope.ACCOUNT_READ,
    accountId: k.accountId ?? "",
    operator: k.operator,
    label: k.label,
    createdAt: timestampFromMicros(k.createdAt),
    revokedAt: k.revokedAt === null ? undefined : timestampFromMicros(k.revokedAt),
  });
}
