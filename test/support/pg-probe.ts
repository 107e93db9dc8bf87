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

/**
 * Runs one query on a Tally database given by its URL (with the `schema`
 * parameter the store understands), with int8 read as bigint.
 */
export async function queryPg<T>(url: string, sql: string): Promise<T[]> {
  const u = new URL(url);
  const schema = u.searchParams.get("schema");
  u.searchParams.delete("schema");
  const client = new pg.Client({
    connectionString: u.toString(),
    connectionTimeoutMillis: 5000,
    types: { getTypeParser: ((oid: number, format?: string) => (oid === 20 ? (v: string) => BigInt(v) : pg.types.getTypeParser(oid, format as "text"))) as pg.CustomTypesConfig["getTypeParser"] },
  });
  client.on("error", () => {});
  await client.connect();
  try {
    if (schema) await client.query(`SET search_path TO "${schema}"`);
    return (await client.query(sql)).rows as T[];
  } finally {
    await client.end().catch(() => {});
  }
}
