import { readFileSync } from "node:fs";
import { isIPv6 } from "node:net";
import type { Socket } from "node:net";

/** Options for {@link ConnectionLimits}; every field has a default. */
export interface ConnectionLimitsOptions {
  /** Open connections in all (default: {@link defaultMaxConnections}). */
  readonly maxConnections?: number;
  /** Open connections from one client address (256; 0: no limit, for use behind a proxy). */
  readonly maxPerAddress?: number;
  /** Sessions ended for abuse that put an address in the penalty box (3)... */
  readonly strikes?: number;
  /** ...within this long, in ms (60 s)... */
  readonly strikeWindowMs?: number;
  /** ...which then has its new connections refused for this long, in ms (60 s). */
  readonly penaltyMs?: number;
  /** Addresses remembered for strikes; the oldest are forgotten first (10,000). */
  readonly maxTracked?: number;
  readonly now?: () => number;
}

/** Why a connection was not admitted. */
export type Refusal = "max_connections" | "max_per_address" | "penalty";

interface Strikes {
  times: number[];
  until: number;
}

/** Open connections one address may hold, unless `maxPerAddress` says otherwise. */
export const DEFAULT_MAX_PER_ADDRESS = 256;

/**
 * Bounds the connections the server holds: in all, per client address, and
 * for addresses whose sessions keep being ended for abuse (rapid reset and
 * the like), none at all for a while. The file descriptors of a process are
 * finite; without these bounds one client can take them all.
 *
 * A client address is an IPv4 address, or the /64 prefix of an IPv6 one
 * (one host usually owns a whole /64, so counting single IPv6 addresses
 * bounds nothing).
 */
export class ConnectionLimits {
  readonly maxConnections: number;
  readonly maxPerAddress: number;
  private readonly strikesToPenalty: number;
  private readonly strikeWindowMs: number;
  private readonly penaltyMs: number;
  private readonly maxTracked: number;
  private readonly now: () => number;
  private open = 0;
  private readonly perAddress = new Map<string, number>();
  // Insertion order is age: the first entry is the one to forget.
  private readonly strikes = new Map<string, Strikes>();

  constructor(opts: ConnectionLimitsOptions = {}) {
    this.maxConnections = opts.maxConnections ?? defaultMaxConnections();
    this.maxPerAddress = opts.maxPerAddress ?? DEFAULT_MAX_PER_ADDRESS;
    this.strikesToPenalty = opts.strikes ?? 3;
    this.strikeWindowMs = opts.strikeWindowMs ?? 60_000;
    this.penaltyMs = opts.penaltyMs ?? 60_000;
    this.maxTracked = opts.maxTracked ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /** Open connections now. */
  get size(): number {
    return this.open;
  }

  /**
   * Counts a new connection until it closes, or says why it may not stay.
   * A refused connection is not counted; the caller destroys it.
   */
  admit(socket: Socket): Refusal | undefined {
    const key = addressKey(socket.remoteAddress);
    if (this.inPenalty(key)) return "penalty";
    if (this.open >= this.maxConnections) return "max_connections";
    const mine = this.perAddress.get(key) ?? 0;
    if (this.maxPerAddress > 0 && mine >= this.maxPerAddress) return "max_per_address";
    this.open++;
    this.perAddress.set(key, mine + 1);
    socket.once("close", () => {
      this.open--;
      const n = this.perAddress.get(key)! - 1;
      if (n === 0) this.perAddress.delete(key);
      else this.perAddress.set(key, n);
    });
    return undefined;
  }

  /**
   * Records that a session from this address was ended for abuse. Returns
   * true when that puts the address in the penalty box.
   */
  strike(remoteAddress: string | undefined): boolean {
    const key = addressKey(remoteAddress);
    const now = this.now();
    const s = this.strikes.get(key) ?? { times: [], until: 0 };
    this.strikes.delete(key);
    s.times = s.times.filter((t) => now - t < this.strikeWindowMs);
    s.times.push(now);
    let penalised = false;
    if (s.times.length >= this.strikesToPenalty) {
      s.until = now + this.penaltyMs;
      s.times = [];
      penalised = true;
    }
    this.strikes.set(key, s);
    if (this.strikes.size > this.maxTracked) this.strikes.delete(this.strikes.keys().next().value!);
    return penalised;
  }

  private inPenalty(key: string): boolean {
    const s = this.strikes.get(key);
    return s !== undefined && s.until > this.now();
  }
}

/**
 * The key a client address is counted under: IPv4 as is (also when written
 * IPv4-mapped), IPv6 by its /64 prefix.
 */
export function addressKey(address: string | undefined): string {
  if (address === undefined) return "unknown";
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  const [head = "", tail = ""] = address.split("::", 2);
  const left = head === "" ? [] : head.split(":");
  const right = tail === "" ? [] : tail.split(":");
  const groups = address.includes("::") ? [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(":")}::/64`;
}

/**
 * The default overall connection limit: the process's open-file limit less a
 * reserve for the database, logs and the accept itself, so that the limit is
 * reached before accept() fails for want of a descriptor. 10,000 at most.
 */
export function defaultMaxConnections(limitsFile = "/proc/self/limits"): number {
  const soft = openFileLimit(limitsFile);
  if (soft === undefined) return 10_000;
  return Math.max(16, Math.min(10_000, soft - 64));
}

/** The soft RLIMIT_NOFILE, where the platform tells it (Linux). */
export function openFileLimit(limitsFile = "/proc/self/limits"): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync(limitsFile, "utf8"));
    if (!m || m[1] === "unlimited") return undefined;
    return Number(m[1]);
  } catch {
    return undefined;
  }
}
