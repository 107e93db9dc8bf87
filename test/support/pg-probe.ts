import pg from "pg";

/** Where tests find PostgreSQL: TALLY_TEST_PG_ADMIN_URL, else the local server with trust auth. */
export const PG_ADMIN_URL = process.env.TALLY_TEST_PG_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** undefined when PostgreSQL answers, else why not. */
export async function pgUnavailableReason(url = PG_ADMIN_URL): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("SELECT 1");
    return undefined;
  } catch (e) {
    return `PostgreSQL is not reachable at ${url.replace(/\/\/[^@]*@/, "//")}: ${e instanceof Error ? e.message : String(e)}`;
  } finally {
    await client.end().catch(() => {});
  }
}
