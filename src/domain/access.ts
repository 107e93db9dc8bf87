import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { LedgerError, invalidArgument, notFound, withCredentialId } from "./errors.js";
import { newId, validateAccountId, validateTenantId } from "./ids.js";
import { validateText } from "./validate.js";
import { Ledger } from "./ledger.js";
import type { Clock } from "./ledger.js";
import type { ApiKeyRecord, KeyScope, Tenant } from "./model.js";
import type { AccessPort } from "./access-port.js";

/** Who is calling, once their key checked out. */
export interface Principal {
  readonly tenantId: string;
  readonly keyId: string;
  readonly scope: KeyScope;
  /** Set for account-scoped keys: the only account they may read. */
  readonly accountId: string | null;
  readonly operator: boolean;
  /** Set when a dialect credential (not a Tally API key) authenticated the caller. */
  readonly credential?: {
    readonly kind: string;
    readonly id: string;
    readonly orgId: string | null;
    readonly scopes: readonly string[];
  };
}

/** A newly issued key: the record and the bearer token, shown once. */
export interface IssuedKey {
  readonly key: ApiKeyRecord;
  readonly secret: string;
}

const TOKEN = /^tly_(k[0-9a-z]{20})_([0-9a-z]{32})$/;

/**
 * Tenants and API keys. A token is `tly_<key id>_<secret>`; only the SHA-256
 * of the secret is stored. A plain hash is enough because the secret carries
 * 160 random bits: there is nothing to brute-force.
 */
export class Access {
  constructor(
    private readonly store: AccessPort,
    private readonly clock: Clock,
  ) {}

  /** Creates a tenant, its system accounts and its first admin key, in one write. */
  async createTenant(input: { id: string; name: string; operator?: boolean }): Promise<{ tenant: Tenant; admin: IssuedKey }> {
    const id = input.id === "" ? newId("tn") : validateTenantId(input.id);
    if (input.name.length > 200) throw invalidArgument("invalid_name", "name must be at most 200 characters");
    validateText(input.name, "name");
    const now = this.clock();
    const tenant: Tenant = { id, name: input.name || id, createdAt: now };
    const admin = this.mint({ tenantId: id, scope: "tenant_admin", accountId: null, operator: input.operator ?? false, label: "admin" }, now);
    await this.store.write(async (tx) => {
      if (await tx.getTenant(id)) throw new LedgerError("already_exists", "tenant_exists", `tenant "${id}" already exists`);
      await tx.insertTenant(tenant);
      for (const account of Ledger.systemAccounts(id, now)) await tx.insertAccount(account);
      await tx.insertApiKey(admin.key);
    });
    return { tenant, admin };
  }

  /**
   * Issues a key in a tenant. Account keys must name an existing account.
   * `operator` (tenant admin keys only) also lets the key create tenants, as
   * the bootstrap key does: the way back when that key is lost. Only the
   * command line, which holds the database itself, sets it.
   */
  async createKey(tenantId: string, input: { scope: KeyScope; accountId: string; label: string; operator?: boolean }): Promise<IssuedKey> {
    const operator = input.operator ?? false;
    if (operator && input.scope !== "tenant_admin") throw invalidArgument("invalid_scope", "only a tenant admin key can be an operator key");
    if (input.label.length > 200) throw invalidArgument("invalid_label", "label must be at most 200 characters");
    validateText(input.label, "label");
    const accountId = input.scope === "account_read" ? validateAccountId(input.accountId) : null;
    if (input.scope === "tenant_admin" && input.accountId !== "") {
      throw invalidArgument("invalid_scope", "account_id is only allowed with an account-scoped key");
    }
    const issued = this.mint({ tenantId, scope: input.scope, accountId, operator, label: input.label }, this.clock());
    await this.store.write(async (tx) => {
      if (accountId !== null && !(await tx.getAccount(tenantId, accountId))) throw notFound("account", accountId);
      await tx.insertApiKey(issued.key);
    });
    return issued;
  }

  /** Every key of the tenant, revoked ones included, oldest first (secret hashes and all: callers show what they need). */
  async listKeys(tenantId: string): Promise<ApiKeyRecord[]> {
    return this.store.listApiKeys(tenantId);
  }

  /** Revokes a key of the tenant; revoking twice keeps the first time. */
  async revokeKey(tenantId: string, keyId: string): Promise<ApiKeyRecord> {
    return this.store.write(async (tx) => {
      const key = await tx.getApiKey(keyId);
      if (!key || key.tenantId !== tenantId) throw notFound("api_key", keyId);
      if (key.revokedAt !== null) return key;
      const revokedAt = this.clock();
      await tx.revokeApiKey(keyId, revokedAt);
      return { ...key, revokedAt };
    });
  }

  /**
   * Resolves a bearer token. Unknown ids, wrong secrets and revoked keys all
   * fail the same way and take the same work, so the answer is no oracle.
   */
  async authenticate(token: string): Promise<Principal> {
    const m = TOKEN.exec(token);
    const presented = hashSecret(m?.[2] ?? "");
    const key = m ? await this.store.getApiKey(m[1]!) : undefined;
    const expected = key?.secretHash ?? DUMMY_HASH;
    const match = timingSafeEqual(presented, expected);
    if (!key || !match || key.revokedAt !== null) {
      throw withCredentialId(new LedgerError("unauthenticated", "invalid_api_key", "invalid or revoked API key"), m?.[1]);
    }
    return { tenantId: key.tenantId, keyId: key.id, scope: key.scope, accountId: key.accountId, operator: key.operator };
  }

  private mint(
    fields: { tenantId: string; scope: KeyScope; accountId: string | null; operator: boolean; label: string },
    now: bigint,
  ): IssuedKey {
    const id = "k" + base32(randomBytes(20)).slice(0, 20);
    const secret = base32(randomBytes(20)).slice(0, 32);
    return {
      key: { id, ...fields, secretHash: hashSecret(secret), createdAt: now, revokedAt: null },
      secret: `tly_${id}_${secret}`,
    };
  }
}

const DUMMY_HASH = hashSecret("not-a-secret");

function hashSecret(secret: string): Buffer {
  return createHash("sha256").update(secret).digest();
}

const ALPHABET = "0123456789abcdefghijklmnopqrstuv";

function base32(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}
