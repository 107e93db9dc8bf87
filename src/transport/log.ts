import { pino } from "pino";
import type { DestinationStream, Logger as Pino } from "pino";

/** The levels of `--log-level`, quietest last. */
export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * A structured logger: one JSON object per line. Every line of a request
 * carries its `request_id` (the callers put it in `fields`).
 */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  warn?(msg: string, fields?: Record<string, unknown>): void;
  debug?(msg: string, fields?: Record<string, unknown>): void;
  /** False when info lines are dropped (--log-level warn, error or silent): callers can skip building them. */
  readonly infoEnabled?: boolean;
  /** True when debug lines are written (--log-level debug). */
  readonly debugEnabled?: boolean;
}

/**
 * The one logger of a server: pino, writing JSON lines to `out` (stderr by
 * default, written asynchronously so that a slow terminal or pipe never
 * blocks a call, and flushed when the process exits). Lines look like
 * `{"level":"info","time":1767225600000,"msg":"rpc",...}`: the level by
 * name, the time in ms since the epoch (no date formatting per line), the
 * message, then the fields.
 */
export function jsonLogger(out?: NodeJS.WritableStream, level: LogLevel = "info"): Logger {
  const destination: DestinationStream = out === undefined || out === process.stderr ? pino.destination({ dest: 2, sync: false }) : (out as unknown as DestinationStream);
  const p: Pino = pino(
    {
      level,
      base: undefined,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  const on = (l: LogLevel) => LOG_LEVELS.indexOf(l) >= LOG_LEVELS.indexOf(level) && level !== "silent";
  return {
    infoEnabled: on("info"),
    debugEnabled: on("debug"),
    // msg first, then the fields: a line reads (and greps) as "what, then details".
    info: (msg, fields) => p.info(line(msg, fields)),
    error: (msg, fields) => p.error(line(msg, fields)),
    warn: (msg, fields) => p.warn(line(msg, fields)),
    debug: (msg, fields) => p.debug(line(msg, fields)),
  };
}

/** The line's object: msg, then the fields, bigints as decimal strings (JSON has no int64; pino would print bare numbers). */
function line(msg: string, fields: Record<string, unknown> | undefined): Record<string, unknown> {
  const o: Record<string, unknown> = { msg };
  for (const k in fields) {
    const v = fields[k];
    o[k] = typeof v === "bigint" ? v.toString() : v;
  }
  return o;
}
