/**
 * Joins identical reads that are in flight together: the first caller's read
 * is shared with every caller asking for the same key until the turn of the
 * event loop after it settled.
 *
 * Why: a commit to an account wakes every watcher of it in the same tick,
 * and watchers that are in step all ask for the same entries after the same
 * sequence. Shared, 100 watchers cost one journal read instead of 100. It is
 * safe for journal reads because committed entries never change: a shared
 * answer is the journal as of some moment after the caller asked, so a
 * watcher that gets a batch read just before a newer commit still has that
 * commit's wake-up pending and reads on from the end of its batch.
 */
export class SharedReads {
  readonly #inFlight = new Map<string, Promise<unknown>>();

  /** `read()`'s answer, or the answer of an identical read already in flight. */
  run<T>(key: string, read: () => Promise<T>): Promise<T> {
    const known = this.#inFlight.get(key);
    if (known !== undefined) return known as Promise<T>;
    const p = read();
    this.#inFlight.set(key, p);
    const forget = () => setImmediate(() => this.#inFlight.delete(key));
    p.then(forget, forget);
    return p;
  }

  /** Reads in flight or just settled (for tests). */
  get size(): number {
    return this.#inFlight.size;
  }
}
