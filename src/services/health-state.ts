/** Whether the server should get traffic, and why not. */
export type Readiness = "serving" | "not_serving";

/** Options for {@link HealthState}. */
export interface HealthStateOptions {
  /** Checks that the store answers; rejects (or times out) when it does not. */
  readonly probe: () => Promise<void>;
  /** How often the store is probed, in ms (2 s). */
  readonly intervalMs?: number;
  /** How long a probe may take before the store counts as unreachable, in ms (1 s). */
  readonly timeoutMs?: number;
  /** Told when readiness changes, with the reason (for the log). */
  readonly onChange?: (readiness: Readiness, reason: string) => void;
}

/**
 * The server's readiness, for gRPC health and `/readyz`: serving while the
 * store answers its probe and the server is not draining. One probe every
 * interval, whatever the number of health checks: a load balancer polling
 * many replicas never adds load on the store.
 */
export class HealthState {
  private storeUp = true;
  private draining = false;
  private readonly listeners = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;
  private probing: Promise<void> | undefined;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;

  constructor(private readonly options: HealthStateOptions) {
    this.intervalMs = options.intervalMs ?? 2000;
    this.timeoutMs = options.timeoutMs ?? 1000;
  }

  /** Probes now, then every interval, until {@link HealthState.stop}. */
  async start(): Promise<void> {
    await this.probeOnce();
    this.timer = setInterval(() => void this.probeOnce(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  get readiness(): Readiness {
    return this.storeUp && !this.draining ? "serving" : "not_serving";
  }

  /** Marks the server as draining (a graceful stop began): not serving from now on. */
  setDraining(): void {
    if (this.draining) return;
    const before = this.readiness;
    this.draining = true;
    this.changed(before, "draining");
  }

  /** Calls `fn` on every change of readiness; returns the unsubscribe. */
  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** One probe; overlapping calls share it. */
  probeOnce(): Promise<void> {
    this.probing ??= this.runProbe().finally(() => (this.probing = undefined));
    return this.probing;
  }

  private async runProbe(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    let up: boolean;
    let reason: string;
    try {
      await Promise.race([this.options.probe(), timeout]);
      up = true;
      reason = "store reachable";
    } catch (e) {
      up = false;
      reason = `store unreachable: ${e instanceof Error ? e.message : String(e)}`;
    } finally {
      clearTimeout(timer);
    }
    if (up === this.storeUp) return;
    const before = this.readiness;
    this.storeUp = up;
    this.changed(before, reason);
  }

  private changed(before: Readiness, reason: string): void {
    if (this.readiness === before) return;
    this.options.onChange?.(this.readiness, reason);
    for (const fn of this.listeners) fn();
  }
}
