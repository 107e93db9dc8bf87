import { randomBytes } from "node:crypto";

/**
 * The store the store-level tests run on: the vitest project "postgres" sets
 * TALLY_TEST_STORE=postgres (see vitest.config.ts); everything else is SQLite.
 */
export function testStore(): "sqlite" | "postgres" {
  return process.env.TALLY_TEST_STORE === "postgres" ? "postgres" : "sqlite";
}

/** The database of this test run, created by test/support/pg-global-setup.ts. */
export function pgRunUrl(): string {
  const url = process.env.TALLY_TEST_PG_URL;
  if (!url) throw new Error("TALLY_TEST_PG_URL is not set: the postgres project's global setup did not run");
  return url;
}

/** A URL of the run's database with a schema nobody else uses: one server's private store. */
export function freshPgUrl(prefix = "t"): string {
  const u = new URL(pgRunUrl());
  u.searchParams.set("schema", `${prefix}_${randomBytes(6).toString("hex")}`);
  return u.toString();
}
