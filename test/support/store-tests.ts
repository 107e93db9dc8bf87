/**
 * The tests that exercise the store (ledger rules, idempotency, paging,
 * streams, commits and credits, the dialects over them). vitest.config.ts runs
 * them on SQLite and again on PostgreSQL; the rest (transport, TLS, limits,
 * SQLite specifics) run once.
 */
export const STORE_TESTS: readonly string[] = [
  "test/smoke.test.ts",
  "test/rpc-coverage.test.ts",
  "test/ledger-rules.test.ts",
  "test/idempotency.test.ts",
  "test/concurrency.test.ts",
  "test/model-based.test.ts",
  "test/paging.test.ts",
  "test/page-tokens.test.ts",
  "test/tenancy.test.ts",
  "test/watch-balance.test.ts",
  "test/credits-core.test.ts",
  "test/credits-property.test.ts",
  "test/credits-closing.test.ts",
  "test/credits-time.test.ts",
  "test/credits-rollover.test.ts",
  "test/credits-effective-time.test.ts",
  "test/dialect-triport.test.ts",
  "test/dialect-3plguys.test.ts",
  "test/dialect-blacksheep.test.ts",
  "test/dialect-frontier.test.ts",
  "test/dialect-metronome.test.ts",
  "test/dialects-agree.test.ts",
  "test/crash-durability.test.ts",
  "test/batch-failure.test.ts",
  "test/effective-time.test.ts",
  "test/posted-ordinal.test.ts",
];
