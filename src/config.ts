import { parseArgs } from "node:util";
import type { SecureVersion } from "node:tls";
import type { TallyOptions } from "./app.js";
import { TLS_VERSIONS } from "./transport/tls-defaults.js";
import { parseCorsOrigins } from "./transport/cors/origins.js";
import { LOG_LEVELS } from "./transport/log.js";
import type { LogLevel } from "./transport/log.js";

/** Server settings from flags, then environment variables, then defaults. */
export interface ServeConfig {
  readonly host: string;
  readonly port: number;
  readonly databasePath: string;
  /** postgres:// URL; when set, PostgreSQL is the store and databasePath is unused. */
  readonly databaseUrl: string | undefined;
  readonly poolSize: number;
  readonly statementTimeoutMs: number;
  readonly tlsCertFile: string | undefined;
  readonly tlsKeyFile: string | undefined;
  readonly maxMessageBytes: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly pingIntervalMs: number;
  /** undefined: from the open-file limit. */
  readonly maxConnections: number | undefined;
  readonly maxConnectionsPerAddress: number;
  readonly tlsMinVersion: SecureVersion;
  /** undefined: the built-in forward-secret AEAD list. */
  readonly tlsCiphers: string | undefined;
  readonly streamsPerTenant: number;
  /** Serve the dashboard at /ui/ (off with --no-ui). */
  readonly ui: boolean;
  readonly durability: "full" | "normal";
  readonly logLevel: LogLevel;
  /** Serve /metrics (off with --no-metrics). */
  readonly metrics: boolean;
  /** undefined: /metrics on the API port. */
  readonly metricsPort: number | undefined;
  /** Accept, generate and echo x-request-id (off with --no-request-ids). */
  readonly requestIds: boolean;
  /** undefined: every dialect. */
  readonly dialects: readonly string[] | undefined;
  /** Exact origins, or ["*"]; [] when CORS is off. */
  readonly corsOrigins: readonly string[];
  readonly drainDelayMs: number;
}

/** Flags of `tally serve`, with the environment variable each falls back to. */
export const SERVE_FLAGS = {
  host: { env: "TALLY_HOST", default: "127.0.0.1", help: "address to listen on" },
  port: { env: "TALLY_PORT", default: "8080", help: "port to listen on (0: any free port)" },
  db: { env: "TALLY_DB", default: "tally.db", help: "SQLite database file (the default store)" },
  database: {
    env: "DATABASE_URL",
    default: "",
    help: "postgres://user@host:port/db[?schema=NAME]: use PostgreSQL instead of SQLite (replicas share it)",
  },
  "pg-pool-size": { env: "TALLY_PG_POOL_SIZE", default: "10", help: "PostgreSQL connections per process" },
  "pg-statement-timeout-ms": { env: "TALLY_PG_STATEMENT_TIMEOUT_MS", default: "10000", help: "PostgreSQL statement_timeout" },
  "tls-cert": { env: "TALLY_TLS_CERT", default: "", help: "PEM certificate: serve TLS" },
  "tls-key": { env: "TALLY_TLS_KEY", default: "", help: "PEM private key for --tls-cert" },
  "max-message-bytes": { env: "TALLY_MAX_MESSAGE_BYTES", default: String(1024 * 1024), help: "largest request message" },
  "headers-timeout-ms": {
    env: "TALLY_HEADERS_TIMEOUT_MS",
    default: "10000",
    help: "time a connection has to set up (TLS handshake, HTTP/2 preface) and each request to send its headers",
  },
  "request-timeout-ms": { env: "TALLY_REQUEST_TIMEOUT_MS", default: "60000", help: "time a client has to send a whole request (then deadline_exceeded)" },
  "keep-alive-timeout-ms": { env: "TALLY_KEEP_ALIVE_TIMEOUT_MS", default: "5000", help: "idle HTTP/1.1 keep-alive connections close after this" },
  "idle-timeout-ms": { env: "TALLY_IDLE_TIMEOUT_MS", default: "30000", help: "HTTP/2 connections with no open stream close after this" },
  "ping-interval-ms": { env: "TALLY_PING_INTERVAL_MS", default: "30000", help: "HTTP/2 connections with open streams are pinged this often, and cut when a ping goes unanswered (0: off)" },
  "max-connections": { env: "TALLY_MAX_CONNECTIONS", default: "auto", help: "open connections in all (auto: the open-file limit less 64, at most 10000)" },
  "max-connections-per-address": {
    env: "TALLY_MAX_CONNECTIONS_PER_ADDRESS",
    default: "256",
    help: "open connections per client address, IPv6 by /64 (0: no limit, for use behind a proxy)",
  },
  "tls-min-version": { env: "TALLY_TLS_MIN_VERSION", default: "TLSv1.2", help: "oldest TLS version accepted: TLSv1.2 or TLSv1.3" },
  "tls-ciphers": { env: "TALLY_TLS_CIPHERS", default: "", help: "OpenSSL cipher list (default: forward-secret AEAD suites only)" },
  "streams-per-tenant": { env: "TALLY_STREAMS_PER_TENANT", default: "100", help: "open balance streams per tenant" },
  "no-ui": { env: "TALLY_NO_UI", default: "false", help: "do not serve the dashboard at /ui/ (the env var takes true or false)", boolean: true },
  durability: { env: "TALLY_DURABILITY", default: "full", help: "full (fsync every commit) or normal (may lose the last commits on power loss)" },
  "log-level": { env: "TALLY_LOG_LEVEL", default: "info", help: "debug, info, warn, error or silent" },
  "no-metrics": { env: "TALLY_NO_METRICS", default: "false", help: "do not serve Prometheus metrics at /metrics (the env var takes true or false)", boolean: true },
  "metrics-port": { env: "TALLY_METRICS_PORT", default: "", help: "serve /metrics on this port (on --host) instead of the API port (0: any free port)" },
  "no-request-ids": {
    env: "TALLY_NO_REQUEST_IDS",
    default: "false",
    help: "do not accept, generate or echo x-request-id (the env var takes true or false)",
    boolean: true,
  },
  dialects: { env: "TALLY_DIALECTS", default: "all", help: "REST dialects to serve: all, none, or a comma-separated list" },
  "drain-delay-ms": {
    env: "TALLY_DRAIN_DELAY_MS",
    default: "0",
    help: "on SIGTERM, report NOT_SERVING (gRPC health, /readyz) for this long while still serving, then drain: time for load balancers to stop sending traffic",
  },
  "cors-origins": {
    env: "TALLY_CORS_ORIGINS",
    default: "",
    help: "browser origins allowed to call from another origin: a comma-separated list of exact origins (https://app.example.com), or * for any origin without credentials (default: none, CORS off)",
  },
} as const;

/** Parses `tally serve` arguments. Throws a readable Error on bad input. */
export function parseServeConfig(args: string[], env: NodeJS.ProcessEnv = process.env): ServeConfig {
  const options = Object.fromEntries(Object.entries(SERVE_FLAGS).map(([k, v]) => [k, { type: "boolean" in v ? ("boolean" as const) : ("string" as const) }]));
  const { values } = parseArgs({ args, options, strict: true, allowPositionals: false });
  const get = (k: keyof typeof SERVE_FLAGS): string => {
    const v = (values as Record<string, string | boolean | undefined>)[k] ?? env[SERVE_FLAGS[k].env] ?? SERVE_FLAGS[k].default;
    // A boolean flag given on the command line reads as "true".
    return String(v);
  };
  const int = (k: keyof typeof SERVE_FLAGS, min: number, max: number): number => {
    const raw = get(k);
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < min || n > max) throw new Error(`--${k} must be an integer in ${min}..${max}, got "${raw}"`);
    return n;
  };
  const bool = (k: keyof typeof SERVE_FLAGS): boolean => {
    const raw = get(k);
    if (raw !== "true" && raw !== "false") throw new Error(`${SERVE_FLAGS[k].env} must be true or false, got "${raw}"`);
    return raw === "true";
  };
  const durability = get("durability");
  if (durability !== "full" && durability !== "normal") throw new Error(`--durability must be full or normal`);
  const logLevel = get("log-level");
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) throw new Error(`--log-level must be one of ${LOG_LEVELS.join(", ")}`);
  const cert = get("tls-cert");
  const key = get("tls-key");
  if ((cert === "") !== (key === "")) throw new Error("--tls-cert and --tls-key go together");
  const tlsMinVersion = get("tls-min-version");
  if (!(TLS_VERSIONS as readonly string[]).includes(tlsMinVersion)) throw new Error(`--tls-min-version must be one of ${TLS_VERSIONS.join(", ")}`);
  return {
    host: get("host"),
    port: int("port", 0, 65535),
    databasePath: get("db"),
    databaseUrl: databaseUrlOf(get("database")),
    poolSize: int("pg-pool-size", 1, 1000),
    statementTimeoutMs: int("pg-statement-timeout-ms", 100, 3_600_000),
    tlsCertFile: cert || undefined,
    tlsKeyFile: key || undefined,
    maxMessageBytes: int("max-message-bytes", 1024, 64 * 1024 * 1024),
    headersTimeoutMs: int("headers-timeout-ms", 100, 600_000),
    requestTimeoutMs: int("request-timeout-ms", 100, 3_600_000),
    keepAliveTimeoutMs: int("keep-alive-timeout-ms", 100, 3_600_000),
    idleTimeoutMs: int("idle-timeout-ms", 100, 3_600_000),
    pingIntervalMs: int("ping-interval-ms", 0, 3_600_000),
    maxConnections: get("max-connections") === "auto" ? undefined : int("max-connections", 1, 1_000_000),
    maxConnectionsPerAddress: int("max-connections-per-address", 0, 1_000_000),
    tlsMinVersion: tlsMinVersion as SecureVersion,
    tlsCiphers: get("tls-ciphers") || undefined,
    streamsPerTenant: int("streams-per-tenant", 1, 100_000),
    ui: !bool("no-ui"),
    durability,
    logLevel: logLevel as LogLevel,
    metrics: !bool("no-metrics"),
    metricsPort: get("metrics-port") === "" ? undefined : int("metrics-port", 0, 65535),
    requestIds: !bool("no-request-ids"),
    dialects: parseDialects(get("dialects")),
    corsOrigins: parseCorsList(get("cors-origins")),
    drainDelayMs: int("drain-delay-ms", 0, 600_000),
  };
}

/** The server options a config describes. */
export function toTallyOptions(c: ServeConfig): TallyOptions {
  return {
    host: c.host,
    port: c.port,
    databasePath: c.databasePath,
    ...(c.databaseUrl === undefined ? {} : { databaseUrl: c.databaseUrl, poolSize: c.poolSize, statementTimeoutMs: c.statementTimeoutMs }),
    tlsCertFile: c.tlsCertFile,
    tlsKeyFile: c.tlsKeyFile,
    maxMessageBytes: c.maxMessageBytes,
    headersTimeoutMs: c.headersTimeoutMs,
    requestTimeoutMs: c.requestTimeoutMs,
    keepAliveTimeoutMs: c.keepAliveTimeoutMs,
    idleTimeoutMs: c.idleTimeoutMs,
    pingIntervalMs: c.pingIntervalMs,
    ...(c.maxConnections === undefined ? {} : { maxConnections: c.maxConnections }),
    maxConnectionsPerAddress: c.maxConnectionsPerAddress,
    tlsMinVersion: c.tlsMinVersion,
    ...(c.tlsCiphers === undefined ? {} : { tlsCiphers: c.tlsCiphers }),
    streamsPerTenant: c.streamsPerTenant,
    ui: c.ui,
    durability: c.durability,
    ...(c.dialects === undefined ? {} : { dialects: c.dialects }),
    ...(c.corsOrigins.length === 0 ? {} : { corsOrigins: c.corsOrigins }),
    drainDelayMs: c.drainDelayMs,
    metrics: c.metrics,
    ...(c.metricsPort === undefined ? {} : { metricsPort: c.metricsPort }),
    requestIds: c.requestIds,
  };
}

/** Checks a --database value; "" means SQLite. */
export function databaseUrlOf(v: string): string | undefined {
  if (v === "") return undefined;
  if (!/^postgres(ql)?:\/\//.test(v)) throw new Error(`--database must be a postgres:// or postgresql:// URL`);
  return v;
}

/** The URL without its password, for logs and banners. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "postgres://…";
  }
}

function parseDialects(v: string): readonly string[] | undefined {
  if (v === "all") return undefined;
  if (v === "none" || v === "") return [];
  return v.split(",").map((x) => x.trim()).filter((x) => x !== "");
}

/** --cors-origins as the list of origins a browser sends (normalised), checked now so that a typo stops the start. */
function parseCorsList(v: string): readonly string[] {
  if (v.trim() === "") return [];
  const policy = parseCorsOrigins(v.split(","));
  if (policy === undefined) return [];
  return policy.kind === "any" ? ["*"] : [...policy.origins];
}
