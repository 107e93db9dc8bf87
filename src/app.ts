import { setMaxListeners } from "node:events";
import { readFileSync } from "node:fs";
import type { SecureVersion } from "node:tls";
import type { ConnectRouter, ConnectRouterOptions } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { Access } from "./domain/access.js";
import { LedgerError } from "./domain/errors.js";
import type { BalanceFeed } from "./domain/feed.js";
import { Ledger, systemClock } from "./domain/ledger.js";
import type { Clock } from "./domain/ledger.js";
import type { Store } from "./domain/store.js";
import { registerAdminService } from "./services/admin-service.js";
import { HealthState } from "./services/health-state.js";
import { registerHealthService } from "./services/health-service.js";
import { registerReflectionService } from "./services/reflection-service.js";
import { probeEndpoints } from "./transport/probes.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { AdminService } from "../gen/tally/admin/v1/admin_pb.js";
import { CreditService } from "../gen/tally/credits/v1/credits_pb.js";
import { errorInterceptor } from "./services/errors.js";
import { registerLedgerService } from "./services/ledger-service.js";
import { registerCreditService } from "./services/credit-service.js";
import { Credits } from "./domain/credits/credits.js";
import { PageTokens } from "./domain/page-token.js";
import { StreamLimiter } from "./domain/stream-limiter.js";
import { SqliteStore } from "./store/sqlite/sqlite-store.js";
import { PostgresStore, pgUrlSchema } from "./store/postgres/postgres-store.js";
import { PgBalanceFeed } from "./store/postgres/pg-feed.js";
import { authInterceptor, createAuthenticate } from "./transport/auth-interceptor.js";
import type { Logger } from "./transport/log.js";
import { jsonLogger } from "./transport/log.js";
import type { SpanExporter } from "@opentelemetry/sdk-trace-base";
import { Metrics } from "./transport/observe/metrics.js";
import { metricsEndpoint, listenMetrics } from "./transport/observe/metrics-endpoint.js";
import type { MetricsListener } from "./transport/observe/metrics-endpoint.js";
import { Observer } from "./transport/observe/observer.js";
import { requestFields, requestInfoKey } from "./transport/observe/request-context.js";
import { bothObservers, startTracing, tracingStoreObserver } from "./transport/observe/tracing.js";
import { packageVersion } from "./version.js";
import type { AbuseOptions, Listening } from "./transport/server.js";
import { DEFAULT_HEADERS_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS, listen } from "./transport/server.js";
import { DEFAULT_MAX_PER_ADDRESS } from "./transport/connection-limits.js";
import { definedOnly } from "./options.js";
import { createRpcHandler } from "./transport/rpc-handler.js";
import { createFrontDoor } from "./transport/front-door.js";
import { createDashboard } from "./transport/dashboard.js";
import { createRestHandler } from "./transport/rest/rest-handler.js";
import { routesOf } from "./transport/rest/route-table.js";
import { createCors } from "./transport/cors/cors.js";
import type { Cors } from "./transport/cors/cors.js";
import { corsHeaderLists } from "./transport/cors/headers.js";
import { parseCorsOrigins } from "./transport/cors/origins.js";
import { Credentials } from "./domain/credentials.js";
import type { DialectFactory } from "./dialects/dialect.js";
import { DIALECTS } from "./dialects/index.js";

/** Everything that configures a Tally server; every field has a default. */
export interface TallyOptions {
  /** SQLite database file (the default store). */
  readonly databasePath?: string;
  /**
   * PostgreSQL connection string (`postgres://…[?schema=NAME]`). When set, the
   * store is PostgreSQL and balance watchers are woken across replicas by
   * LISTEN/NOTIFY; databasePath and durability are unused.
   */
  readonly databaseUrl?: string;
  /** PostgreSQL connections of this process (10). */
  readonly poolSize?: number;
  /** PostgreSQL statement_timeout, in ms (10 s). */
  readonly statementTimeoutMs?: number;
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port?: number;
  readonly tlsCertFile?: string | undefined;
  readonly tlsKeyFile?: string | undefined;
  /** Largest request message accepted, in bytes (1 MiB). */
  readonly maxMessageBytes?: number;
  /** Time a connection has to set itself up and each request to send its headers, in ms (10 s). */
  readonly headersTimeoutMs?: number;
  /** Time a client has to send a whole request, in ms (60 s). */
  readonly requestTimeoutMs?: number;
  /** Idle HTTP/1.1 keep-alive connections close after this long, in ms (5 s). */
  readonly keepAliveTimeoutMs?: number;
  /** HTTP/2 connections with no open stream close after this long, in ms (30 s). */
  readonly idleTimeoutMs?: number;
  /** HTTP/2 connections with open streams are pinged this often; unanswered, they are cut, in ms (30 s; 0: off). */
  readonly pingIntervalMs?: number;
  /** Open connections in all (default: the open-file limit less 64, at most 10,000). */
  readonly maxConnections?: number;
  /** Open connections per client address, IPv6 by /64 (256; 0: no limit, e.g. behind a proxy). */
  readonly maxConnectionsPerAddress?: number;
  /** Rapid-reset defence thresholds (see AbuseOptions). */
  readonly abuse?: AbuseOptions;
  /** Oldest TLS version accepted ("TLSv1.2"). */
  readonly tlsMinVersion?: SecureVersion;
  /** OpenSSL cipher list (forward-secret AEAD suites only by default). */
  readonly tlsCiphers?: string;
  /** Open WatchBalance streams allowed per tenant (100). */
  readonly streamsPerTenant?: number;
  /** Longest deadline a client may ask for, in ms (5 min). */
  readonly maxTimeoutMs?: number;
  /** How long a graceful stop waits for in-flight calls before cutting connections, in ms (10 s). */
  readonly shutdownGraceMs?: number;
  /** "full" (default) or "normal"; see SqliteStoreOptions.durability. */
  readonly durability?: "full" | "normal";
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Use this store instead of opening SQLite. */
  readonly store?: Store;
  /**
   * How often ended commit and credit segments get their closing entries
   * written, in ms (60 s; 0: only inside credit writes). Reads compute them
   * meanwhile, so this only decides when the ledger lists them as stored rows.
   */
  readonly expirySweepMs?: number;
  /** Serve the dashboard at /ui/ (true by default). */
  readonly ui?: boolean;
  /**
   * Browser origins allowed to call from another origin (CORS): exact
   * origins (`https://app.example.com`), or `["*"]` for any origin without
   * credentials. Off by default (undefined or []). See transport/cors/origins.ts.
   */
  readonly corsOrigins?: readonly string[];
  /** Names of the REST dialects to enable (all by default; [] for none). */
  readonly dialects?: readonly string[];
  /** How often readiness probes the store, in ms (2 s); see HealthState. */
  readonly healthProbeMs?: number;
  /**
   * How long a graceful stop reports NOT_SERVING (gRPC health, /readyz) while
   * still serving, before it drains: time for load balancers to stop sending
   * traffic, in ms (0).
   */
  readonly drainDelayMs?: number;
  readonly feed?: BalanceFeed;
  /** Serve Prometheus metrics at /metrics (true; off with --no-metrics). */
  readonly metrics?: boolean;
  /** Serve /metrics on this port (on `host`) instead of the API port; 0 picks a free one. */
  readonly metricsPort?: number | undefined;
  /** Accept, generate and echo `x-request-id` (true; off with --no-request-ids). */
  readonly requestIds?: boolean;
  /**
   * Where the OpenTelemetry settings (OTEL_*) are read (process.env), or an
   * exporter to send spans to instead (tests: InMemorySpanExporter; "simple"
   * exports each span as it ends).
   */
  readonly tracing?: { readonly env?: NodeJS.ProcessEnv; readonly exporter?: SpanExporter; readonly processor?: "simple" | "batch" };
}

/** A running Tally server. */
export interface Tally {
  readonly url: string;
  readonly port: number;
  readonly ledger: Ledger;
  readonly access: Access;
  readonly store: Store;
  /** Set when this start created the default tenant: its admin key, shown once. */
  readonly bootstrapKey: string | undefined;
  /**
   * The Connect routes and router options this server serves: what a stock
   * `connectNodeAdapter` needs to serve the same services the same way (the
   * protocol-equivalence tests use it as the reference).
   */
  readonly connect: { readonly routes: (router: ConnectRouter) => void; readonly options: ConnectRouterOptions };
  /** The URL of /metrics on its own port, when `metricsPort` was given. */
  readonly metricsUrl: string | undefined;
  /** The metrics registry (undefined with metrics off). */
  readonly metrics: Metrics | undefined;
  /** Graceful stop: ends streams, finishes in-flight calls, closes the store. */
  close(): Promise<void>;
}

/** The factories of the named dialects; every dialect when names is undefined. */
function selectDialects(names: readonly string[] | undefined): DialectFactory[] {
  if (names === undefined) return [...DIALECTS.values()];
  return names.map((n) => {
    const f = DIALECTS.get(n);
    if (!f) throw new Error(`unknown dialect "${n}"; known: ${[...DIALECTS.keys()].join(", ") || "none"}`);
    return f;
  });
}

/** The name of the tenant created on first start. */
export const DEFAULT_TENANT = "default";

/** Opens the store, wires the services and starts listening. */
export async function startTally(options: TallyOptions = {}): Promise<Tally> {
  const log = options.logger ?? jsonLogger();
  const version = packageVersion();
  // Read first: a typo in OTEL_TRACES_EXPORTER is a start-up error, before anything opens.
  const tracing = await startTracing({ version, ...options.tracing });
  // Checked before anything opens: a bad origin is a start-up error, not a store to close.
  const corsOrigins = parseCorsOrigins(options.corsOrigins ?? []);
  const clock = options.clock ?? systemClock;
  let store: Store;
  let feed = options.feed;
  let closeFeed: (() => Promise<void>) | undefined;
  if (options.store) {
    store = options.store;
  } else if (options.databaseUrl !== undefined) {
    const { url, schema } = pgUrlSchema(options.databaseUrl);
    const pgStore = await PostgresStore.open({
      url,
      schema,
      ...(options.poolSize === undefined ? {} : { poolSize: options.poolSize }),
      ...(options.statementTimeoutMs === undefined ? {} : { statementTimeoutMs: options.statementTimeoutMs }),
    });
    const settings = await pgStore.settings();
    // Logged so that operators can see the durability actually in force.
    log.info("store opened", { store: "postgres", schema: pgStore.schema, fsync: settings.fsync, synchronous_commit: settings.synchronousCommit });
    store = pgStore;
    if (!feed) {
      const pgFeed = new PgBalanceFeed({
        url,
        schema: pgStore.schema,
        onEvent: (event, detail) => (event === "listening" ? log.info("balance feed listening") : log.error(`balance feed ${event}`, { detail })),
      });
      await pgFeed.whenListening();
      feed = pgFeed;
      closeFeed = () => pgFeed.close();
    }
  } else {
    // One serving process per file: its streams must hear of every write (serve-lock.ts).
    const sqlite = SqliteStore.open({ path: options.databasePath ?? "tally.db", durability: options.durability ?? "full", exclusive: true });
    const p = sqlite.pragmas();
    // Logged so that operators (and a test) can see the durability actually in force.
    log.info("store opened", { store: "sqlite", journal_mode: p.journalMode, synchronous: p.synchronous });
    store = sqlite;
  }
  const metrics =
    options.metrics === false
      ? undefined
      : new Metrics(version, {
          openStreams: () => streams.openByTenant(),
          ...(store instanceof PostgresStore ? { pgPool: () => store.poolStats(), pgReruns: () => store.retries } : {}),
        });
  if (store instanceof SqliteStore || store instanceof PostgresStore) {
    const kind = store instanceof SqliteStore ? "sqlite" : "postgres";
    store.observer = bothObservers(metrics?.storeObserver(kind), tracing === undefined ? undefined : tracingStoreObserver(tracing, kind));
  }
  const onReplay = metrics === undefined ? undefined : (operation: string) => metrics.replay(operation);
  const ledger = new Ledger({ store, clock, ...(feed ? { feed } : {}), ...(onReplay ? { onReplay } : {}) });
  const access = new Access(store, clock);
  const bootstrapKey = await bootstrap(store, access);
  const pageTokens = new PageTokens(Buffer.from(await pageTokenKey(store), "base64url"));
  const streamsPerTenant = options.streamsPerTenant ?? 100;
  const streams = new StreamLimiter(streamsPerTenant);
  const shutdown = new AbortController();
  // connect-es adds one listener per call to this signal; many concurrent
  // calls are normal here, not a leak.
  setMaxListeners(0, shutdown.signal);

  const credentials = new Credentials(store, clock);
  const credits = new Credits(store, clock, onReplay ? { onReplay } : {});
  const dialects = selectDialects(options.dialects).map((make) =>
    make({ ledger, credits, credentials, pageTokens, streams, shutdown: shutdown.signal }),
  );
  const accountIdRules = dialects.flatMap((d) => d.accountIdRules ?? []);
  const credentialKinds = new Map(dialects.flatMap((d) => d.credentialKinds ?? []).map((k) => [k.kind, k]));
  const authenticate = createAuthenticate(
    access,
    new Map(dialects.flatMap((d) => (d.authenticate ? d.services.map((s) => [s.typeName, d.authenticate!] as const) : []))),
  );

  const health = new HealthState({
    probe: () => store.ping(),
    ...definedOnly({ intervalMs: options.healthProbeMs }),
    // A drain is planned (info); a store that stops answering is an error.
    onChange: (readiness, reason) => (readiness === "serving" || reason === "draining" ? log.info : log.error)("readiness changed", { readiness, reason }),
  });
  const served = [LedgerService, AdminService, CreditService, ...dialects.flatMap((d) => d.services)];
  const routes = (router: ConnectRouter) => {
    registerLedgerService(router, { ledger, pageTokens, streams, shutdown: shutdown.signal, accountIdRules });
    registerAdminService(router, { ledger, access, credentials, credentialKinds });
    registerCreditService(router, { credits, pageTokens });
    for (const d of dialects) d.register(router);
    registerHealthService(router, { state: health, services: served.map((s) => s.typeName) });
    registerReflectionService(router, [...served, Health, ServerReflection, ServerReflectionV1Alpha]);
  };
  const observer = new Observer({ logger: log, requestIds: options.requestIds !== false, metrics, tracing });
  const readMaxBytes = options.maxMessageBytes ?? 1024 * 1024;
  const routerOptions: ConnectRouterOptions = {
    readMaxBytes,
    maxTimeoutMs: options.maxTimeoutMs ?? 5 * 60_000,
    shutdownSignal: shutdown.signal,
    acceptCompression: [compressionGzip, compressionBrotli],
    interceptors: [
      // Logs, metrics and spans: outermost, so that they see every outcome as the client does.
      ...observer.outer,
      errorInterceptor((e, req) => log.error("internal error", { error: e instanceof Error ? e.stack : String(e), ...requestFields(req.contextValues.get(requestInfoKey)) })),
      // Health and reflection answer anyone: load balancers and schema tools carry no key.
      authInterceptor(authenticate, new Set([Health.typeName, ServerReflection.typeName, ServerReflectionV1Alpha.typeName])),
      ...observer.inner,
    ],
  };
  const rpc = createRpcHandler({
    ...routerOptions,
    routes,
    logger: log,
    observer,
    readMaxBytes,
    ...definedOnly({ requestTimeoutMs: options.requestTimeoutMs }),
  });
  const restRoutes = routesOf(dialects.flatMap((d) => d.services));
  const rest =
    restRoutes.length === 0
      ? undefined
      : createRestHandler({
          routes: restRoutes,
          rpc,
          authenticate,
          eventStreams: new Map(dialects.flatMap((d) => [...(d.eventStreams ?? [])])),
          envelopes: new Map(dialects.flatMap((d) => [...(d.envelopes ?? [])])),
          readMaxBytes,
          ...definedOnly({ requestTimeoutMs: options.requestTimeoutMs }),
          logger: log,
          observer,
          dialects: new Map(dialects.flatMap((d) => d.services.map((svc) => [svc.typeName, d.name] as const))),
        });
  let cors: Cors | undefined;
  if (corsOrigins !== undefined) {
    // Connect's headers and Tally's, then those the enabled dialects' clients send.
    cors = createCors({ origins: corsOrigins, headers: corsHeaderLists(dialects.flatMap((d) => d.requestHeaders ?? [])), logger: log });
    // Logged so that operators can see who may call from a browser.
    log.info("cors enabled", { origins: corsOrigins.kind === "any" ? "*" : [...corsOrigins.origins] });
  }
  const endpoints = new Map(probeEndpoints(() => ({ ok: health.readiness === "serving", detail: health.readiness })));
  // On the API port unless it has a port of its own.
  if (metrics !== undefined && options.metricsPort === undefined) endpoints.set("/metrics", metricsEndpoint(metrics));
  const ui = options.ui === false ? undefined : createDashboard({ logger: log });
  const frontDoor = createFrontDoor({ rpc, rest, cors, ui, endpoints, observer });
  const tls =
    options.tlsCertFile && options.tlsKeyFile
      ? {
          cert: readFileSync(options.tlsCertFile),
          key: readFileSync(options.tlsKeyFile),
          ...definedOnly({ minVersion: options.tlsMinVersion, ciphers: options.tlsCiphers }),
        }
      : undefined;
  let server: Listening;
  try {
    server = await listen(frontDoor, {
      host: options.host ?? "127.0.0.1",
      port: options.port ?? 8080,
      tls,
      headersTimeoutMs: options.headersTimeoutMs ?? 10_000,
      ...definedOnly({
        requestTimeoutMs: options.requestTimeoutMs,
        keepAliveTimeoutMs: options.keepAliveTimeoutMs,
        idleTimeoutMs: options.idleTimeoutMs,
        pingIntervalMs: options.pingIntervalMs,
        maxConnections: options.maxConnections,
        maxConnectionsPerAddress: options.maxConnectionsPerAddress,
        abuse: options.abuse,
      }),
      onNotice: (message, fields) => log.error(message, fields),
    });
  } catch (e) {
    await store.close();
    await closeFeed?.();
    await tracing?.shutdown();
    throw e;
  }
  let metricsListener: MetricsListener | undefined;
  if (metrics !== undefined && options.metricsPort !== undefined) {
    try {
      metricsListener = await listenMetrics(metrics, options.host ?? "127.0.0.1", options.metricsPort);
    } catch (e) {
      await server.close(0);
      await store.close();
      await closeFeed?.();
      await tracing?.shutdown();
      throw e;
    }
  }
  await health.start();
  // One line that says what this server is: enough to read a bug report by.
  log.info("tally started", {
    version,
    node: process.version,
    url: server.url,
    store: options.store ? "custom" : options.databaseUrl !== undefined ? "postgres" : "sqlite",
    durability: options.databaseUrl !== undefined ? "postgres" : (options.durability ?? "full"),
    dialects: dialects.map((d) => d.name),
    ui: ui !== undefined,
    cors: cors !== undefined,
    metrics: metrics === undefined ? "off" : (metricsListener?.url ?? "/metrics"),
    tracing: tracing !== undefined,
    request_ids: options.requestIds !== false,
    limits: {
      max_message_bytes: readMaxBytes,
      max_timeout_ms: routerOptions.maxTimeoutMs,
      streams_per_tenant: streamsPerTenant,
      headers_timeout_ms: options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS,
      request_timeout_ms: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      max_connections: options.maxConnections ?? "auto",
      max_connections_per_address: options.maxConnectionsPerAddress ?? DEFAULT_MAX_PER_ADDRESS,
    },
  });

  const sweepMs = options.expirySweepMs ?? 60_000;
  // The sweep in progress, if any: a tick that finds one running is skipped.
  // Every replica may sweep: the customer lock and the one-closing-per-segment
  // index make concurrent sweeps write nothing twice.
  let sweeping: Promise<void> | undefined;
  const sweeper =
    sweepMs > 0
      ? setInterval(() => {
          sweeping ??= credits
            .materialiseExpirations()
            .then(
              () => undefined,
              (e: unknown) => log.error("expiry sweep failed", { error: String(e) }),
            )
            .finally(() => (sweeping = undefined));
        }, sweepMs)
      : undefined;
  sweeper?.unref();

  let closing: Promise<void> | undefined;
  return {
    url: server.url,
    port: server.port,
    ledger,
    access,
    store,
    bootstrapKey,
    connect: { routes, options: routerOptions },
    metricsUrl: metricsListener?.url,
    metrics,
    close() {
      closing ??= (async () => {
        if (sweeper) clearInterval(sweeper);
        health.setDraining();
        const delay = options.drainDelayMs ?? 0;
        if (delay > 0) await new Promise((r) => setTimeout(r, delay));
        health.stop();
        shutdown.abort();
        await server.close(options.shutdownGraceMs ?? 10_000);
        await metricsListener?.close();
        await sweeping;
        await store.close();
        await closeFeed?.();
        // After the last call: its spans are flushed to the exporter.
        await tracing?.shutdown();
      })();
      return closing;
    },
  };
}

/** On an empty database: creates the default tenant and returns its operator key. */
async function bootstrap(store: Store, access: Access): Promise<string | undefined> {
  if ((await store.countTenants()) > 0) return undefined;
  try {
    const { admin } = await access.createTenant({ id: DEFAULT_TENANT, name: "Default tenant", operator: true });
    return admin.secret;
  } catch (e) {
    // Another process sharing the database bootstrapped first.
    if (e instanceof LedgerError && e.code === "already_exists") return undefined;
    throw e;
  }
}

/** The page-token signing key, created once and shared by every replica through the store. */
async function pageTokenKey(store: Store): Promise<string> {
  const existing = await store.getMeta("page_token_key");
  if (existing) return existing;
  // Replicas starting together on an empty database race here: the first
  // key stored wins and every replica uses that one.
  return store.write((tx) => tx.initMeta("page_token_key", PageTokens.newKey()));
}
