/** Polls `f` every 100 ms until it is true or `ms` pass; returns whether it became true. */
export async function becomesTrue(f: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  const until = performance.now() + ms;
  for (;;) {
    if (await f()) return true;
    if (performance.now() > until) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
