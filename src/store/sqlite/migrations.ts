/**
 * Versioned schema migrations, applied in order at start inside one
 * transaction each. Never edit a migration that has shipped: add a new one.
 *
 * Every table is STRICT, so an int64 that overflowed could never be stored as a
 * REAL; every amount and time column is INTEGER (int64, read back as bigint).
 */
import { CREDIT_CREATION_ORDER_MIGRATION } from "../credit-rows.js";
export const MIGRATIONS: readonly { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: "ledger core",
    sql: `
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE tenants (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE api_keys (
  id          TEXT PRIMARY KEY,
  tenant_id   TEXT NOT NULL REFERENCES tenants(id),
  scope       TEXT NOT NULL CHECK (scope IN ('tenant_admin', 'account_read')),
  account_id  TEXT,
  operator    INTEGER NOT NULL CHECK (operator IN (0, 1)),
  label       TEXT NOT NULL,
  secret_hash BLOB NOT NULL,
  created_at  INTEGER NOT NULL,
  revoked_at  INTEGER
) STRICT, WITHOUT ROWID;

CREATE TABLE assets (
  tenant_id  TEXT NOT NULL REFERENCES tenants(id),
  code       TEXT NOT NULL,
  scale      INTEGER NOT NULL CHECK (scale BETWEEN 0 AND 18),
  created_at INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, code)
) STRICT, WITHOUT ROWID;

CREATE TABLE accounts (
  tenant_id           TEXT NOT NULL REFERENCES tenants(id),
  id                  TEXT NOT NULL,
  overdraft_limit     INTEGER NOT NULL CHECK (overdraft_limit >= 0),
  overdraft_unlimited INTEGER NOT NULL CHECK (overdraft_unlimited IN (0, 1)),
  metadata            TEXT NOT NULL,
  locked_at           INTEGER,
  created_at          INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
) STRICT, WITHOUT ROWID;

CREATE TABLE balances (
  tenant_id   TEXT NOT NULL,
  account_id  TEXT NOT NULL,
  asset       TEXT NOT NULL,
  posted      INTEGER NOT NULL,
  pending_in  INTEGER NOT NULL CHECK (pending_in >= 0),
  pending_out INTEGER NOT NULL CHECK (pending_out >= 0),
  sequence    INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, account_id, asset)
) STRICT, WITHOUT ROWID;

CREATE TABLE transfers (
  tenant_id            TEXT NOT NULL,
  id                   TEXT NOT NULL,
  idempotency_key      TEXT NOT NULL,
  debit_account_id     TEXT NOT NULL,
  credit_account_id    TEXT NOT NULL,
  asset                TEXT NOT NULL,
  amount               INTEGER NOT NULL CHECK (amount > 0),
  posted_amount        INTEGER NOT NULL CHECK (posted_amount >= 0),
  kind                 TEXT NOT NULL,
  note                 TEXT NOT NULL,
  metadata             TEXT NOT NULL,
  status               TEXT NOT NULL CHECK (status IN ('PENDING', 'POSTED', 'VOIDED')),
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL,
  sequence             INTEGER NOT NULL,
  debit_balance_after  INTEGER NOT NULL,
  credit_balance_after INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
) STRICT, WITHOUT ROWID;

-- The journal. sequence is the rowid: assigned in commit order by the single
-- writer, never reused because rows are never deleted (see the triggers).
CREATE TABLE entries (
  sequence          INTEGER PRIMARY KEY,
  tenant_id         TEXT NOT NULL,
  transfer_id       TEXT NOT NULL,
  account_id        TEXT NOT NULL,
  counterparty_id   TEXT NOT NULL,
  asset             TEXT NOT NULL,
  direction         TEXT NOT NULL CHECK (direction IN ('debit', 'credit')),
  status            TEXT NOT NULL CHECK (status IN ('PENDING', 'POSTED', 'VOIDED')),
  amount            INTEGER NOT NULL,
  pending_change    INTEGER NOT NULL,
  posted_after      INTEGER NOT NULL,
  pending_in_after  INTEGER NOT NULL,
  pending_out_after INTEGER NOT NULL,
  created_at        INTEGER NOT NULL
) STRICT;

CREATE INDEX entries_by_account ON entries (tenant_id, account_id, sequence);
CREATE INDEX entries_by_account_asset ON entries (tenant_id, account_id, asset, sequence);

CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;

CREATE TABLE idempotency (
  tenant_id    TEXT NOT NULL,
  key          TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  transfer_id  TEXT NOT NULL,
  result       TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, key)
) STRICT, WITHOUT ROWID;
`,
  },
  {
    version: 2,
    name: "dialect credentials and request nonces",
    sql: `
-- Credentials of the REST dialects (session keys, vendor API keys, public
-- keys, client secrets). Secrets that only need checking are stored as a
-- SHA-256 hash; keys needed to verify signatures are stored as they are.
CREATE TABLE credentials (
  kind        TEXT NOT NULL,
  id          TEXT NOT NULL,
  tenant_id   TEXT NOT NULL REFERENCES tenants(id),
  account_id  TEXT,
  org_id      TEXT,
  secret_hash BLOB,
  verify_key  BLOB,
  scopes      TEXT NOT NULL,
  label       TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  revoked_at  INTEGER,
  PRIMARY KEY (kind, id)
) STRICT, WITHOUT ROWID;

-- Nonces of signed requests, kept until their timestamp is too old to be
-- accepted anyway, so that a captured request cannot be replayed.
CREATE TABLE request_nonces (
  scope      TEXT NOT NULL,
  nonce      TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (scope, nonce)
) STRICT, WITHOUT ROWID;
CREATE INDEX request_nonces_expiry ON request_nonces (expires_at);
`,
  },
  {
    version: 3,
    name: "commits and credits",
    sql: `
-- Commits and credits (docs/credits.md). Only archived_at ever changes.
-- ordinal is the creation order within the tenant: the last draw-down tie-break.
CREATE TABLE credit_balances (
  tenant_id               TEXT NOT NULL REFERENCES tenants(id),
  id                      TEXT NOT NULL,
  ordinal                 INTEGER NOT NULL,
  kind                    TEXT NOT NULL CHECK (kind IN ('PREPAID', 'POSTPAID', 'CREDIT')),
  customer_id             TEXT NOT NULL,
  contract_id             TEXT,
  name                    TEXT NOT NULL,
  description             TEXT NOT NULL,
  priority                INTEGER NOT NULL,
  product_id              TEXT NOT NULL,
  product_name            TEXT NOT NULL,
  asset                   TEXT NOT NULL,
  applicable_product_ids  TEXT NOT NULL,
  applicable_product_tags TEXT NOT NULL,
  custom_fields           TEXT NOT NULL,
  uniqueness_key          TEXT,
  archived_at             INTEGER,
  created_at              INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
) STRICT, WITHOUT ROWID;
CREATE UNIQUE INDEX credit_balances_uniqueness ON credit_balances (tenant_id, uniqueness_key) WHERE uniqueness_key IS NOT NULL;
CREATE UNIQUE INDEX credit_balances_ordinal ON credit_balances (tenant_id, ordinal);
CREATE INDEX credit_balances_by_customer ON credit_balances (tenant_id, customer_id, id);

-- Segments of access schedules; immutable once written.
CREATE TABLE credit_segments (
  tenant_id     TEXT NOT NULL,
  id            TEXT NOT NULL,
  balance_id    TEXT NOT NULL,
  position      INTEGER NOT NULL,
  amount        INTEGER NOT NULL CHECK (amount > 0),
  starting_at   INTEGER NOT NULL,
  ending_before INTEGER NOT NULL,
  CHECK (starting_at < ending_before),
  PRIMARY KEY (tenant_id, id)
) STRICT, WITHOUT ROWID;
CREATE INDEX credit_segments_by_balance ON credit_segments (tenant_id, balance_id, position);

-- The typed ledger of segments, append-only like the transfer journal.
-- Expiration entries are derived on read and never stored here.
CREATE TABLE credit_entries (
  sequence   INTEGER PRIMARY KEY,
  tenant_id  TEXT NOT NULL,
  balance_id TEXT NOT NULL,
  segment_id TEXT NOT NULL,
  type       TEXT NOT NULL,
  amount     INTEGER NOT NULL,
  timestamp  INTEGER NOT NULL,
  invoice_id TEXT,
  reason     TEXT,
  usage_id   TEXT,
  created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX credit_entries_by_balance ON credit_entries (tenant_id, balance_id, sequence);
CREATE TRIGGER credit_entries_no_update BEFORE UPDATE ON credit_entries
BEGIN SELECT RAISE(ABORT, 'the credit ledger is append-only'); END;
CREATE TRIGGER credit_entries_no_delete BEFORE DELETE ON credit_entries
BEGIN SELECT RAISE(ABORT, 'the credit ledger is append-only'); END;

-- Usage ids seen, with their outcome, so a retried usage is replayed, never drawn twice.
CREATE TABLE credit_usages (
  tenant_id    TEXT NOT NULL,
  usage_id     TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  result       TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, usage_id)
) STRICT, WITHOUT ROWID;
`,
  },
  {
    version: 4,
    name: "credit closings and manual keys",
    sql: `
-- Closing entries are materialised: what was left of a segment when it ended
-- (*_EXPIRATION, or POSTPAID_COMMIT_TRUEUP for a postpaid commit) or when its
-- balance was archived (*_CANCELED). At most one per segment, whatever closed it.
CREATE UNIQUE INDEX credit_entries_one_closing ON credit_entries (tenant_id, segment_id)
  WHERE type IN ('PREPAID_COMMIT_EXPIRATION', 'POSTPAID_COMMIT_EXPIRATION', 'CREDIT_EXPIRATION',
                 'POSTPAID_COMMIT_TRUEUP', 'PREPAID_COMMIT_CANCELED', 'CREDIT_CANCELED');
-- The sweeper and verify sum one segment's entries.
CREATE INDEX credit_entries_by_segment ON credit_entries (tenant_id, segment_id, sequence);
-- The sweeper finds the segments that have ended.
CREATE INDEX credit_segments_by_end ON credit_segments (ending_before);
-- Idempotency keys of AddManualLedgerEntry: the key, the request's hash and
-- the entry it wrote (encoded by the domain), kept forever like usage ids.
CREATE TABLE credit_manual_keys (
  tenant_id    TEXT NOT NULL,
  key          TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  result       TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, key)
) STRICT, WITHOUT ROWID;
`,
  },
  {
    version: 5,
    name: "rollover closes a segment",
    sql: `
-- A rollover (*_ROLLOVER) closes a segment like an expiration or a
-- cancellation: still at most one closing entry per segment, whatever closed it.
DROP INDEX credit_entries_one_closing;
CREATE UNIQUE INDEX credit_entries_one_closing ON credit_entries (tenant_id, segment_id)
  WHERE type IN ('PREPAID_COMMIT_EXPIRATION', 'POSTPAID_COMMIT_EXPIRATION', 'CREDIT_EXPIRATION',
                 'POSTPAID_COMMIT_TRUEUP', 'PREPAID_COMMIT_CANCELED', 'CREDIT_CANCELED',
                 'PREPAID_COMMIT_ROLLOVER', 'POSTPAID_COMMIT_ROLLOVER', 'CREDIT_ROLLOVER');
`,
  },
  {
    version: 6,
    name: "lean idempotency records",
    sql: `
-- An idempotency record names the transfer it created and keeps only what of
-- the first answer the transfer row may later lose (a pending transfer's
-- sequence and balances change when it is posted or voided); a replay
-- rebuilds the answer from the row. It used to hold a full JSON copy of the
-- answer, more than half of the bytes each transfer took. Existing records
-- keep their values, read exactly out of that copy.
CREATE TABLE idempotency_v6 (
  tenant_id            TEXT NOT NULL,
  key                  TEXT NOT NULL,
  request_hash         TEXT NOT NULL,
  transfer_id          TEXT NOT NULL,
  sequence             INTEGER NOT NULL,
  debit_balance_after  INTEGER NOT NULL,
  credit_balance_after INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, key)
) STRICT, WITHOUT ROWID;
INSERT INTO idempotency_v6
  SELECT tenant_id, key, request_hash, transfer_id,
         CAST(json_extract(result, '$.sequence') AS INTEGER),
         CAST(json_extract(result, '$.debitBalanceAfter') AS INTEGER),
         CAST(json_extract(result, '$.creditBalanceAfter') AS INTEGER)
  FROM idempotency;
DROP TABLE idempotency;
ALTER TABLE idempotency_v6 RENAME TO idempotency;
`,
  },
  {
    version: 7,
    name: "posted ordinals",
    sql: `
-- Every POSTED entry carries its place among the POSTED entries of its
-- (tenant, account, asset): 1, 2, 3 ... in sequence order, NULL on PENDING and
-- VOIDED entries. The store sets it when it appends the entry, so that "skip
-- the newest N posted entries" (3PLGuys paging) is one index seek instead of
-- a walk over N entries. Unique, so an ordinal handed out twice can never
-- commit (NULLs are distinct).
ALTER TABLE entries ADD COLUMN posted_ordinal INTEGER CHECK (posted_ordinal IS NULL OR posted_ordinal > 0);
-- The journal refuses UPDATE; this backfill is the one edit ever made to
-- existing entries, and it only fills the new column. The trigger is dropped
-- and recreated inside this migration's transaction: no other connection can
-- write in between (BEGIN IMMEDIATE), and a failure rolls both back.
DROP TRIGGER entries_no_update;
UPDATE entries SET posted_ordinal = o.n
FROM (SELECT sequence, row_number() OVER (PARTITION BY tenant_id, account_id, asset ORDER BY sequence) AS n
      FROM entries WHERE status = 'POSTED') AS o
WHERE entries.sequence = o.sequence;
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE UNIQUE INDEX entries_by_posted_ordinal ON entries (tenant_id, account_id, asset, posted_ordinal);
`,
  },
  {
    version: 8,
    name: "effective times",
    sql: `
-- When a write took effect, beside when it was committed (created_at) and in
-- which order (sequence). A write without an effective time is effective when
-- it commits, so existing rows take their commit time. An account's
-- effective_at is the effective time of its last account-level event (opening,
-- freeze, unfreeze): no later write may be effective before it. A balance
-- row's updated_at is, from now on, the effective time of its last change.
ALTER TABLE entries ADD COLUMN effective_at INTEGER NOT NULL DEFAULT 0;
-- The journal is append-only; the trigger is lifted for this one backfill.
DROP TRIGGER entries_no_update;
UPDATE entries SET effective_at = created_at;
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
-- Balance as of a time: one seek to the last entry effective at or before it.
CREATE INDEX entries_by_account_asset_effective ON entries (tenant_id, account_id, asset, effective_at, sequence);
ALTER TABLE transfers ADD COLUMN effective_at INTEGER NOT NULL DEFAULT 0;
UPDATE transfers SET effective_at = created_at;
ALTER TABLE accounts ADD COLUMN effective_at INTEGER NOT NULL DEFAULT 0;
UPDATE accounts SET effective_at = max(created_at, coalesce(locked_at, 0));
`,
  },
  CREDIT_CREATION_ORDER_MIGRATION,
];
