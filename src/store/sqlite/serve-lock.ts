import { randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { LedgerError } from "../../domain/errors.js";

/** The lock a serving process holds on its SQLite file. */
export interface ServeLock {
  /** The lock file's path (`<database>.lock`). */
  readonly path: string;
  /** Removes the lock file, if it is still ours. */
  release(): void;
}

interface LockOwner {
  readonly pid: number;
  readonly host: string;
  readonly token: string;
  readonly since: string;
}

/**
 * Takes `<database>.lock`, so that one process serves a SQLite file: a second
 * server on the same file would commit safely (SQLite locks), but its balance
 * streams would never hear of the other process's writes. The file is created
 * exclusively (O_EXCL) and holds the owner's pid, host and a random token. A
 * lock whose process is gone (a SIGKILL, a crash) is stale: it is replaced.
 * A lock from another host cannot be checked and is refused, naming its owner.
 * Commands that do not serve (verify, export, key create) take no lock.
 */
export function acquireServeLock(dbPath: string): ServeLock {
  const path = `${dbPath}.lock`;
  const me: LockOwner = { pid: process.pid, host: hostname(), token: randomBytes(12).toString("hex"), since: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o644);
      try {
        writeSync(fd, JSON.stringify(me) + "\n");
      } finally {
        closeSync(fd);
      }
      return { path, release: () => releaseIfOurs(path, me.token) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const owner = readOwner(path);
    if (owner !== undefined && !isStale(owner)) {
      throw new LedgerError(
        "failed_precondition",
        "database_in_use",
        `${dbPath} is served by another Tally process (pid ${owner.pid} on ${owner.host}, since ${owner.since}); ` +
          `stop it first, or remove ${path} if that process is gone`,
      );
    }
    // Stale (or unreadable: a crash while writing it): take it over. Two
    // processes racing here both unlink, and O_EXCL lets one of them win.
    try {
      unlinkSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }
  throw new LedgerError("failed_precondition", "database_in_use", `${dbPath}: could not take ${path}; another process keeps taking it`);
}

function readOwner(path: string): LockOwner | undefined {
  try {
    const v = JSON.parse(readFileSync(path, "utf8")) as Partial<LockOwner>;
    if (typeof v.pid === "number" && typeof v.host === "string" && typeof v.token === "string") return v as LockOwner;
  } catch {
    // Gone meanwhile, or half-written.
  }
  return undefined;
}

/** A lock of this host whose process no longer exists. */
function isStale(owner: LockOwner): boolean {
  if (owner.host !== hostname()) return false;
  if (owner.pid === process.pid) return false;
  try {
    process.kill(owner.pid, 0);
    return false;
  } catch (e) {
    // EPERM: it exists, under another user.
    return (e as NodeJS.ErrnoException).code === "ESRCH";
  }
}

function releaseIfOurs(path: string, token: string): void {
  if (readOwner(path)?.token !== token) return;
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}
