import { defineConfig } from "vitest/config";
import { STORE_TESTS } from "./test/support/store-tests.js";
import { pgUnavailableReason } from "./test/support/pg-probe.js";

/**
 * Two projects: "sqlite" runs every test; "postgres" runs the store-level tests
 * again on PostgreSQL (a fresh database per run). Without a reachable
 * PostgreSQL they are reported as skipped with the reason, except in CI
 * (CI=true), where that is a failure.
 */
export default defineConfig(async () => {
  const reason = await pgUnavailableReason();
  if (reason !== undefined && process.env.CI) throw new Error(`CI needs PostgreSQL: ${reason}`);
  if (reason !== undefined && process.env.VITEST_WORKER_ID === undefined) console.warn(`PostgreSQL tests are skipped: ${reason}`);
  const pgProject =
    reason === undefined
      ? {
          extends: true as const,
          test: {
            name: "postgres",
            // TALLY_TEST_DISRUPTIVE=1 (npm run test:pg-restart) runs only the tests that restart PostgreSQL itself.
            include: process.env.TALLY_TEST_DISRUPTIVE ? ["test/disruptive/*.test.ts"] : [...STORE_TESTS, "test/postgres-*.test.ts"],
            // Every write is a network round trip per statement plus an fsync, and
            // PostgreSQL shares the two cores with the tests: the load tests run longer.
            testTimeout: 180_000,
            env: { TALLY_TEST_STORE: "postgres" },
            globalSetup: ["test/support/pg-global-setup.ts"],
          },
        }
      : {
          extends: true as const,
          test: {
            name: "postgres",
            include: ["test/support/postgres-unavailable.test.ts"],
            env: { TALLY_TEST_PG_SKIP_REASON: reason, TALLY_TEST_PG_SKIPPED: [...STORE_TESTS, "test/postgres-*.test.ts"].join(",") },
          },
        };
  return {
    test: {
      testTimeout: 60_000,
      hookTimeout: 60_000,
      pool: "forks",
      // Two cores: more workers only add contention to the fsync-bound tests.
      maxWorkers: 2,
      projects: [
        { extends: true, test: { name: "sqlite", include: ["test/**/*.test.ts"], exclude: ["test/postgres-*.test.ts", "test/support/**", "test/disruptive/**", "test/abuse/**", "test/pack/**"] } },
        pgProject,
        // Attacks that load both cores for a while (npm run test:abuse): run alone, never beside other tests.
        ...(process.env.TALLY_TEST_ABUSE ? [{ extends: true as const, test: { name: "abuse", include: ["test/abuse/*.test.ts"], testTimeout: 180_000 } }] : []),
        // npm pack, then the tarball installed into an empty folder (npm run test:pack): minutes, for the native build.
        ...(process.env.TALLY_TEST_PACK ? [{ extends: true as const, test: { name: "pack", include: ["test/pack/*.test.ts"], testTimeout: 660_000 } }] : []),
      ],
    },
  };
});
