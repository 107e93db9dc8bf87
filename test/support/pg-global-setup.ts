import pg from "pg";
import { PG_ADMIN_URL } from "./pg-probe.js";

/**
 * Creates one fresh database for this test run (each test server then takes
 * its own schema in it) and drops it at the end. Runs in vitest's main process
 * before the workers start, so they inherit TALLY_TEST_PG_URL.
 */
export async function setup(): Promise<() => Promise<void>> {
  const name = `tally_test_${Date.now()}_${process.pid}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 5000 });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  process.env.TALLY_TEST_PG_URL = url.toString();
  return async () => {
    const c = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 5000 });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await c.end();
  };
}
