import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import type { Client, Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { startTally } from "../../src/app.js";
import type { Tally, TallyOptions } from "../../src/app.js";
import { jsonLogger } from "../../src/transport/log.js";
import { freshPgUrl, testStore } from "./postgres.js";

/**
 * A Tally server on an ephemeral port, in this process, over a fresh store:
 * a SQLite file, or (in the vitest project "postgres") a private schema of the
 * run's PostgreSQL database.
 */
export interface TestServer {
  readonly tally: Tally;
  readonly url: string;
  /** The default tenant's admin (operator) key. */
  readonly adminKey: string;
  readonly dir: string;
  /** The SQLite file (unused on PostgreSQL). */
  readonly dbPath: string;
  /** The PostgreSQL URL with its schema, when the store is PostgreSQL. */
  readonly databaseUrl: string | undefined;
  close(): Promise<void>;
}

/** A fresh temporary directory, removed by the returned function. */
export function tempDir(prefix = "tally-test-"): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Starts a real server (real SQLite file or PostgreSQL schema, real socket) for one test file. */
export async function startTestServer(options: TallyOptions = {}): Promise<TestServer> {
  const { dir, remove } = tempDir();
  const dbPath = join(dir, "tally.db");
  const databaseUrl = options.store === undefined && testStore() === "postgres" ? (options.databaseUrl ?? freshPgUrl()) : options.databaseUrl;
  const tally = await startTally({
    databasePath: dbPath,
    ...(databaseUrl === undefined ? {} : { databaseUrl }),
    port: 0,
    logger: jsonLogger(process.stderr, "error"),
    // Clients that stop mid-upload (oversized-message tests) would otherwise hold the close for 10 s.
    shutdownGraceMs: 2000,
    // Tests open a fresh client (and so a fresh connection) per call by the hundred, all from 127.0.0.1;
    // the per-address limit has tests of its own.
    maxConnectionsPerAddress: 0,
    ...options,
  });
  if (!tally.bootstrapKey) throw new Error("expected a bootstrap key on a fresh database");
  return {
    tally,
    url: tally.url,
    adminKey: tally.bootstrapKey,
    dir,
    dbPath,
    databaseUrl,
    async close() {
      await tally.close();
      remove();
    },
  };
}

/** The protocols a client can speak to Tally. */
export type Protocol = "connect-json" | "connect-binary" | "grpc" | "grpc-web";

/** Every protocol, for test matrices. */
export const PROTOCOLS: readonly Protocol[] = ["connect-json", "connect-binary", "grpc", "grpc-web"];

/** Adds `Authorization: Bearer <key>` to every call. */
export function bearer(key: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
}

/** A transport for one protocol, authenticated with `key` (or anonymous when undefined). */
export function transportFor(url: string, protocol: Protocol, key: string | undefined): Transport {
  const interceptors = key === undefined ? [] : [bearer(key)];
  switch (protocol) {
    case "connect-json":
      // connect-node defaults to binary: JSON must be asked for.
      return createConnectTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: false, interceptors });
    case "connect-binary":
      return createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true, interceptors });
    case "grpc":
      return createGrpcTransport({ baseUrl: url, interceptors });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", interceptors });
  }
}

/** A typed client for a service over one protocol. */
export function clientFor<T extends DescService>(service: T, url: string, protocol: Protocol, key: string | undefined): Client<T> {
  return createClient(service, transportFor(url, protocol, key));
}

/** A server running as a child process (`tsx src/main.ts serve`), for crash and signal tests. */
export interface ChildServer {
  readonly child: ChildProcess;
  readonly url: string;
  /** Set when this start created the database. */
  readonly adminKey: string | undefined;
  /** Everything the child wrote to stdout and stderr so far. */
  output(): string;
  /** Sends a signal and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** How a child server process is confined. */
export interface ChildLimits {
  /** CPUs to pin it to (taskset list, e.g. "0"). */
  readonly cpus?: string;
  /** Its open-file limit (ulimit -n). */
  readonly maxOpenFiles?: number;
}

/** Starts `tally serve` on a database file in a child process and waits until it listens. */
export async function spawnServer(dbPath: string, extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}, limits: ChildLimits = {}): Promise<ChildServer> {
  const node = [process.execPath, "--import", "tsx", "src/main.ts", "serve", "--db", dbPath, "--port", "0", "--log-level", "error", ...extraArgs];
  const confined = limits.cpus !== undefined || limits.maxOpenFiles !== undefined;
  // `exec` keeps the pid: child.pid is the server's own, for /proc/<pid>/fd.
  const script = [
    ...(limits.maxOpenFiles === undefined ? [] : [`ulimit -n ${limits.maxOpenFiles}`]),
    `exec ${limits.cpus === undefined ? "" : `taskset -c ${limits.cpus} `}"$@"`,
  ].join(" && ");
  const [cmd, args] = confined ? ["bash", ["-c", script, "tally", ...node]] : [node[0]!, node.slice(1)];
  const child = spawn(cmd, args, {
    cwd: join(import.meta.dirname, "..", ".."),
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`server did not start:\n${out}`));
    }, 30_000);
    const check = () => {
      const m = /listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off("data", check);
        resolve(m[1]!);
      }
    };
    child.stdout!.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${out}`));
    });
  });
  const adminKey = /(tly_[a-z0-9_]+)/.exec(out)?.[1];
  return {
    child,
    url,
    adminKey,
    output: () => out,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}
