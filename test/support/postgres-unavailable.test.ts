import { describe, it } from "vitest";

// Runs only when PostgreSQL is unreachable outside CI (see vitest.config.ts):
// every store-level test file shows up as skipped, with the reason.
const reason = process.env.TALLY_TEST_PG_SKIP_REASON ?? "PostgreSQL is not reachable";
describe(`postgres: skipped (${reason})`, () => {
  for (const file of (process.env.TALLY_TEST_PG_SKIPPED ?? "").split(",").filter(Boolean)) {
    it.skip(`${file} on PostgreSQL`, () => {});
  }
});
