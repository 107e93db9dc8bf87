import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { startTally } from "./app.js";
import { SERVE_FLAGS, databaseUrlOf, parseServeConfig, redactUrl, toTallyOptions } from "./config.js";
import { Access } from "./domain/access.js";
import { LedgerError } from "./domain/errors.js";
import { Credentials } from "./domain/credentials.js";
import { Credits } from "./domain/credits/credits.js";
import { PageTokens } from "./domain/page-token.js";
import { Ledger } from "./domain/ledger.js";
import { StreamLimiter } from "./domain/stream-limiter.js";
import { DIALECTS } from "./dialects/index.js";
import { SqliteStore } from "./store/sqlite/sqlite-store.js";
import { PostgresStore } from "./store/postgres/postgres-store.js";
import type { Store } from "./domain/store.js";
import { jsonLogger } from "./transport/log.js";
import { exportCommand, importCommand } from "./cli-journal.js";

const USAGE = `usage: tally <command> [flags]

commands:
  serve                     start the server (see flags below)
  verify [--tenant ID]      recompute every balance from the journal; exit 1 on any difference
  tenant create [--id ID] [--name NAME]
                            create a tenant and print its admin key (shown once)
  key create --tenant ID (--admin | --account ACCOUNT_ID) [--label TEXT]
                            issue an API key and print it (shown once)
  export [--tenant ID]... [--out FILE]
                            write the journal (tenants, assets, accounts, transfers, holds,
                            freezes, effective times) as NDJSON to stdout or FILE
  import [--tenant ID] [--batch N] [--no-verify] FILE|-
                            read an export through the ledger's rules (idempotent), then verify
  credential create --tenant ID --kind KIND [--account ID] [--org ID] [--scope S]...
                    [--public-key BASE64] [--id ID] [--label TEXT]
                            issue a REST dialect credential and print it (secret shown once)

every command takes --db PATH (env TALLY_DB, default tally.db) for SQLite,
or --database postgres://… (env DATABASE_URL) for PostgreSQL

serve flags:
${Object.entries(SERVE_FLAGS)
  .map(([k, v]) => `  --${k.padEnd(28)} ${v.help} (env ${v.env}, default "${v.default}")`)
  .join("\n")}
`;

/** Runs the CLI; resolves to the process exit code. */
export async function runCli(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "serve":
        return await serve(rest);
      case "verify":
        return await verify(rest);
      case "tenant":
        return await tenant(rest);
      case "key":
        return await key(rest);
      case "credential":
        return await credential(rest);
      case "export":
        return await exportCommand(rest, openStore);
      case "import":
        return await importCommand(rest, openStore);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        process.stderr.write(`tally: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    process.stderr.write(`tally: ${e instanceof Error ? e.message : String(e)}\n`);
    return e instanceof LedgerError ? 1 : 2;
  }
}

async function serve(args: string[]): Promise<number> {
  const config = parseServeConfig(args);
  const tally = await startTally({ ...toTallyOptions(config), logger: jsonLogger(process.stderr, config.logLevel) });
  if (tally.bootstrapKey) {
    process.stdout.write(
      `Created tenant "default" in a new database. Its admin API key is shown only this once:\n\n` +
        `  ${tally.bootstrapKey}\n\n`,
    );
  }
  process.stdout.write(`Tally listening on ${tally.url} (database: ${config.databaseUrl === undefined ? resolve(config.databasePath) : redactUrl(config.databaseUrl)})\n`);
  return new Promise<number>((done) => {
    const stop = (signal: string) => {
      process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: "info", msg: "shutting down", signal }) + "\n");
      tally.close().then(
        () => done(0),
        (e: unknown) => {
          process.stderr.write(`tally: shutdown failed: ${String(e)}\n`);
          done(1);
        },
      );
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}

async function openStore(values: { db?: string | undefined; database?: string | undefined }): Promise<Store> {
  const url = databaseUrlOf(values.database ?? process.env.DATABASE_URL ?? "");
  if (url !== undefined) return PostgresStore.open({ url });
  return SqliteStore.open({ path: values.db ?? process.env.TALLY_DB ?? "tally.db" });
}

async function verify(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { db: { type: "string" }, database: { type: "string" }, tenant: { type: "string" } } });
  const store = await openStore(values);
  try {
    const ledger = new Ledger({ store });
    const tenants = values.tenant ? [values.tenant] : await store.listTenantIds();
    let ok = true;
    for (const t of tenants) {
      if (!(await store.getTenant(t))) throw new Error(`tenant "${t}" not found`);
      const report = await ledger.verify(t);
      ok &&= report.ok;
      process.stdout.write(JSON.stringify({ tenant: t, ...report }, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)) + "\n");
    }
    return ok ? 0 : 1;
  } finally {
    await store.close();
  }
}

async function tenant(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "create") throw new Error(`unknown tenant command "${sub ?? ""}"`);
  const { values } = parseArgs({ args: rest, options: { db: { type: "string" }, database: { type: "string" }, id: { type: "string" }, name: { type: "string" } } });
  const store = await openStore(values);
  try {
    const access = new Access(store, () => BigInt(Date.now()) * 1000n);
    const { tenant: t, admin } = await access.createTenant({ id: values.id ?? "", name: values.name ?? "" });
    process.stdout.write(JSON.stringify({ tenant: t.id, name: t.name, admin_key: admin.secret }) + "\n");
    return 0;
  } finally {
    await store.close();
  }
}

async function key(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "create") throw new Error(`unknown key command "${sub ?? ""}"`);
  const { values } = parseArgs({
    args: rest,
    options: {
      db: { type: "string" }, database: { type: "string" },
      tenant: { type: "string" },
      admin: { type: "boolean" },
      account: { type: "string" },
      label: { type: "string" },
    },
  });
  if (!values.tenant) throw new Error("--tenant is required");
  if (!values.admin === !values.account) throw new Error("give exactly one of --admin or --account ACCOUNT_ID");
  const store = await openStore(values);
  try {
    if (!(await store.getTenant(values.tenant))) throw new Error(`tenant "${values.tenant}" not found`);
    const access = new Access(store, () => BigInt(Date.now()) * 1000n);
    const issued = await access.createKey(values.tenant, {
      scope: values.admin ? "tenant_admin" : "account_read",
      accountId: values.account ?? "",
      label: values.label ?? "",
    });
    process.stdout.write(JSON.stringify({ id: issued.key.id, key: issued.secret }) + "\n");
    return 0;
  } finally {
    await store.close();
  }
}

async function credential(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "create") throw new Error(`unknown credential command "${sub ?? ""}"`);
  const { values } = parseArgs({
    args: rest,
    options: {
      db: { type: "string" }, database: { type: "string" },
      tenant: { type: "string" },
      kind: { type: "string" },
      account: { type: "string" },
      org: { type: "string" },
      scope: { type: "string", multiple: true },
      "public-key": { type: "string" },
      id: { type: "string" },
      label: { type: "string" },
    },
  });
  if (!values.tenant || !values.kind) throw new Error("--tenant and --kind are required");
  const store = await openStore(values);
  try {
    if (!(await store.getTenant(values.tenant))) throw new Error(`tenant "${values.tenant}" not found`);
    const clock = () => BigInt(Date.now()) * 1000n;
    const ledger = new Ledger({ store, clock });
    const credentials = new Credentials(store, clock);
    const shutdown = new AbortController();
    const kinds = new Map(
      [...DIALECTS.values()].flatMap((make) => make({
          ledger,
          credits: new Credits(store, clock),
          credentials,
          // Only the credential kinds are used here: nothing is paged or signed.
          pageTokens: new PageTokens(new Uint8Array(32)),
          streams: new StreamLimiter(1),
          shutdown: shutdown.signal,
        }).credentialKinds ?? []).map((k) => [k.kind, k]),
    );
    const kind = kinds.get(values.kind);
    if (!kind) throw new Error(`unknown credential kind "${values.kind}"; known: ${[...kinds.keys()].sort().join(", ")}`);
    const issued = await kind.issue(values.tenant, {
      accountId: values.account ?? "",
      orgId: values.org ?? "",
      scopes: values.scope ?? [],
      label: values.label ?? "",
      publicKey: values["public-key"] ? Buffer.from(values["public-key"], "base64") : new Uint8Array(0),
      id: values.id ?? "",
      // The operator, on the database itself: the one issuer that may choose an id.
      issuer: "operator",
    });
    process.stdout.write(JSON.stringify({ kind: issued.record.kind, id: issued.record.id, secret: issued.secret ?? null }) + "\n");
    return 0;
  } finally {
    await store.close();
  }
}
