/** Writes one JSON line to stdout; bigints as decimal strings, so that int64 amounts print exactly. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)) + "\n");
}

/** A stored time (microseconds since the epoch) as an ISO 8601 string, or null. */
export function isoTime(micros: bigint | null): string | null {
  if (micros === null) return null;
  return new Date(Number(micros / 1000n)).toISOString();
}

/** Reports a failure of the command itself (not of how it was called) and gives its exit code, 1. */
export function fail(message: string): number {
  process.stderr.write(`tally: ${message}\n`);
  return 1;
}
