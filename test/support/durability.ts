import { spawn } from "node:child_process";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Code, ConnectError } from "@connectrpc/connect";
import { spawnServer } from "./server.js";
import type { ChildServer } from "./server.js";

const REPO_ROOT = join(import.meta.dirname, "..", "..");

/** The end of a CLI run. */
export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `tally <args>` (`node --import tsx src/main.ts`) as a child process, killed after `timeoutMs`; `input` is its stdin. */
export function runTallyCli(args: string[], timeoutMs = 30_000, input?: string): Promise<CliResult> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", ...args], { cwd: REPO_ROOT, stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
  if (input !== undefined) child.stdin!.end(input);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * `PRAGMA integrity_check` on a database file, through a read-only
 * connection: safe while a server has the file open (WAL allows a reader in
 * another process), and it never checkpoints or rewrites the file itself.
 */
export function integrityCheck(dbPath: string): string {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return String(db.pragma("integrity_check", { simple: true }));
  } finally {
    db.close();
  }
}

/** Runs a read-only query on a database file (server stopped, or WAL reader alongside it). */
export function queryDb<T>(dbPath: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    db.defaultSafeIntegers(true);
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

/**
 * Codes after which the server has definitely refused the call, so retrying
 * could never make it succeed. Everything else (connection refused or reset,
 * stream cut by a crash, deadline, unavailable, internal) is an unknown outcome:
 * the write may or may not have committed, and the client must retry with the
 * same idempotency key and body to find out.
 */
const DEFINITE_FAILURES: ReadonlySet<Code> = new Set([
  Code.InvalidArgument,
  Code.NotFound,
  Code.AlreadyExists,
  Code.PermissionDenied,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.Unimplemented,
  Code.Unauthenticated,
]);

/** True when an error leaves the outcome of a write unknown (Jepsen's `info`). */
export function isUnknownOutcome(e: unknown): boolean {
  return !DEFINITE_FAILURES.has(ConnectError.from(e).code);
}

/** The code name of an error, for reports ("unavailable", "internal", …). */
export function codeName(e: unknown): string {
  return Code[ConnectError.from(e).code] ?? "unknown";
}

/** A seeded PRNG (mulberry32), so a failing run can be replayed from its printed seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Rejects when `p` has not settled within `ms`, naming `what`. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Child servers started by one test file, so that afterAll can kill every one
 * of them by its own handle, whatever state a failed test left them in.
 */
export class ServerFleet {
  private readonly all: ChildServer[] = [];

  /** spawnServer, remembered for {@link killAll}; also reports how long the start took. */
  async spawn(dbPath: string, extraArgs: string[] = []): Promise<{ server: ChildServer; startMs: number }> {
    const t0 = performance.now();
    const server = await spawnServer(dbPath, extraArgs);
    this.all.push(server);
    return { server, startMs: performance.now() - t0 };
  }

  /** SIGKILLs every child still running. */
  async killAll(): Promise<void> {
    await Promise.all(this.all.map((s) => s.stop("SIGKILL")));
  }
}

/** The parsed JSON log line with this `msg` from a server's output, if any. */
export function logLine(output: string, msg: string): Record<string, unknown> | undefined {
  for (const line of output.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const obj = JSON.parse(line) as Record<string, unknown>;
      if (obj.msg === msg) return obj;
    } catch {
      // Not a log line.
    }
  }
  return undefined;
}
