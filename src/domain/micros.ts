/** Epoch microseconds (the ledger's times) split into whole seconds and a non-negative microsecond part, exactly. */
export function splitMicros(us: bigint): { seconds: bigint; micros: bigint } {
  let seconds = us / 1_000_000n;
  let micros = us % 1_000_000n;
  // bigint division truncates toward zero; times before 1970 need the floor.
  if (micros < 0n) {
    micros += 1_000_000n;
    seconds -= 1n;
  }
  return { seconds, micros };
}

/** Epoch microseconds as RFC 3339 with six fractional digits, for messages. */
export function formatMicros(us: bigint): string {
  const { seconds, micros } = splitMicros(us);
  const base = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  return `${base}.${micros.toString().padStart(6, "0")}Z`;
}
