/**
 * Versioned PostgreSQL schema migrations, the counterpart of the SQLite ones
 * (same tables, columns and meaning). Applied in order at open, all in one
 * transaction under an advisory lock. Never edit a migration that has
 * shipped: append a new version.
 *
 * Every int64 amount and time is `bigint` (read back as a JS bigint), BLOBs
 * are `bytea`, and every text column sorts and compares with the "C"
 * collation: byte order, like SQLite's BINARY, so ids page and sort the same
 * on both stores whatever the database's locale.
 */
import { CREDIT_CREATION_ORDER_MIGRATION } from "../credit-rows.js";
export const PG_MIGRATIONS: readonly { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: "ledger core",
    sql: `
CREATE TABLE meta (
  key   text COLLATE "C" PRIMARY KEY,
  value text COLLATE "C" NOT NULL
);

CREATE TABLE tenants (
  id         text COLLATE "C" PRIMARY KEY,
  name       text COLLATE "C" NOT NULL,
  created_at bigint NOT NULL
);

CREATE TABLE api_keys (
  id          text COLLATE "C" PRIMARY KEY,
  tenant_id   text COLLATE "C" NOT NULL REFERENCES tenants(id),
  scope       text COLLATE "C" NOT NULL CHECK (scope IN ('tenant_admin', 'account_read')),
  account_id  text COLLATE "C",
  operator    bigint NOT NULL CHECK (operator IN (0, 1)),
  label       text COLLATE "C" NOT NULL,
  secret_hash bytea NOT NULL,
  created_at  bigint NOT NULL,
  revoked_at  bigint
);

CREATE TABLE assets (
  tenant_id  text COLLATE "C" NOT NULL REFERENCES tenants(id),
  code       text COLLATE "C" NOT NULL,
  scale      bigint NOT NULL CHECK (scale BETWEEN 0 AND 18),
  created_at bigint NOT NULL,
  PRIMARY KEY (tenant_id, code)
);

-- Writers take row locks here (SELECT ... FOR UPDATE, in id order) to
-- serialise everything that touches an account's balances and journal.
CREATE TABLE accounts (
  tenant_id           text COLLATE "C" NOT NULL REFERENCES tenants(id),
  id                  text COLLATE "C" NOT NULL,
  overdraft_limit     bigint NOT NULL CHECK (overdraft_limit >= 0),
  overdraft_unlimited bigint NOT NULL CHECK (overdraft_unlimited IN (0, 1)),
  metadata            text COLLATE "C" NOT NULL,
  locked_at           bigint,
  created_at          bigint NOT NULL,
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE balances (
  tenant_id   text COLLATE "C" NOT NULL,
  account_id  text COLLATE "C" NOT NULL,
  asset       text COLLATE "C" NOT NULL,
  posted      bigint NOT NULL,
  pending_in  bigint NOT NULL CHECK (pending_in >= 0),
  pending_out bigint NOT NULL CHECK (pending_out >= 0),
  sequence    bigint NOT NULL,
  updated_at  bigint NOT NULL,
  PRIMARY KEY (tenant_id, account_id, asset)
);

CREATE TABLE transfers (
  tenant_id            text COLLATE "C" NOT NULL,
  id                   text COLLATE "C" NOT NULL,
  idempotency_key      text COLLATE "C" NOT NULL,
  debit_account_id     text COLLATE "C" NOT NULL,
  credit_account_id    text COLLATE "C" NOT NULL,
  asset                text COLLATE "C" NOT NULL,
  amount               bigint NOT NULL CHECK (amount > 0),
  posted_amount        bigint NOT NULL CHECK (posted_amount >= 0),
  kind                 text COLLATE "C" NOT NULL,
  note                 text COLLATE "C" NOT NULL,
  metadata             text COLLATE "C" NOT NULL,
  status               text COLLATE "C" NOT NULL CHECK (status IN ('PENDING', 'POSTED', 'VOIDED')),
  created_at           bigint NOT NULL,
  updated_at           bigint NOT NULL,
  sequence             bigint NOT NULL,
  debit_balance_after  bigint NOT NULL,
  credit_balance_after bigint NOT NULL,
  PRIMARY KEY (tenant_id, id)
);

-- The journal. The identity sequence must keep CACHE 1 (the default): with a
-- per-session cache, numbers would no longer grow in the order transactions
-- draw them, and watchers rely on "drawn later => larger" (see watchPoint).
-- Numbers of rolled-back writes are skipped, so the sequence may have gaps.
CREATE TABLE entries (
  sequence          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id         text COLLATE "C" NOT NULL,
  transfer_id       text COLLATE "C" NOT NULL,
  account_id        text COLLATE "C" NOT NULL,
  counterparty_id   text COLLATE "C" NOT NULL,
  asset             text COLLATE "C" NOT NULL,
  direction         text COLLATE "C" NOT NULL CHECK (direction IN ('debit', 'credit')),
  status            text COLLATE "C" NOT NULL CHECK (status IN ('PENDING', 'POSTED', 'VOIDED')),
  amount            bigint NOT NULL,
  pending_change    bigint NOT NULL,
  posted_after      bigint NOT NULL,
  pending_in_after  bigint NOT NULL,
  pending_out_after bigint NOT NULL,
  created_at        bigint NOT NULL
);

CREATE INDEX entries_by_account ON entries (tenant_id, account_id, sequence);
CREATE INDEX entries_by_account_asset ON entries (tenant_id, account_id, asset, sequence);

-- Append-only: the message comes from the trigger's argument, so one
-- function serves every append-only table.
CREATE FUNCTION tally_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'restrict_violation';
END
$fn$;

CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
  FOR EACH ROW EXECUTE FUNCTION tally_append_only('the journal is append-only');
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
  FOR EACH ROW EXECUTE FUNCTION tally_append_only('the journal is append-only');
-- TRUNCATE skips row triggers; SQLite has no TRUNCATE, so refuse it too.
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
  FOR EACH STATEMENT EXECUTE FUNCTION tally_append_only('the journal is append-only');

CREATE TABLE idempotency (
  tenant_id    text COLLATE "C" NOT NULL,
  key          text COLLATE "C" NOT NULL,
  request_hash text COLLATE "C" NOT NULL,
  transfer_id  text COLLATE "C" NOT NULL,
  result       text COLLATE "C" NOT NULL,
  created_at   bigint NOT NULL,
  PRIMARY KEY (tenant_id, key)
);
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
  kind        text COLLATE "C" NOT NULL,
  id          text COLLATE "C" NOT NULL,
  tenant_id   text COLLATE "C" NOT NULL REFERENCES tenants(id),
  account_id  text COLLATE "C",
  org_id      text COLLATE "C",
  secret_hash bytea,
  verify_key  bytea,
  scopes      text COLLATE "C" NOT NULL,
  label       text COLLATE "C" NOT NULL,
  created_at  bigint NOT NULL,
  revoked_at  bigint,
  PRIMARY KEY (kind, id)
);

-- Nonces of signed requests, kept until their timestamp is too old to be
-- accepted anyway, so that a captured request cannot be replayed.
CREATE TABLE request_nonces (
  scope      text COLLATE "C" NOT NULL,
  nonce      text COLLATE "C" NOT NULL,
  expires_at bigint NOT NULL,
  PRIMARY KEY (scope, nonce)
);
CREATE INDEX request_nonces_expiry ON request_nonces (expires_at);
`,
  },
  {
    version: 3,
    name: "commits and credits",
    sql: `
-- Commits and credits (docs/credits.md). Only archived_at ever changes.
-- ordinal is the creation order within the tenant: the last draw-down
-- tie-break. Its unique index turns two concurrent inserts that picked the
-- same max+1 into a unique violation, which the store retries.
CREATE TABLE credit_balances (
  tenant_id               text COLLATE "C" NOT NULL REFERENCES tenants(id),
  id                      text COLLATE "C" NOT NULL,
  ordinal                 bigint NOT NULL,
  kind                    text COLLATE "C" NOT NULL CHECK (kind IN ('PREPAID', 'POSTPAID', 'CREDIT')),
  customer_id             text COLLATE "C" NOT NULL,
  contract_id             text COLLATE "C",
  name                    text COLLATE "C" NOT NULL,
  description             text COLLATE "C" NOT NULL,
  priority                bigint NOT NULL,
  product_id              text COLLATE "C" NOT NULL,
  product_name            text COLLATE "C" NOT NULL,
  asset                   text COLLATE "C" NOT NULL,
  applicable_product_ids  text COLLATE "C" NOT NULL,
  applicable_product_tags text COLLATE "C" NOT NULL,
  custom_fields           text COLLATE "C" NOT NULL,
  uniqueness_key          text COLLATE "C",
  archived_at             bigint,
  created_at              bigint NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX credit_balances_uniqueness ON credit_balances (tenant_id, uniqueness_key) WHERE uniqueness_key IS NOT NULL;
CREATE UNIQUE INDEX credit_balances_ordinal ON credit_balances (tenant_id, ordinal);
CREATE INDEX credit_balances_by_customer ON credit_balances (tenant_id, customer_id, id);

-- Segments of access schedules; immutable once written.
CREATE TABLE credit_segments (
  tenant_id     text COLLATE "C" NOT NULL,
  id            text COLLATE "C" NOT NULL,
  balance_id    text COLLATE "C" NOT NULL,
  position      bigint NOT NULL,
  amount        bigint NOT NULL CHECK (amount > 0),
  starting_at   bigint NOT NULL,
  ending_before bigint NOT NULL,
  CHECK (starting_at < ending_before),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX credit_segments_by_balance ON credit_segments (tenant_id, balance_id, position);

-- The typed ledger of segments, append-only like the transfer journal.
-- Expiration entries are derived on read and never stored here.
CREATE TABLE credit_entries (
  sequence   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id  text COLLATE "C" NOT NULL,
  balance_id text COLLATE "C" NOT NULL,
  segment_id text COLLATE "C" NOT NULL,
  type       text COLLATE "C" NOT NULL,
  amount     bigint NOT NULL,
  timestamp  bigint NOT NULL,
  invoice_id text COLLATE "C",
  reason     text COLLATE "C",
  usage_id   text COLLATE "C",
  created_at bigint NOT NULL
);
CREATE INDEX credit_entries_by_balance ON credit_entries (tenant_id, balance_id, sequence);
CREATE TRIGGER credit_entries_no_update BEFORE UPDATE ON credit_entries
  FOR EACH ROW EXECUTE FUNCTION tally_append_only('the credit ledger is append-only');
CREATE TRIGGER credit_entries_no_delete BEFORE DELETE ON credit_entries
  FOR EACH ROW EXECUTE FUNCTION tally_append_only('the credit ledger is append-only');
CREATE TRIGGER credit_entries_no_truncate BEFORE TRUNCATE ON credit_entries
  FOR EACH STATEMENT EXECUTE FUNCTION tally_append_only('the credit ledger is append-only');

-- Usage ids seen, with their outcome, so a retried usage is replayed, never drawn twice.
CREATE TABLE credit_usages (
  tenant_id    text COLLATE "C" NOT NULL,
  usage_id     text COLLATE "C" NOT NULL,
  request_hash text COLLATE "C" NOT NULL,
  result       text COLLATE "C" NOT NULL,
  created_at   bigint NOT NULL,
  PRIMARY KEY (tenant_id, usage_id)
);
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
  tenant_id    text COLLATE "C" NOT NULL,
  key          text COLLATE "C" NOT NULL,
  request_hash text COLLATE "C" NOT NULL,
  result       text COLLATE "C" NOT NULL,
  created_at   bigint NOT NULL,
  PRIMARY KEY (tenant_id, key)
);
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
-- answer. Existing records keep their values, read exactly out of that copy.
ALTER TABLE idempotency
  ADD COLUMN sequence bigint,
  ADD COLUMN debit_balance_after bigint,
  ADD COLUMN credit_balance_after bigint;
UPDATE idempotency SET
  sequence = (result::jsonb ->> 'sequence')::bigint,
  debit_balance_after = (result::jsonb ->> 'debitBalanceAfter')::bigint,
  credit_balance_after = (result::jsonb ->> 'creditBalanceAfter')::bigint;
ALTER TABLE idempotency
  ALTER COLUMN sequence SET NOT NULL,
  ALTER COLUMN debit_balance_after SET NOT NULL,
  ALTER COLUMN credit_balance_after SET NOT NULL,
  DROP COLUMN result,
  DROP COLUMN created_at;
`,
  },
  {
    version: 7,
    name: "posted ordinals",
    sql: `
-- Every POSTED entry carries its place among the POSTED entries of its
-- (tenant, account, asset): 1, 2, 3 ... in sequence order, NULL on PENDING and
-- VOIDED entries. The store sets it when it appends the entry, under the
-- account's row lock, so that "skip the newest N posted entries" (3PLGuys
-- paging) is one index seek instead of a walk over N entries. Unique, so an
-- ordinal handed out twice can never commit (NULLs are distinct): a replica
-- that somehow raced would get 23505 and re-run its batch.
ALTER TABLE entries ADD COLUMN posted_ordinal bigint CHECK (posted_ordinal IS NULL OR posted_ordinal > 0);
-- The journal refuses UPDATE; this backfill is the one edit ever made to
-- existing entries, and it only fills the new column. The row trigger is
-- disabled for it inside this migration's transaction (ALTER TABLE holds the
-- table's ACCESS EXCLUSIVE lock until COMMIT, so no other session writes or
-- sees the table without it); DELETE and TRUNCATE stay refused throughout.
ALTER TABLE entries DISABLE TRIGGER entries_no_update;
UPDATE entries e SET posted_ordinal = o.n
FROM (SELECT sequence, row_number() OVER (PARTITION BY tenant_id, account_id, asset ORDER BY sequence) AS n
      FROM entries WHERE status = 'POSTED') o
WHERE e.sequence = o.sequence;
ALTER TABLE entries ENABLE TRIGGER entries_no_update;
CREATE UNIQUE INDEX entries_by_posted_ordinal ON entries (tenant_id, account_id, asset, posted_ordinal);
`,
  },
  {
    version: 8,
    name: "effective times",
    sql: `
-- When a write took effect, beside when it was committed (created_at) and in
-- which order (sequence); see the SQLite migration of the same number.
ALTER TABLE entries ADD COLUMN effective_at bigint NOT NULL DEFAULT 0;
-- The journal is append-only; the trigger is lifted for this one backfill.
ALTER TABLE entries DISABLE TRIGGER entries_no_update;
UPDATE entries SET effective_at = created_at;
ALTER TABLE entries ENABLE TRIGGER entries_no_update;
ALTER TABLE entries ALTER COLUMN effective_at DROP DEFAULT;
CREATE INDEX entries_by_account_asset_effective ON entries (tenant_id, account_id, asset, effective_at, sequence);
ALTER TABLE transfers ADD COLUMN effective_at bigint NOT NULL DEFAULT 0;
UPDATE transfers SET effective_at = created_at;
ALTER TABLE transfers ALTER COLUMN effective_at DROP DEFAULT;
ALTER TABLE accounts ADD COLUMN effective_at bigint NOT NULL DEFAULT 0;
UPDATE accounts SET effective_at = greatest(created_at, coalesce(locked_at, 0));
ALTER TABLE accounts ALTER COLUMN effective_at DROP DEFAULT;
`,
  },
  CREDIT_CREATION_ORDER_MIGRATION,
];
