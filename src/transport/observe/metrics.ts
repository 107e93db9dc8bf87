import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { Code } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { DescMethod } from "@bufbuild/protobuf";
import type { StoreObserver } from "../../store/store-observer.js";
import { Series, SeriesFamily } from "./series.js";

/** The protocols a call may come in by, as labels. */
export const PROTOCOLS = ["grpc", "grpc-web", "connect", "rest"] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** Call latency buckets, in seconds: 100 µs (a cached read) to 10 s. */
const CALL_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Commit latency buckets, in seconds (an fsync is 0.1-10 ms). */
const COMMIT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** Writes per transaction: 1 to the largest SQLite batch (512). */
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/** Connect codes by number, as their label ("ok" for success). */
const CODE_NAMES: readonly string[] = Array.from({ length: 17 }, (_, c) => (c === 0 ? "ok" : codeToString(c as Code)));
const SLOTS = PROTOCOLS.length * CODE_NAMES.length;

/** What the metrics read from the running server when scraped. */
export interface MetricSources {
  /** Open streams by tenant. */
  readonly openStreams?: () => ReadonlyMap<string, number>;
  /** The PostgreSQL pool now, when the store is PostgreSQL. */
  readonly pgPool?: () => { readonly total: number; readonly idle: number; readonly waiting: number };
  /** Re-runs of PostgreSQL writes so far, by SQLSTATE. */
  readonly pgReruns?: () => Readonly<Record<string, number>>;
}

/**
 * Every metric of a server, in one prom-client registry, for `/metrics`:
 *
 * - `tally_rpc_calls_total` and `tally_rpc_duration_seconds` by procedure,
 *   protocol and code (label values from the server's own procedures, the
 *   four protocols and the 17 codes only: a client cannot add series);
 * - `tally_rest_requests_total` and `tally_rest_duration_seconds` by dialect,
 *   route template (`GET /v1/accounts/{account_id}`, never the raw path) and
 *   HTTP status;
 * - group commit: `tally_store_transactions_total` by store and outcome,
 *   `tally_store_batch_writes` (writes per transaction) and
 *   `tally_store_commit_duration_seconds`;
 * - `tally_open_streams` by tenant, `tally_idempotent_replays_total` by
 *   operation, PostgreSQL `tally_pg_pool_connections` (total, idle),
 *   `tally_pg_pool_waiting` and `tally_pg_write_reruns_total` by SQLSTATE;
 * - `tally_build_info` and Node's default process metrics (`process_…`, `nodejs_…`).
 *
 * Calls record into {@link Series} objects cached per method, protocol and
 * code: no label lookup on the hot path.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #calls: SeriesFamily;
  readonly #rest: SeriesFamily;
  /** Per method: a slot per protocol and code, filled on first use. */
  readonly #byMethod = new Map<DescMethod | string, (Series | undefined)[]>();
  readonly #replays: Counter<"operation">;

  constructor(version: string, sources: MetricSources = {}) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    new Gauge({ name: "tally_build_info", help: "Tally's version (always 1)", labelNames: ["version"], registers }).set({ version }, 1);
    this.#calls = new SeriesFamily(
      {
        name: "tally_rpc_duration_seconds",
        help: "Duration of RPC calls (every protocol, REST-transcoded ones as rest), by procedure, protocol and code",
        labelNames: ["procedure", "protocol", "code"],
        buckets: CALL_BUCKETS,
        counter: { name: "tally_rpc_calls_total", help: "RPC calls by procedure, protocol and code" },
      },
      this.registry,
    );
    this.#rest = new SeriesFamily(
      {
        name: "tally_rest_duration_seconds",
        help: "Duration of REST requests, by dialect, route template and HTTP status",
        labelNames: ["dialect", "route", "status"],
        buckets: CALL_BUCKETS,
        counter: { name: "tally_rest_requests_total", help: "REST requests by dialect, route template and HTTP status" },
      },
      this.registry,
    );
    this.#replays = new Counter({ name: "tally_idempotent_replays_total", help: "Writes answered from their idempotency record instead of applied, by operation", labelNames: ["operation"], registers });
    const open = sources.openStreams;
    if (open !== undefined) {
      new Gauge({
        name: "tally_open_streams",
        help: "Open balance streams (WatchBalance and the dialects' event streams), by tenant",
        labelNames: ["tenant"],
        registers,
        collect() {
          this.reset();
          for (const [tenant, n] of open()) this.set({ tenant }, n);
        },
      });
    }
    const pool = sources.pgPool;
    if (pool !== undefined) {
      new Gauge({
        name: "tally_pg_pool_connections",
        help: "PostgreSQL connections of this process's pool, by state (total open, idle)",
        labelNames: ["state"],
        registers,
        collect() {
          const p = pool();
          this.set({ state: "total" }, p.total);
          this.set({ state: "idle" }, p.idle);
        },
      });
      new Gauge({
        name: "tally_pg_pool_waiting",
        help: "Queries and transactions waiting for a PostgreSQL connection",
        registers,
        collect() {
          this.set(pool().waiting);
        },
      });
    }
    const reruns = sources.pgReruns;
    if (reruns !== undefined) {
      new Counter({
        name: "tally_pg_write_reruns_total",
        help: "PostgreSQL writes re-run after losing a race, by the SQLSTATE that made them (40001, 40P01, 23505)",
        labelNames: ["sqlstate"],
        registers,
        collect() {
          this.reset();
          for (const [sqlstate, n] of Object.entries(reruns())) this.inc({ sqlstate }, n);
        },
      });
    }
  }

  /**
   * The series a call of `method` by `protocol` ending with `code` records
   * into: a map and an array read once the slot exists. `method` is the
   * method's descriptor (interceptors) or its procedure path (calls refused
   * before the interceptors ran, or not served by this server: those are
   * only ever paths of procedures it serves); both name the same series.
   */
  callSeries(method: DescMethod | string, protocol: Protocol, code: Code | 0): Series {
    let slots = this.#byMethod.get(method);
    if (slots === undefined) {
      slots = new Array<Series | undefined>(SLOTS);
      this.#byMethod.set(method, slots);
    }
    const i = PROTOCOLS.indexOf(protocol) * CODE_NAMES.length + code;
    let s = slots[i];
    if (s === undefined) {
      const procedure = typeof method === "string" ? method : `/${method.parent.typeName}/${method.name}`;
      s = slots[i] = this.#calls.series([procedure, protocol, CODE_NAMES[code] ?? "unknown"]);
    }
    return s;
  }

  /** The series of a REST request: `route` is a template (`GET /v1/balance`), never a raw path. */
  restSeries(dialect: string, route: string, status: number): Series {
    return this.#rest.series([dialect, route, String(status)]);
  }

  /** Counts a write answered from its idempotency record. */
  replay(operation: string): void {
    this.#replays.inc({ operation });
  }

  /** What a store reports its transactions to: sizes, latencies, outcomes. */
  storeObserver(store: "sqlite" | "postgres"): StoreObserver {
    const registers = [this.registry];
    const transactions = new Counter({ name: "tally_store_transactions_total", help: "Write transactions (group commits) by store and outcome", labelNames: ["store", "outcome"], registers });
    const writes = new Histogram({ name: "tally_store_batch_writes", help: "Writes per committed transaction (group commit batch size), by store", labelNames: ["store"], buckets: BATCH_BUCKETS, registers });
    const seconds = new Histogram({ name: "tally_store_commit_duration_seconds", help: "Duration of committed write transactions, BEGIN to COMMIT, by store", labelNames: ["store"], buckets: COMMIT_BUCKETS, registers });
    const committed = transactions.labels(store, "committed");
    const failed = transactions.labels(store, "failed");
    const batch = writes.labels(store);
    const latency = seconds.labels(store);
    return {
      transaction(n) {
        const start = performance.now();
        return (ok) => {
          if (!ok) return failed.inc();
          committed.inc();
          batch.observe(n);
          latency.observe((performance.now() - start) / 1000);
        };
      },
    };
  }
}

/** A code's label. */
export function codeName(code: Code | 0): string {
  return CODE_NAMES[code] ?? "unknown";
}
