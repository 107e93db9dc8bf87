/**
 * What PostgreSQL is doing while the bench loads Tally: its CPU time (from
 * /proc: it runs on this machine, competing for the same cores) and where its
 * connections spend their time (sampled from pg_stat_activity).
 */
import pg from "pg";
import { cpuSeconds } from "./children.js";

/** Opens a client on `url` that ignores asynchronous errors (the next query reports them). */
export async function connectPg(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  c.on("error", () => {});
  await c.connect();
  return c;
}

/** The settings that decide what a commit costs, for the report. */
export async function pgSettingsLine(c: pg.Client): Promise<{ line: string; dataDirectory: string }> {
  const names = ["server_version", "fsync", "synchronous_commit", "wal_sync_method", "commit_delay", "shared_buffers", "max_connections"];
  const r = await c.query<{ name: string; setting: string; unit: string | null }>(
    "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[])",
    [names],
  );
  const by = new Map(r.rows.map((x) => [x.name, x]));
  const show = (n: string) => {
    const x = by.get(n);
    if (!x) return `${n}=?`;
    // shared_buffers comes in 8 kB pages.
    if (n === "shared_buffers" && x.unit === "8kB") return `${n}=${(Number(x.setting) * 8) / 1024} MB`;
    return `${n}=${x.setting}`;
  };
  let dataDirectory = "";
  try {
    dataDirectory = (await c.query<{ data_directory: string }>("SHOW data_directory")).rows[0]?.data_directory ?? "";
  } catch {
    // Only superusers (and pg_read_all_settings) may see it.
  }
  return { line: `PostgreSQL ${names.map(show).join(", ")}`, dataDirectory };
}

/**
 * The PostgreSQL processes that work for `database`: its client backends and
 * the server's background processes (WAL writer, checkpointer, ...). Backends
 * of other databases are left out, so a neighbour's test suite is not counted.
 */
export async function pgPids(c: pg.Client, database: string): Promise<number[]> {
  const r = await c.query<{ pid: number }>(
    "SELECT pid FROM pg_stat_activity WHERE datname = $1 OR backend_type <> 'client backend'",
    [database],
  );
  return r.rows.map((x) => x.pid);
}

/** CPU seconds the given processes used so far (processes that are gone count 0). */
export function cpuOf(pids: readonly number[]): number {
  let sum = 0;
  for (const pid of pids) {
    const s = cpuSeconds(pid);
    if (Number.isFinite(s)) sum += s;
  }
  return sum;
}

/**
 * The buckets a sampled connection falls into. "in transaction" means the
 * backend waits for its client (Tally's Node process) to send the next
 * statement of an open transaction: network, event-loop queueing and Node
 * CPU. Lock waits are row locks (the hot payer row); IO and LWLock waits are
 * mostly the WAL flush at commit.
 */
export const WAIT_BUCKETS = ["on CPU", "Lock", "IO", "LWLock", "other wait", "in transaction", "idle"] as const;
export type WaitBucket = (typeof WAIT_BUCKETS)[number];

/** Shares (0..1) of connection samples per bucket, and the most frequent raw wait events. */
export interface WaitProfile {
  readonly samples: number;
  readonly buckets: Readonly<Record<WaitBucket, number>>;
  /** "state/wait_event_type:wait_event" → share, the top ones. */
  readonly top: Readonly<Record<string, number>>;
}

/**
 * Samples pg_stat_activity for the client backends of `database` every
 * `intervalMs` until stopped: the store's pool connections. The balance
 * feed's connections (LISTEN, and the pg_notify after each commit, outside
 * the write transaction) are left out.
 */
export class WaitSampler {
  private readonly counts = new Map<string, number>();
  private readonly buckets = new Map<WaitBucket, number>();
  private samples = 0;
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly client: pg.Client,
    private readonly database: string,
    private readonly intervalMs = 50,
  ) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const t0 = performance.now();
      const r = await this.client.query<{ state: string | null; wait_event_type: string | null; wait_event: string | null }>(
        `SELECT state, wait_event_type, wait_event FROM pg_stat_activity
         WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()
           AND query NOT ILIKE 'LISTEN%' AND query NOT ILIKE '%pg_notify%'`,
        [this.database],
      );
      for (const row of r.rows) {
        const wait = row.wait_event_type ? `${row.wait_event_type}:${row.wait_event ?? ""}` : "";
        const key = `${row.state ?? "?"}${wait ? "/" + wait : ""}`;
        this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
        const b = bucketOf(row.state, row.wait_event_type);
        this.buckets.set(b, (this.buckets.get(b) ?? 0) + 1);
        this.samples++;
      }
      const rest = this.intervalMs - (performance.now() - t0);
      if (rest > 0) await new Promise((res) => setTimeout(res, rest));
    }
  }

  /** Stops sampling and returns the profile. */
  async stop(): Promise<WaitProfile> {
    this.stopped = true;
    await this.loop;
    const n = Math.max(1, this.samples);
    const buckets = Object.fromEntries(WAIT_BUCKETS.map((b) => [b, (this.buckets.get(b) ?? 0) / n])) as Record<WaitBucket, number>;
    const top = Object.fromEntries(
      [...this.counts.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 6)
        .map(([k, v]) => [k, v / n]),
    );
    return { samples: this.samples, buckets, top };
  }
}

function bucketOf(state: string | null, waitType: string | null): WaitBucket {
  if (state === "idle") return "idle";
  if (state === "idle in transaction" || state === "idle in transaction (aborted)") return "in transaction";
  if (waitType === null) return "on CPU";
  if (waitType === "Lock" || waitType === "IO" || waitType === "LWLock") return waitType;
  // An active backend waiting on its client (ClientRead) is reading the next message of a statement.
  if (waitType === "Client") return "in transaction";
  return "other wait";
}
