/**
 * Idempotency keys for a form: one new key per submission, except that a
 * submission whose outcome is unknown (the network failed, the server was
 * restarting) and that is sent again unchanged reuses its key, so that a
 * retry can never move the money twice.
 */
export class SubmissionKeys {
  private open: { readonly fingerprint: string; readonly key: string } | undefined;

  constructor(private readonly newKey: () => string = randomKey) {}

  /** The key to send these form values with. */
  keyFor(fingerprint: string): string {
    if (this.open?.fingerprint !== fingerprint) this.open = { fingerprint, key: this.newKey() };
    return this.open.key;
  }

  /** The server gave an answer (success or a definite refusal): the next submission is a new one. */
  answered(): void {
    this.open = undefined;
  }
}

/**
 * 128 random bits. crypto.getRandomValues, not randomUUID: the latter exists
 * only in secure contexts, and a Tally on a LAN address over plain HTTP is not one.
 */
export function randomKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "ui-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
