import type { Asset } from "../domain/asset.js";
import type { AccountBalance, JournalSum, JournalWrite, RunningSum } from "../domain/store.js";
import type {
  Account,
  ApiKeyRecord,
  BalanceRow,
  CredentialRecord,
  Entry,
  EntryView,
  IdempotencyRecord,
  NewEntry,
  Tenant,
  Transfer,
} from "../domain/model.js";

/** Row mappers shared by the SQL stores: rows (int64 columns read as bigint) to domain records. */

type Row = Record<string, unknown>;

const big = (v: unknown) => v as bigint;
const str = (v: unknown) => v as string;
const nullableBig = (v: unknown) => (v === null ? null : (v as bigint));

export function tenant(r: unknown): Tenant | undefined {
  if (r === undefined) return undefined;
  const x = r as Row;
  return { id: str(x.id), name: str(x.name), createdAt: big(x.created_at) };
}

export function account(r: unknown): Account | undefined {
  if (r === undefined) return undefined;
  const x = r as Row;
  return {
    tenantId: str(x.tenant_id),
    id: str(x.id),
    overdraftLimit: big(x.overdraft_limit),
    overdraftUnlimited: big(x.overdraft_unlimited) === 1n,
    metadata: JSON.parse(str(x.metadata)) as Record<string, string>,
    frozenAt: nullableBig(x.locked_at),
    createdAt: big(x.created_at),
    effectiveAt: big(x.effective_at),
  };
}

export function asset(r: unknown): Asset | undefined {
  if (r === undefined) return undefined;
  const x = r as Row;
  return { code: str(x.code), scale: Number(big(x.scale)) };
}

/** A row of the verify_sums query (journal sums per account and asset). */
export function journalSum(r: unknown): JournalSum {
  const x = r as Row;
  return { accountId: str(x.account_id), asset: str(x.asset), posted: big(x.posted), pendingIn: big(x.pin), pendingOut: big(x.pout), entries: big(x.n) };
}

/** A row of the verify_running query (an entry whose running sum differs). */
export function runningSum(r: unknown): RunningSum {
  const x = r as Row;
  return { accountId: str(x.account_id), asset: str(x.asset), sequence: big(x.sequence), postedAfter: big(x.posted_after), running: big(x.running) };
}

export function balance(r: unknown): BalanceRow | undefined {
  if (r === undefined) return undefined;
  const x = r as Row;
  return {
    tenantId: str(x.tenant_id),
    accountId: str(x.account_id),
    asset: str(x.asset),
    posted: big(x.posted),
    pendingIn: big(x.pending_in),
    pendingOut: big(x.pending_out),
    sequence: big(x.sequence),
    updatedAt: big(x.updated_at),
  };
}

/** A row of accounts LEFT JOIN balances with the balance columns as b_* (see the accountBalance queries). */
export function accountBalance(r: unknown, asset: string): AccountBalance | undefined {
  const a = account(r);
  if (a === undefined) return undefined;
  const x = r as Row;
  if (x.b_posted === null || x.b_posted === undefined) return { account: a, balance: undefined };
  return {
    account: a,
    balance: {
      tenantId: a.tenantId,
      accountId: a.id,
      asset,
      posted: big(x.b_posted),
      pendingIn: big(x.b_pending_in),
      pendingOut: big(x.b_pending_out),
      sequence: big(x.b_sequence),
      updatedAt: big(x.b_updated_at),
    },
  };
}

export function transfer(r: unknown): Transfer | undefined {
  if (r === undefined) return undefined;
  const x = r as Row;
  return {
    tenantId: str(x.tenant_id),
    id: str(x.id),
    idempotencyKey: str(x.idempotency_key),
    debitAccountId: str(x.debit_account_id),
    creditAccountId: str(x.credit_account_id),
    asset: str(x.asset),
    amount: big(x.amount),
    postedAmount: big(x.posted_amount),
    kind: str(x.kind),
    note: str(x.note),
    metadata: JSON.parse(str(x.metadata)) as Record<string, string>,
    status: str(x.status) as Transfer["status"],
    createdAt: big(x.created_at),
    updatedAt: big(x.updated_at),
    effectiveAt: big(x.effective_at),
    sequence: big(x.sequence),
    debitBalanceAfter: big(x.debit_balance_after),
    creditBalanceAfter: big(x.credit_balance_after),
  };
}

/** Parameters of the transfers INSERT, in column order. */
export function transferParams(t: Transfer): unknown[] {
  return [
    t.tenantId,
    t.id,
    t.idempotencyKey,
    t.debitAccountId,
    t.creditAccountId,
    t.asset,
    t.amount,
    t.postedAmount,
    t.kind,
    t.note,
    JSON.stringify(t.metadata),
    t.status,
    t.createdAt,
    t.updatedAt,
    t.sequence,
    t.debitBalanceAfter,
    t.creditBalanceAfter,
    t.effectiveAt,
  ];
}

export function entry(r: unknown): Entry {
  const x = r as Row;
  return {
    sequence: big(x.sequence),
    tenantId: str(x.tenant_id),
    transferId: str(x.transfer_id),
    accountId: str(x.account_id),
    counterpartyId: str(x.counterparty_id),
    asset: str(x.asset),
    direction: str(x.direction) as Entry["direction"],
    status: str(x.status) as Entry["status"],
    amount: big(x.amount),
    pendingChange: big(x.pending_change),
    postedAfter: big(x.posted_after),
    pendingInAfter: big(x.pending_in_after),
    pendingOutAfter: big(x.pending_out_after),
    createdAt: big(x.created_at),
    effectiveAt: big(x.effective_at),
  };
}

export function entryView(r: unknown): EntryView {
  const x = r as Row;
  return { ...entry(r), kind: str(x.kind), note: str(x.note), metadata: JSON.parse(str(x.metadata)) as Record<string, string> };
}

/** A row of the journal-writes query: entry columns, then the transfer's request columns. */
export function journalWrite(r: unknown): JournalWrite {
  const x = r as Row;
  const e = entry(r);
  return {
    entry: e,
    transfer: {
      id: e.transferId,
      idempotencyKey: str(x.idempotency_key),
      debitAccountId: str(x.debit_account_id),
      creditAccountId: str(x.credit_account_id),
      asset: e.asset,
      amount: big(x.transfer_amount),
      kind: str(x.kind),
      note: str(x.note),
      metadata: JSON.parse(str(x.metadata)) as Record<string, string>,
    },
  };
}

export function idempotency(r: unknown): IdempotencyRecord | undefined {
  if (r === undefined) return undefined;
  const x = r as Row;
  return {
    tenantId: str(x.tenant_id),
    key: str(x.key),
    requestHash: str(x.request_hash),
    transferId: str(x.transfer_id),
    sequence: big(x.sequence),
    debitBalanceAfter: big(x.debit_balance_after),
    creditBalanceAfter: big(x.credit_balance_after),
  };
}

export function apiKey(r: unknown): ApiKeyRecord | undefined {
  if (r === undefined) return undefined;
  const x = r as Row;
  return {
    id: str(x.id),
    tenantId: str(x.tenant_id),
    scope: str(x.scope) as ApiKeyRecord["scope"],
    accountId: x.account_id === null ? null : str(x.account_id),
    operator: big(x.operator) === 1n,
    label: str(x.label),
    secretHash: new Uint8Array(x.secret_hash as Buffer),
    createdAt: big(x.created_at),
    revokedAt: nullableBig(x.revoked_at),
  };
}

export function credential(r: unknown): CredentialRecord | undefined {
  if (r === undefined) return undefined;
  const x = r as Row;
  return {
    kind: str(x.kind),
    id: str(x.id),
    tenantId: str(x.tenant_id),
    accountId: x.account_id === null ? null : str(x.account_id),
    orgId: x.org_id === null ? null : str(x.org_id),
    secretHash: x.secret_hash === null ? null : new Uint8Array(x.secret_hash as Buffer),
    verifyKey: x.verify_key === null ? null : new Uint8Array(x.verify_key as Buffer),
    scopes: JSON.parse(str(x.scopes)) as string[],
    label: str(x.label),
    createdAt: big(x.created_at),
    revokedAt: nullableBig(x.revoked_at),
  };
}

/** The entries column values of a new journal entry, in the INSERT's column order. */
export function entryParams(e: NewEntry): unknown[] {
  return [
    e.tenantId,
    e.transferId,
    e.accountId,
    e.counterpartyId,
    e.asset,
    e.direction,
    e.status,
    e.amount,
    e.pendingChange,
    e.postedAfter,
    e.pendingInAfter,
    e.pendingOutAfter,
    e.createdAt,
    e.effectiveAt,
  ];
}

/** The accounts column values of an account, in the INSERT's column order. */
export function accountParams(a: Account): unknown[] {
  return [a.tenantId, a.id, a.overdraftLimit, a.overdraftUnlimited ? 1n : 0n, JSON.stringify(a.metadata), a.frozenAt, a.createdAt, a.effectiveAt];
}

/** The credentials column values of a credential, in the INSERT's column order. */
export function credentialParams(c: CredentialRecord): unknown[] {
  return [
    c.kind,
    c.id,
    c.tenantId,
    c.accountId,
    c.orgId,
    c.secretHash === null ? null : Buffer.from(c.secretHash),
    c.verifyKey === null ? null : Buffer.from(c.verifyKey),
    JSON.stringify(c.scopes),
    c.label,
    c.createdAt,
    c.revokedAt,
  ];
}
