import type Database from "better-sqlite3";

const ENTRY_COLUMNS = `e.sequence, e.tenant_id, e.transfer_id, e.account_id, e.counterparty_id, e.asset, e.direction,
  e.status, e.amount, e.pending_change, e.posted_after, e.pending_in_after, e.pending_out_after, e.created_at, e.effective_at`;
const ENTRY_VIEW = `SELECT ${ENTRY_COLUMNS}, t.kind, t.note, t.metadata
  FROM entries e JOIN transfers t ON t.tenant_id = e.tenant_id AND t.id = e.transfer_id`;
/**
 * A tenant's journal writes: the credit side of each, with the transfer as it
 * was asked for (see rows.journalWrite). `+e.tenant_id` keeps SQLite off the
 * (tenant, account, sequence) index, which would sort the tenant's whole
 * journal for every page: a range of the rowid (the sequence) is one seek.
 */
const JOURNAL_WRITES = `SELECT ${ENTRY_COLUMNS}, t.idempotency_key, t.debit_account_id, t.credit_account_id, t.amount AS transfer_amount,
  t.kind, t.note, t.metadata
  FROM entries e JOIN transfers t ON t.tenant_id = e.tenant_id AND t.id = e.transfer_id
  WHERE +e.tenant_id = ? AND e.sequence > ? AND e.direction = 'credit' ORDER BY e.sequence LIMIT ?`;

/** Every statement the store runs, prepared once per connection. */
export class SqliteStatements {
  readonly savepoint;
  readonly release;
  readonly rollbackTo;
  readonly getTenant;
  readonly countTenants;
  readonly listTenantIds;
  readonly insertTenant;
  readonly getAccount;
  readonly listAccounts;
  readonly insertAccount;
  readonly setAccountFrozen;
  readonly getAsset;
  readonly listAssets;
  readonly insertAsset;
  readonly getBalance;
  readonly getAccountBalance;
  readonly listBalances;
  readonly latestBalanceTime;
  readonly putBalance;
  readonly insertEntry;
  readonly lastPostedOrdinal;
  readonly getTransfer;
  readonly insertTransfer;
  readonly updateTransfer;
  readonly getIdempotency;
  readonly putIdempotency;
  readonly getApiKey;
  readonly listApiKeys;
  readonly insertApiKey;
  readonly revokeApiKey;
  readonly getMeta;
  readonly initMeta;
  readonly entriesBefore;
  readonly entriesBeforeAsset;
  readonly postedEntriesPage;
  readonly entriesAfter;
  readonly entriesAfterAsset;
  readonly journalWrites;
  readonly lastEntryAtOrBefore;
  readonly assetsAtOrBefore;
  readonly lastEntryEffectiveBy;
  readonly headSequence;
  readonly verifySums;
  readonly verifyBalances;
  readonly verifyRunning;
  readonly getCredential;
  readonly listCredentials;
  readonly listCredentialsInTenant;
  readonly insertCredential;
  readonly revokeCredential;
  readonly purgeNonces;
  readonly claimNonce;

  constructor(db: Database.Database) {
    const ro = db.readonly;
    // Write statements cannot be prepared on a read-only connection.
    const w = (sql: string) => (ro ? (undefined as unknown as Database.Statement) : db.prepare(sql));
    this.savepoint = w("SAVEPOINT write");
    this.release = w("RELEASE write");
    this.rollbackTo = w("ROLLBACK TO write");
    this.getTenant = db.prepare("SELECT * FROM tenants WHERE id = ?");
    this.countTenants = db.prepare("SELECT count(*) AS n FROM tenants");
    this.listTenantIds = db.prepare("SELECT id FROM tenants ORDER BY id");
    this.insertTenant = w("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)");
    this.getAccount = db.prepare("SELECT * FROM accounts WHERE tenant_id = ? AND id = ?");
    this.listAccounts = db.prepare("SELECT * FROM accounts WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?");
    this.insertAccount = w(
      "INSERT INTO accounts (tenant_id, id, overdraft_limit, overdraft_unlimited, metadata, locked_at, created_at, effective_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
    this.setAccountFrozen = w("UPDATE accounts SET locked_at = ?, effective_at = ? WHERE tenant_id = ? AND id = ?");
    this.getAsset = db.prepare("SELECT code, scale FROM assets WHERE tenant_id = ? AND code = ?");
    this.listAssets = db.prepare("SELECT code, scale FROM assets WHERE tenant_id = ? ORDER BY code");
    this.insertAsset = w("INSERT INTO assets (tenant_id, code, scale, created_at) VALUES (?, ?, ?, ?)");
    this.getBalance = db.prepare("SELECT * FROM balances WHERE tenant_id = ? AND account_id = ? AND asset = ?");
    this.getAccountBalance = db.prepare(
      "SELECT a.*, b.posted AS b_posted, b.pending_in AS b_pending_in, b.pending_out AS b_pending_out, b.sequence AS b_sequence, b.updated_at AS b_updated_at FROM accounts a LEFT JOIN balances b ON b.tenant_id = a.tenant_id AND b.account_id = a.id AND b.asset = ? WHERE a.tenant_id = ? AND a.id = ?",
    );
    this.latestBalanceTime = db.prepare("SELECT coalesce(max(updated_at), 0) AS at FROM balances WHERE tenant_id = ? AND account_id = ?").pluck();
    this.listBalances = db.prepare("SELECT * FROM balances WHERE tenant_id = ? AND account_id = ? ORDER BY asset");
    this.putBalance = w(
      `INSERT INTO balances (tenant_id, account_id, asset, posted, pending_in, pending_out, sequence, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (tenant_id, account_id, asset) DO UPDATE SET
         posted = excluded.posted, pending_in = excluded.pending_in, pending_out = excluded.pending_out,
         sequence = excluded.sequence, updated_at = excluded.updated_at`,
    );
    this.insertEntry = w(
      `INSERT INTO entries (tenant_id, transfer_id, account_id, counterparty_id, asset, direction, status, amount,
         pending_change, posted_after, pending_in_after, pending_out_after, created_at, effective_at, posted_ordinal)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    // The posted count of (account, asset): the newest ordinal, one seek at the end of the index.
    this.lastPostedOrdinal = db
      .prepare(
        `SELECT posted_ordinal FROM entries WHERE tenant_id = ? AND account_id = ? AND asset = ? AND posted_ordinal > 0
         ORDER BY posted_ordinal DESC LIMIT 1`,
      )
      .pluck();
    this.getTransfer = db.prepare("SELECT * FROM transfers WHERE tenant_id = ? AND id = ?");
    this.insertTransfer = w(
      `INSERT INTO transfers (tenant_id, id, idempotency_key, debit_account_id, credit_account_id, asset, amount,
         posted_amount, kind, note, metadata, status, created_at, updated_at, sequence, debit_balance_after, credit_balance_after,
         effective_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.updateTransfer = w(
      `UPDATE transfers SET status = ?, posted_amount = ?, updated_at = ?, sequence = ?, debit_balance_after = ?,
         credit_balance_after = ? WHERE tenant_id = ? AND id = ?`,
    );
    this.getIdempotency = db.prepare("SELECT * FROM idempotency WHERE tenant_id = ? AND key = ?");
    this.putIdempotency = w(
      "INSERT INTO idempotency (tenant_id, key, request_hash, transfer_id, sequence, debit_balance_after, credit_balance_after) VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    this.getApiKey = db.prepare("SELECT * FROM api_keys WHERE id = ?");
    this.listApiKeys = db.prepare("SELECT * FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id");
    this.insertApiKey = w(
      `INSERT INTO api_keys (id, tenant_id, scope, account_id, operator, label, secret_hash, created_at, revoked_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.revokeApiKey = w("UPDATE api_keys SET revoked_at = ? WHERE id = ?");
    this.getMeta = db.prepare("SELECT value FROM meta WHERE key = ?");
    this.initMeta = w("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING");
    this.entriesBefore = db.prepare(
      `${ENTRY_VIEW} WHERE e.tenant_id = ? AND e.account_id = ? AND e.sequence < ? ORDER BY e.sequence DESC LIMIT ?`,
    );
    this.entriesBeforeAsset = db.prepare(
      `${ENTRY_VIEW} WHERE e.tenant_id = ? AND e.account_id = ? AND e.asset = ? AND e.sequence < ? ORDER BY e.sequence DESC LIMIT ?`,
    );
    // Ordinals at most (posted count - skip), newest first: a seek, then `limit` rows.
    // No posted entry makes the bound NULL (no rows); count - skip cannot overflow
    // (count >= 1, 0 <= skip <= int64 max).
    this.postedEntriesPage = db.prepare(
      `${ENTRY_VIEW} WHERE e.tenant_id = @tenant AND e.account_id = @account AND e.asset = @asset
         AND e.posted_ordinal BETWEEN 1 AND (SELECT posted_ordinal FROM entries
           WHERE tenant_id = @tenant AND account_id = @account AND asset = @asset AND posted_ordinal > 0
           ORDER BY posted_ordinal DESC LIMIT 1) - @skip
       ORDER BY e.posted_ordinal DESC LIMIT @limit`,
    );
    this.entriesAfter = db.prepare(
      `${ENTRY_VIEW} WHERE e.tenant_id = ? AND e.account_id = ? AND e.sequence > ? ORDER BY e.sequence LIMIT ?`,
    );
    this.entriesAfterAsset = db.prepare(
      `${ENTRY_VIEW} WHERE e.tenant_id = ? AND e.account_id = ? AND e.asset = ? AND e.sequence > ? ORDER BY e.sequence LIMIT ?`,
    );
    this.journalWrites = db.prepare(JOURNAL_WRITES);
    this.lastEntryAtOrBefore = db.prepare(
      `SELECT ${ENTRY_COLUMNS} FROM entries e WHERE e.tenant_id = ? AND e.account_id = ? AND e.asset = ? AND e.sequence <= ?
       ORDER BY e.sequence DESC LIMIT 1`,
    );
    this.lastEntryEffectiveBy = db.prepare(
      `SELECT ${ENTRY_COLUMNS} FROM entries e WHERE e.tenant_id = ? AND e.account_id = ? AND e.asset = ? AND e.effective_at <= ?
       ORDER BY e.effective_at DESC, e.sequence DESC LIMIT 1`,
    );
    this.assetsAtOrBefore = db.prepare(
      "SELECT DISTINCT asset FROM entries WHERE tenant_id = ? AND account_id = ? AND sequence <= ? ORDER BY asset",
    );
    this.headSequence = db.prepare("SELECT coalesce(max(sequence), 0) AS head FROM entries");
    this.verifySums = db.prepare(
      `SELECT account_id, asset,
         sum(CASE WHEN status = 'POSTED' THEN amount ELSE 0 END) AS posted,
         sum(CASE WHEN direction = 'credit' THEN pending_change ELSE 0 END) AS pin,
         sum(CASE WHEN direction = 'debit' THEN pending_change ELSE 0 END) AS pout,
         count(*) AS n
       FROM entries WHERE tenant_id = ? GROUP BY account_id, asset`,
    );
    this.getCredential = db.prepare("SELECT * FROM credentials WHERE kind = ? AND id = ?");
    this.listCredentials = db.prepare("SELECT * FROM credentials WHERE kind = ? ORDER BY tenant_id, id");
    this.listCredentialsInTenant = db.prepare("SELECT * FROM credentials WHERE kind = ? AND tenant_id = ? ORDER BY id");
    this.insertCredential = w(
      `INSERT INTO credentials (kind, id, tenant_id, account_id, org_id, secret_hash, verify_key, scopes, label, created_at, revoked_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.revokeCredential = w("UPDATE credentials SET revoked_at = ? WHERE kind = ? AND id = ? AND revoked_at IS NULL");
    this.purgeNonces = w("DELETE FROM request_nonces WHERE expires_at <= ?");
    this.claimNonce = w("INSERT INTO request_nonces (scope, nonce, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING");
    this.verifyBalances = db.prepare("SELECT * FROM balances WHERE tenant_id = ?");
    this.verifyRunning = db.prepare(
      `SELECT account_id, asset, sequence, posted_after, running FROM (
         SELECT account_id, asset, sequence, posted_after,
           sum(CASE WHEN status = 'POSTED' THEN amount ELSE 0 END)
             OVER (PARTITION BY account_id, asset ORDER BY sequence) AS running
         FROM entries WHERE tenant_id = ?)
       WHERE running <> posted_after`,
    );
  }
}
