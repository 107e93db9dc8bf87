import type { QueryConfig, QueryResult } from "pg";

/** A pool or a checked-out client: anything that runs a query. */
export interface Db {
  query(config: QueryConfig): Promise<QueryResult>;
}

/** A named statement: pg prepares it once per connection and reuses the plan. */
export interface Sql {
  readonly name: string;
  readonly text: string;
}

/** A row as pg returns it: int8 and numeric as bigint (see the pool's type parsers), bytea as Buffer. */
export type Row = Record<string, unknown>;

const sql = (name: string, text: string): Sql => ({ name: `tally_${name}`, text });

/** Runs a statement and returns its rows. */
export async function all(db: Db, s: Sql, values: readonly unknown[]): Promise<Row[]> {
  return (await db.query({ name: s.name, text: s.text, values: [...values] })).rows as Row[];
}

/** Runs a statement and returns its first row, or undefined. */
export async function one(db: Db, s: Sql, values: readonly unknown[]): Promise<Row | undefined> {
  return (await all(db, s, values))[0];
}

/** Runs a statement and returns how many rows it changed. */
export async function run(db: Db, s: Sql, values: readonly unknown[]): Promise<number> {
  return (await db.query({ name: s.name, text: s.text, values: [...values] })).rowCount ?? 0;
}

const ENTRY_COLUMNS = `e.sequence, e.tenant_id, e.transfer_id, e.account_id, e.counterparty_id, e.asset, e.direction,
  e.status, e.amount, e.pending_change, e.posted_after, e.pending_in_after, e.pending_out_after, e.created_at, e.effective_at`;
const ENTRY_VIEW = `SELECT ${ENTRY_COLUMNS}, t.kind, t.note, t.metadata
  FROM entries e JOIN transfers t ON t.tenant_id = e.tenant_id AND t.id = e.transfer_id`;

/**
 * Every ledger statement, the counterpart of the SQLite store's statements
 * (same filters and the same order). Orders that SQLite got from a table's
 * primary key without saying so are spelled out here: PostgreSQL promises no
 * order without ORDER BY.
 */
export const Q = {
  getTenant: sql("get_tenant", "SELECT * FROM tenants WHERE id = $1"),
  countTenants: sql("count_tenants", "SELECT count(*) AS n FROM tenants"),
  listTenantIds: sql("list_tenant_ids", "SELECT id FROM tenants ORDER BY id"),
  insertTenant: sql("insert_tenant", "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)"),
  getAccount: sql("get_account", "SELECT * FROM accounts WHERE tenant_id = $1 AND id = $2"),
  listAccounts: sql("list_accounts", "SELECT * FROM accounts WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"),
  // The caller passes sorted ids; ORDER BY makes the lock order deterministic anyway.
  lockAccounts: sql("lock_accounts", "SELECT * FROM accounts WHERE tenant_id = $1 AND id = ANY($2::text[]) ORDER BY id FOR UPDATE"),
  // Read in a statement of its own, after the locks: a READ COMMITTED statement
  // reads from the snapshot it started with, which (for the statement that
  // waited for the locks) predates the previous holder's commit.
  // With each row, the newest posted ordinal of its (account, asset) (one seek each; NULL
  // when none): a writer holding the locks continues these counts without another round trip.
  balancesOfAccounts: sql(
    "balances_of_accounts",
    `SELECT b.*, (SELECT e.posted_ordinal FROM entries e
        WHERE e.tenant_id = b.tenant_id AND e.account_id = b.account_id AND e.asset = b.asset AND e.posted_ordinal > 0
        ORDER BY e.posted_ordinal DESC LIMIT 1) AS last_posted_ordinal
     FROM balances b WHERE b.tenant_id = $1 AND b.account_id = ANY($2::text[])`,
  ),
  lastPostedOrdinal: sql(
    "last_posted_ordinal",
    `SELECT posted_ordinal FROM entries WHERE tenant_id = $1 AND account_id = $2 AND asset = $3 AND posted_ordinal > 0
     ORDER BY posted_ordinal DESC LIMIT 1`,
  ),
  shareAccount: sql("share_account", "SELECT 1 FROM accounts WHERE tenant_id = $1 AND id = $2 FOR SHARE"),
  insertAccount: sql(
    "insert_account",
    "INSERT INTO accounts (tenant_id, id, overdraft_limit, overdraft_unlimited, metadata, locked_at, created_at, effective_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
  ),
  setAccountFrozen: sql("set_account_frozen", "UPDATE accounts SET locked_at = $1, effective_at = $2 WHERE tenant_id = $3 AND id = $4"),
  getAsset: sql("get_asset", "SELECT code, scale FROM assets WHERE tenant_id = $1 AND code = $2"),
  listAssets: sql("list_assets", "SELECT code, scale FROM assets WHERE tenant_id = $1 ORDER BY code"),
  insertAsset: sql("insert_asset", "INSERT INTO assets (tenant_id, code, scale, created_at) VALUES ($1, $2, $3, $4)"),
  getBalance: sql("get_balance", "SELECT * FROM balances WHERE tenant_id = $1 AND account_id = $2 AND asset = $3"),
  getAccountBalance: sql(
    "get_account_balance",
    "SELECT a.*, b.posted AS b_posted, b.pending_in AS b_pending_in, b.pending_out AS b_pending_out, b.sequence AS b_sequence, b.updated_at AS b_updated_at FROM accounts a LEFT JOIN balances b ON b.tenant_id = a.tenant_id AND b.account_id = a.id AND b.asset = $3 WHERE a.tenant_id = $1 AND a.id = $2",
  ),
  latestBalanceTime: sql(
    "latest_balance_time",
    "SELECT coalesce(max(updated_at), 0)::bigint AS at FROM balances WHERE tenant_id = $1 AND account_id = $2",
  ),
  listBalances: sql("list_balances", "SELECT * FROM balances WHERE tenant_id = $1 AND account_id = $2 ORDER BY asset"),
  putBalance: sql(
    "put_balance",
    `INSERT INTO balances (tenant_id, account_id, asset, posted, pending_in, pending_out, sequence, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (tenant_id, account_id, asset) DO UPDATE SET
       posted = excluded.posted, pending_in = excluded.pending_in, pending_out = excluded.pending_out,
       sequence = excluded.sequence, updated_at = excluded.updated_at`,
  ),
  putBalances: sql(
    "put_balances",
    `INSERT INTO balances (tenant_id, account_id, asset, posted, pending_in, pending_out, sequence, updated_at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[])
     ON CONFLICT (tenant_id, account_id, asset) DO UPDATE SET
       posted = excluded.posted, pending_in = excluded.pending_in, pending_out = excluded.pending_out,
       sequence = excluded.sequence, updated_at = excluded.updated_at`,
  ),
  reserveSequences: sql(
    "reserve_sequences",
    "SELECT nextval(pg_get_serial_sequence('entries', 'sequence')) AS sequence FROM generate_series(1, $1::int)",
  ),
  insertEntries: sql(
    "insert_entries",
    `INSERT INTO entries (sequence, tenant_id, transfer_id, account_id, counterparty_id, asset, direction, status, amount,
       pending_change, posted_after, pending_in_after, pending_out_after, created_at, effective_at, posted_ordinal)
     OVERRIDING SYSTEM VALUE
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
       $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[])`,
  ),
  insertTransfers: sql(
    "insert_transfers",
    `INSERT INTO transfers (tenant_id, id, idempotency_key, debit_account_id, credit_account_id, asset, amount,
       posted_amount, kind, note, metadata, status, created_at, updated_at, sequence, debit_balance_after, credit_balance_after,
       effective_at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
       $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[],
       $18::bigint[])`,
  ),
  putIdempotencies: sql(
    "put_idempotencies",
    `INSERT INTO idempotency (tenant_id, key, request_hash, transfer_id, sequence, debit_balance_after, credit_balance_after)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[])`,
  ),
  insertEntry: sql(
    "insert_entry",
    `INSERT INTO entries (tenant_id, transfer_id, account_id, counterparty_id, asset, direction, status, amount,
       pending_change, posted_after, pending_in_after, pending_out_after, created_at, effective_at, posted_ordinal)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING sequence`,
  ),
  getTransfer: sql("get_transfer", "SELECT * FROM transfers WHERE tenant_id = $1 AND id = $2"),
  insertTransfer: sql(
    "insert_transfer",
    `INSERT INTO transfers (tenant_id, id, idempotency_key, debit_account_id, credit_account_id, asset, amount,
       posted_amount, kind, note, metadata, status, created_at, updated_at, sequence, debit_balance_after, credit_balance_after,
       effective_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
  ),
  updateTransfer: sql(
    "update_transfer",
    `UPDATE transfers SET status = $1, posted_amount = $2, updated_at = $3, sequence = $4, debit_balance_after = $5,
       credit_balance_after = $6 WHERE tenant_id = $7 AND id = $8`,
  ),
  getIdempotency: sql("get_idempotency", "SELECT * FROM idempotency WHERE tenant_id = $1 AND key = $2"),
  getIdempotencies: sql("get_idempotencies", "SELECT * FROM idempotency WHERE tenant_id = $1 AND key = ANY($2::text[])"),
  putIdempotency: sql(
    "put_idempotency",
    "INSERT INTO idempotency (tenant_id, key, request_hash, transfer_id, sequence, debit_balance_after, credit_balance_after) VALUES ($1, $2, $3, $4, $5, $6, $7)",
  ),
  getApiKey: sql("get_api_key", "SELECT * FROM api_keys WHERE id = $1"),
  listApiKeys: sql("list_api_keys", "SELECT * FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id"),
  insertApiKey: sql(
    "insert_api_key",
    `INSERT INTO api_keys (id, tenant_id, scope, account_id, operator, label, secret_hash, created_at, revoked_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
  ),
  revokeApiKey: sql("revoke_api_key", "UPDATE api_keys SET revoked_at = $1 WHERE id = $2"),
  getMeta: sql("get_meta", "SELECT value FROM meta WHERE key = $1"),
  initMeta: sql("init_meta", "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"),
  entriesBefore: sql(
    "entries_before",
    `${ENTRY_VIEW} WHERE e.tenant_id = $1 AND e.account_id = $2 AND e.sequence < $3 ORDER BY e.sequence DESC LIMIT $4`,
  ),
  entriesBeforeAsset: sql(
    "entries_before_asset",
    `${ENTRY_VIEW} WHERE e.tenant_id = $1 AND e.account_id = $2 AND e.asset = $3 AND e.sequence < $4 ORDER BY e.sequence DESC LIMIT $5`,
  ),
  // Ordinals at most (posted count - skip), newest first: a seek, then $5 rows. No posted
  // entry makes the bound NULL (no rows); count - skip cannot overflow (count >= 1, 0 <= skip).
  postedEntriesPage: sql(
    "posted_entries_page",
    `${ENTRY_VIEW} WHERE e.tenant_id = $1 AND e.account_id = $2 AND e.asset = $3
       AND e.posted_ordinal BETWEEN 1 AND (SELECT posted_ordinal FROM entries
         WHERE tenant_id = $1 AND account_id = $2 AND asset = $3 AND posted_ordinal > 0
         ORDER BY posted_ordinal DESC LIMIT 1) - $4::bigint
     ORDER BY e.posted_ordinal DESC LIMIT $5`,
  ),
  entriesAfter: sql(
    "entries_after",
    `${ENTRY_VIEW} WHERE e.tenant_id = $1 AND e.account_id = $2 AND e.sequence > $3 ORDER BY e.sequence LIMIT $4`,
  ),
  entriesAfterAsset: sql(
    "entries_after_asset",
    `${ENTRY_VIEW} WHERE e.tenant_id = $1 AND e.account_id = $2 AND e.asset = $3 AND e.sequence > $4 ORDER BY e.sequence LIMIT $5`,
  ),
  journalWrites: sql(
    "journal_writes",
    `SELECT ${ENTRY_COLUMNS}, t.idempotency_key, t.debit_account_id, t.credit_account_id, t.amount AS transfer_amount,
       t.kind, t.note, t.metadata
     FROM entries e JOIN transfers t ON t.tenant_id = e.tenant_id AND t.id = e.transfer_id
     WHERE e.tenant_id = $1 AND e.sequence > $2 AND e.direction = 'credit' ORDER BY e.sequence LIMIT $3`,
  ),
  lastEntryAtOrBefore: sql(
    "last_entry_at_or_before",
    `SELECT ${ENTRY_COLUMNS} FROM entries e WHERE e.tenant_id = $1 AND e.account_id = $2 AND e.asset = $3 AND e.sequence <= $4
     ORDER BY e.sequence DESC LIMIT 1`,
  ),
  lastEntryEffectiveBy: sql(
    "last_entry_effective_by",
    `SELECT ${ENTRY_COLUMNS} FROM entries e WHERE e.tenant_id = $1 AND e.account_id = $2 AND e.asset = $3 AND e.effective_at <= $4
     ORDER BY e.effective_at DESC, e.sequence DESC LIMIT 1`,
  ),
  assetsAtOrBefore: sql(
    "assets_at_or_before",
    "SELECT DISTINCT asset FROM entries WHERE tenant_id = $1 AND account_id = $2 AND sequence <= $3 ORDER BY asset",
  ),
  headSequence: sql("head_sequence", "SELECT coalesce(max(sequence), 0)::bigint AS head FROM entries"),
  getCredential: sql("get_credential", "SELECT * FROM credentials WHERE kind = $1 AND id = $2"),
  listCredentials: sql("list_credentials", "SELECT * FROM credentials WHERE kind = $1 ORDER BY tenant_id, id"),
  listCredentialsInTenant: sql("list_credentials_in_tenant", "SELECT * FROM credentials WHERE kind = $1 AND tenant_id = $2 ORDER BY id"),
  insertCredential: sql(
    "insert_credential",
    `INSERT INTO credentials (kind, id, tenant_id, account_id, org_id, secret_hash, verify_key, scopes, label, created_at, revoked_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
  ),
  revokeCredential: sql("revoke_credential", "UPDATE credentials SET revoked_at = $1 WHERE kind = $2 AND id = $3 AND revoked_at IS NULL"),
  purgeNonces: sql("purge_nonces", "DELETE FROM request_nonces WHERE expires_at <= $1"),
  claimNonce: sql("claim_nonce", "INSERT INTO request_nonces (scope, nonce, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"),
  // PostgreSQL sums bigint into numeric, which never overflows: the store
  // checks the totals against the int64 range itself (see verify).
  verifySums: sql(
    "verify_sums",
    `SELECT account_id, asset,
       sum(CASE WHEN status = 'POSTED' THEN amount ELSE 0 END) AS posted,
       sum(CASE WHEN direction = 'credit' THEN pending_change ELSE 0 END) AS pin,
       sum(CASE WHEN direction = 'debit' THEN pending_change ELSE 0 END) AS pout,
       count(*) AS n
     FROM entries WHERE tenant_id = $1 GROUP BY account_id, asset ORDER BY account_id, asset`,
  ),
  verifyBalances: sql("verify_balances", "SELECT * FROM balances WHERE tenant_id = $1 ORDER BY account_id, asset"),
  verifyRunning: sql(
    "verify_running",
    `SELECT account_id, asset, sequence, posted_after, running FROM (
       SELECT account_id, asset, sequence, posted_after,
         sum(CASE WHEN status = 'POSTED' THEN amount ELSE 0 END)
           OVER (PARTITION BY account_id, asset ORDER BY sequence) AS running
       FROM entries WHERE tenant_id = $1) r
     WHERE running <> posted_after
     ORDER BY account_id, asset, sequence`,
  ),
} as const;
