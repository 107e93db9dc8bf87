import type { LedgerTx } from "./ledger-port.js";
import type { ApiKeyRecord, CredentialRecord, Tenant } from "./model.js";
import type { Transactional } from "./transactional.js";

/**
 * Reads of who may call: tenants, API keys, dialect credentials, and the
 * server's own settings (meta). API keys and credentials are looked up by id
 * (what a caller presents) before the tenant is known.
 */
export interface AccessReader {
  getTenant(tenantId: string): Promise<Tenant | undefined>;
  countTenants(): Promise<number>;
  listTenantIds(): Promise<string[]>;
  getApiKey(id: string): Promise<ApiKeyRecord | undefined>;
  /** Every API key of a tenant, revoked ones included, by creation time then id. */
  listApiKeys(tenantId: string): Promise<ApiKeyRecord[]>;
  getMeta(key: string): Promise<string | undefined>;
  getCredential(kind: string, id: string): Promise<CredentialRecord | undefined>;
  /** Credentials of one kind in a tenant (or every tenant when tenantId is undefined). */
  listCredentials(kind: string, tenantId?: string): Promise<CredentialRecord[]>;
}

/** Access operations inside one atomic write. */
export interface AccessTx {
  insertTenant(tenant: Tenant): Promise<void>;
  getTenant(tenantId: string): Promise<Tenant | undefined>;
  insertApiKey(key: ApiKeyRecord): Promise<void>;
  getApiKey(id: string): Promise<ApiKeyRecord | undefined>;
  revokeApiKey(id: string, revokedAt: bigint): Promise<void>;
  /** Stores `value` under `key` unless the key is set; returns the value in force. */
  initMeta(key: string, value: string): Promise<string>;
  getMeta(key: string): Promise<string | undefined>;
  insertCredential(c: CredentialRecord): Promise<void>;
  getCredential(kind: string, id: string): Promise<CredentialRecord | undefined>;
  revokeCredential(kind: string, id: string, revokedAt: bigint): Promise<void>;
  /**
   * Records a nonce; false when it was already recorded and has not expired.
   * Expired nonces are purged as a side effect.
   */
  claimNonce(scope: string, nonce: string, expiresAt: bigint, now: bigint): Promise<boolean>;
}

/**
 * What {@link Access} and {@link Credentials} need of a store: access reads
 * and writes, and the accounts a new tenant opens or a credential is bound to.
 */
export type AccessPort = Transactional<AccessReader, AccessWrite>;

/** The transaction half of {@link AccessPort}. */
export type AccessWrite = AccessTx & Pick<LedgerTx, "getAccount" | "insertAccount">;
