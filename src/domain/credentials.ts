import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { LedgerError, invalidArgument, notFound } from "./errors.js";
import { validateAccountId } from "./ids.js";
import { validateText } from "./validate.js";
import type { Clock } from "./ledger.js";
import type { CredentialRecord } from "./model.js";
import type { AccessPort } from "./access-port.js";
import type { CredentialIssuer } from "./credential-ids.js";

/** What a dialect asks for when it issues a credential. */
export interface CredentialInput {
  readonly kind: string;
  readonly accountId?: string | undefined;
  readonly orgId?: string | undefined;
  readonly scopes?: readonly string[];
  readonly label?: string;
  /** Generate a secret and store its hash (API keys, client secrets). */
  readonly withSecret?: boolean;
  /** Store this key to verify what clients present (public keys, HMAC keys). */
  readonly verifyKey?: Uint8Array | undefined;
  /**
   * Use this id instead of a generated one. Only an operator may fix one
   * (see `chosenCredentialId` (credential-ids.ts)): a clash answers `already_exists`.
   */
  readonly id?: string | undefined;
  /** What a generated id starts with (such as Triport's `tsk_`). */
  readonly idPrefix?: string | undefined;
}

/** A credential request as the admin API received it. */
export interface CredentialRequest {
  readonly accountId: string;
  readonly orgId: string;
  readonly scopes: readonly string[];
  readonly label: string;
  readonly publicKey: Uint8Array;
  /** A chosen id, or "" to have one generated. */
  readonly id: string;
  /** Who asks: only the operator may choose an id (see `chosenCredentialId` (credential-ids.ts)). */
  readonly issuer: CredentialIssuer;
}

/** A kind of credential a dialect issues through the admin API and CLI. */
export interface CredentialKind {
  readonly kind: string;
  /** Validates the request and issues the credential; `secret` is what the client presents. */
  issue(tenantId: string, req: CredentialRequest): Promise<IssuedCredential>;
}

/** A new credential and, when it has one, its secret (shown once). */
export interface IssuedCredential {
  readonly record: CredentialRecord;
  readonly secret: string | undefined;
}

/**
 * Generated ids drawn before giving up. Each carries 80 random bits, so even
 * one clash is all but impossible; four in a row mean the random source is broken.
 */
const ID_ATTEMPTS = 4;

/**
 * The credentials of the REST dialects, all in one table. Each belongs to a
 * tenant, but ids are unique server-wide (kind, id), because every dialect's
 * client names its credential before the tenant is known; see
 * `chosenCredentialId` (credential-ids.ts) for why tenants never choose them.
 * Secrets are random (160 bits) and stored as SHA-256 hashes; checking one
 * takes the same work whether the id exists or not.
 */
export class Credentials {
  constructor(
    private readonly store: AccessPort,
    private readonly clock: Clock,
  ) {}

  /** Issues a credential in a tenant. An account it is bound to must exist. */
  async issue(tenantId: string, input: CredentialInput): Promise<IssuedCredential> {
    const accountId = input.accountId ? validateAccountId(input.accountId) : null;
    const orgId = input.orgId ? validateAccountId(input.orgId, "org_id") : null;
    const label = input.label ?? "";
    if (label.length > 200) throw invalidArgument("invalid_label", "label must be at most 200 characters");
    validateText(label, "label");
    const secret = input.withSecret ? randomBytes(20).toString("hex") : undefined;
    const fields = {
      kind: input.kind,
      tenantId,
      accountId,
      orgId,
      secretHash: secret === undefined ? null : hash(secret),
      verifyKey: input.verifyKey ?? null,
      scopes: [...(input.scopes ?? [])],
      label,
      createdAt: this.clock(),
      revokedAt: null,
    };
    const record = await this.store.write(async (tx) => {
      if (accountId !== null && !(await tx.getAccount(tenantId, accountId))) throw notFound("account", accountId);
      if (input.id !== undefined) {
        // Only the operator fixes ids, and it may see every tenant: naming the clash tells it nothing new.
        if (await tx.getCredential(input.kind, input.id)) {
          throw new LedgerError("already_exists", "credential_exists", `a ${input.kind} credential "${input.id}" already exists`);
        }
        const r: CredentialRecord = { ...fields, id: input.id };
        await tx.insertCredential(r);
        return r;
      }
      // A generated id that is taken (another tenant's, say) is silently drawn again:
      // no caller ever hears of it.
      for (let i = 0; i < ID_ATTEMPTS; i++) {
        const id = (input.idPrefix ?? "") + randomBytes(10).toString("hex");
        if (await tx.getCredential(input.kind, id)) continue;
        const r: CredentialRecord = { ...fields, id };
        await tx.insertCredential(r);
        return r;
      }
      throw new LedgerError("internal", "credential_id_exhausted", "could not generate a free credential id");
    });
    return { record, secret };
  }

  /**
   * Revokes a credential of the tenant. Another tenant's id answers
   * `not_found` exactly like an id nobody has, so revoking is no way to learn
   * which ids exist.
   */
  async revoke(tenantId: string, kind: string, id: string): Promise<CredentialRecord> {
    return this.store.write(async (tx) => {
      const c = await tx.getCredential(kind, id);
      if (!c || c.tenantId !== tenantId) throw notFound("credential", id);
      if (c.revokedAt !== null) return c;
      const revokedAt = this.clock();
      await tx.revokeCredential(kind, id, revokedAt);
      return { ...c, revokedAt };
    });
  }

  /** A live (not revoked) credential, or undefined. */
  async find(kind: string, id: string): Promise<CredentialRecord | undefined> {
    const c = await this.store.getCredential(kind, id);
    return c && c.revokedAt === null ? c : undefined;
  }

  /**
   * Checks an id and secret. Unknown ids, wrong secrets and revoked
   * credentials are indistinguishable to the caller.
   */
  async verifySecret(kind: string, id: string, secret: string): Promise<CredentialRecord | undefined> {
    const c = await this.store.getCredential(kind, id);
    const ok = timingSafeEqual(hash(secret), c?.secretHash ? Buffer.from(c.secretHash) : DUMMY);
    return c && ok && c.revokedAt === null ? c : undefined;
  }

  /** Whether any live credential of this kind exists, in any tenant. */
  async anyLive(kind: string): Promise<boolean> {
    return (await this.store.listCredentials(kind)).some((c) => c.revokedAt === null);
  }

  /** Records a request nonce; false if it was seen before its expiry. */
  async claimNonce(scope: string, nonce: string, expiresAt: bigint): Promise<boolean> {
    return this.store.write((tx) => tx.claimNonce(scope, nonce, expiresAt, this.clock()));
  }

  /** The current time, in epoch microseconds. */
  now(): bigint {
    return this.clock();
  }
}

const DUMMY = hash("no such credential");

function hash(secret: string): Buffer {
  return createHash("sha256").update(secret).digest();
}
