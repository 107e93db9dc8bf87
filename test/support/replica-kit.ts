/**
 * Helpers for the PostgreSQL end-to-end tests (test/postgres-*.test.ts): real
 * `tally serve --database` child processes sharing one schema, a background
 * WatchBalance recorder that can resume after a dropped stream, and a direct
 * PostgreSQL connection to look at (and kill) the servers' backends.
 */
import { join } from "node:path";
import pg from "pg";
import { Code } from "@connectrpc/connect";
import { LedgerService } from "../../gen/tally/ledger/v1/ledger_pb.js";
import type { Balance, BalanceChange, Transaction } from "../../gen/tally/ledger/v1/ledger_pb.js";
import { allTransactions, refusalOf } from "./ledger-kit.js";
import type { LedgerClient } from "./ledger-kit.js";
import { clientFor, spawnServer, tempDir } from "./server.js";
import type { ChildServer, Protocol } from "./server.js";
import { pgRunUrl } from "./postgres.js";

/** A `tally serve --database <url>` child process. */
export interface PgReplica extends ChildServer {
  /** Stops the process (SIGTERM, then SIGKILL after 10 s) and removes its temp dir. */
  close(): Promise<void>;
}

/**
 * Starts a server process on a PostgreSQL URL. Its `--db` file is never opened
 * (--database wins), but it gets a private temp dir so that a regression that
 * fell back to SQLite would not write into the repository.
 */
export async function spawnPgReplica(databaseUrl: string, extraArgs: string[] = []): Promise<PgReplica> {
  const { dir, remove } = tempDir("tally-pg-");
  let server: ChildServer;
  try {
    server = await spawnServer(join(dir, "unused.db"), ["--database", databaseUrl, ...extraArgs]);
  } catch (e) {
    remove();
    throw e;
  }
  return {
    ...server,
    async close() {
      // A server that hangs on shutdown must not hang the test file.
      const timer = setTimeout(() => server.child.kill("SIGKILL"), 10_000);
      try {
        await server.stop("SIGTERM");
      } finally {
        clearTimeout(timer);
        remove();
      }
    },
  };
}

/**
 * What a server process left behind that explains a failure: its error-level
 * log lines, and when it died, its exit status and the tail of its output
 * (an uncaught exception's stack).
 */
export function diagnose(name: string, r: ChildServer | undefined): string | undefined {
  if (!r) return undefined;
  const out = r.output();
  const errors = out.split("\n").filter((l) => l.includes('"level":"error"'));
  const dead = r.child.exitCode !== null || r.child.signalCode !== null;
  if (!dead && errors.length === 0) return undefined;
  const parts = [`[${name}] ${errors.length} error lines${errors.length > 0 ? `, first: ${errors.slice(0, 5).join("\n")}` : ""}`];
  if (dead) parts.push(`[${name}] EXITED (code ${r.child.exitCode}, signal ${r.child.signalCode}); output tail:\n${out.slice(-4000)}`);
  return parts.join("\n");
}

/** "Code/reason" of anything a client threw, e.g. "FailedPrecondition/insufficient_funds". */
export function outcomeOf(e: unknown): string {
  const r = refusalOf(e);
  return `${Code[r.code]}/${r.reason ?? "-"}`;
}

/** An account's journal, oldest first. */
export async function journal(client: LedgerClient, accountId: string, asset = "USD"): Promise<Transaction[]> {
  return (await allTransactions(client, accountId, { asset })).reverse();
}

/**
 * A WatchBalance subscriber running in the background that records every
 * change it is shown. With `resume`, a stream that fails with UNAVAILABLE is
 * reopened with after_sequence = the last sequence seen, as a well-behaved
 * client does; every other failure stops the recorder and is rethrown by
 * `until`/`stop`.
 */
export class BalanceRecorder {
  readonly changes: BalanceChange[] = [];
  /** The snapshot balance of each (re)opened stream, in order. */
  readonly snapshots: (Balance | undefined)[] = [];
  /** The sequence each snapshot was taken at. */
  readonly snapshotSequences: bigint[] = [];
  /** How each reopened stream had ended ("Unavailable/store_unavailable", ...). */
  readonly resumes: string[] = [];
  private readonly abort = new AbortController();
  private failure: unknown;
  private readonly done: Promise<void>;
  private readonly client: LedgerClient;

  private constructor(
    url: string,
    protocol: Protocol,
    key: string,
    private readonly accountId: string,
    private readonly resume: boolean,
    private readonly asset: string,
    private readonly onFirst: () => void,
  ) {
    this.client = clientFor(LedgerService, url, protocol, key);
    this.done = this.run();
  }

  /** Opens the stream and resolves once its snapshot arrived (so later commits are not missed). */
  static async start(opts: { url: string; protocol: Protocol; key: string; accountId: string; resume?: boolean; asset?: string }): Promise<BalanceRecorder> {
    let first!: () => void;
    const ready = new Promise<void>((r) => (first = r));
    const rec = new BalanceRecorder(opts.url, opts.protocol, opts.key, opts.accountId, opts.resume ?? false, opts.asset ?? "USD", first);
    await Promise.race([
      ready,
      rec.done.then(() => {
        throw rec.failure ?? new Error("the watch stream ended before its snapshot");
      }),
    ]);
    return rec;
  }

  /** The last balance this subscriber was shown (the snapshot's when no change came yet). */
  get lastBalance(): Balance | undefined {
    return this.changes.at(-1)?.balance ?? this.snapshots.at(-1);
  }

  private async run(): Promise<void> {
    let after: bigint | undefined;
    for (;;) {
      try {
        const req = { accountId: this.accountId, asset: this.asset, ...(after === undefined ? {} : { afterSequence: after }) };
        for await (const ev of this.client.watchBalance(req, { signal: this.abort.signal })) {
          if (ev.event.case === "snapshot") {
            this.snapshots.push(ev.event.value.balances[0]);
            this.snapshotSequences.push(ev.event.value.sequence);
            this.onFirst();
          } else if (ev.event.case === "change") {
            this.changes.push(ev.event.value);
          }
        }
        if (!this.abort.signal.aborted) this.failure = new Error("the watch stream ended without an error");
        return;
      } catch (e) {
        if (this.abort.signal.aborted) return;
        const outcome = outcomeOf(e);
        if (!this.resume || !outcome.startsWith("Unavailable/") || this.resumes.length >= 50) {
          this.failure = e;
          return;
        }
        this.resumes.push(outcome);
        // Resume where we were: the snapshot before the first change, else the last change.
        after = this.changes.at(-1)?.sequence ?? this.snapshotSequence();
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private snapshotSequence(): bigint {
    return this.snapshotSequences.at(-1) ?? 0n;
  }

  /** Resolves once `pred` holds for the changes seen, or rejects after `ms` (or when the stream failed). */
  async until(pred: (changes: readonly BalanceChange[]) => boolean, ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred(this.changes)) {
      if (this.failure !== undefined) throw this.failure;
      if (Date.now() > deadline) throw new Error(`watcher of ${this.accountId}: condition not met within ${ms} ms (saw ${this.changes.length} changes)`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Closes the stream; rethrows the stream's failure, if any. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.done;
    if (this.failure !== undefined) throw this.failure;
  }
}

/**
 * A direct connection to the run's database, for looking at the servers'
 * backends. It names itself so that a kill by another application_name never
 * hits it.
 */
export async function pgProbe(): Promise<pg.Client> {
  const u = new URL(pgRunUrl());
  u.searchParams.set("application_name", "tally_test_probe");
  const client = new pg.Client({ connectionString: u.toString(), connectionTimeoutMillis: 5000 });
  client.on("error", () => {});
  await client.connect();
  return client;
}

/** One backend of pg_stat_activity. */
export interface Backend {
  readonly pid: number;
  readonly state: string | null;
  readonly query: string;
}

/** The backends connected with `applicationName` (other than the caller's). */
export async function backendsOf(probe: pg.Client, applicationName: string): Promise<Backend[]> {
  const r = await probe.query<Backend>(
    "SELECT pid, state, query FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid() ORDER BY pid",
    [applicationName],
  );
  return r.rows;
}

/** Terminates every backend connected with `applicationName`; returns how many went. */
export async function killBackends(probe: pg.Client, applicationName: string): Promise<number> {
  const r = await probe.query<{ killed: boolean }>(
    "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
    [applicationName],
  );
  return r.rows.filter((x) => x.killed).length;
}

/** The balance feed's listening backend: the one whose last statement was LISTEN on the schema's channel. */
export function listenerOf(backends: readonly Backend[], schema: string): Backend | undefined {
  return backends.find((b) => /^LISTEN\b/i.test(b.query) && b.query.includes(`tally_balances_${schema}`.slice(0, 63)));
}

/** Polls `probe` until `pred` holds, or fails after `ms`. */
export async function eventually<T>(what: string, read: () => Promise<T>, pred: (v: T) => boolean, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (pred(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms (last: ${JSON.stringify(v)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function sum(xs: readonly bigint[]): bigint {
  return xs.reduce((s, x) => s + x, 0n);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
