import type { ConnectRouter } from "@connectrpc/connect";
import { AdminService, KeyScope } from "../../gen/tally/admin/v1/admin_pb.js";
import type { ApiKey, Credential } from "../../gen/tally/admin/v1/admin_pb.js";
import { ApiKeySchema, CredentialSchema } from "../../gen/tally/admin/v1/admin_pb.js";
import { create } from "@bufbuild/protobuf";
import type { Access } from "../domain/access.js";
import { LedgerError, invalidArgument } from "../domain/errors.js";
import type { Ledger } from "../domain/ledger.js";
import type { CredentialKind, Credentials } from "../domain/credentials.js";
import type { ApiKeyRecord, CredentialRecord } from "../domain/model.js";
import { timestampFromMicros } from "./convert.js";
import { principalOf, requireAdmin } from "./principal.js";

/** What the admin service needs. */
export interface AdminServiceDeps {
  readonly ledger: Ledger;
  readonly access: Access;
  readonly credentials: Credentials;
  /** The credential kinds of the enabled dialects. */
  readonly credentialKinds: ReadonlyMap<string, CredentialKind>;
}

/** Registers tally.admin.v1.AdminService on a router. */
export function registerAdminService(router: ConnectRouter, deps: AdminServiceDeps): void {
  const { ledger, access, credentials, credentialKinds } = deps;
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

    async createCredential(req, ctx) {
      const p = principalOf(ctx);
      requireAdmin(p);
      const kind = credentialKinds.get(req.kind);
      if (!kind) {
        const known = [...credentialKinds.keys()].sort().join(", ") || "none: no dialect is enabled";
        throw invalidArgument("unknown_credential_kind", `unknown credential kind "${req.kind}"; known kinds: ${known}`);
      }
      const issued = await kind.issue(p.tenantId, {
        accountId: req.accountId,
        orgId: req.orgId,
        scopes: req.scopes,
        label: req.label,
        publicKey: req.publicKey,
        id: req.id,
        // A tenant admin sees its own tenant only: it may not choose server-wide ids.
        issuer: "tenant",
      });
      return { credential: credentialToProto(issued.record), secret: issued.secret ?? "" };
    },

    async revokeCredential(req, ctx) {
      const p = principalOf(ctx);
      requireAdmin(p);
      return { credential: credentialToProto(await credentials.revoke(p.tenantId, req.kind, req.id)) };
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

function credentialToProto(c: CredentialRecord): Credential {
  return create(CredentialSchema, {
    kind: c.kind,
    id: c.id,
    accountId: c.accountId ?? "",
    orgId: c.orgId ?? "",
    scopes: [...c.scopes],
    label: c.label,
    createdAt: timestampFromMicros(c.createdAt),
    revokedAt: c.revokedAt === null ? undefined : timestampFromMicros(c.revokedAt),
  });
}
