import { LedgerError } from "./errors.js";

/** Caps the number of open streams per tenant, so no tenant can exhaust the server. */
export class StreamLimiter {
  private readonly open = new Map<string, number>();

  constructor(private readonly perTenant: number) {}

  /** Open streams by tenant, tenants with none left out (read when metrics are scraped). */
  openByTenant(): ReadonlyMap<string, number> {
    return this.open;
  }

  /** Takes a slot or fails with resource_exhausted; call the returned function to give it back. */
  acquire(tenantId: string): () => void {
    const n = this.open.get(tenantId) ?? 0;
    if (n >= this.perTenant) {
      throw new LedgerError("resource_exhausted", "too_many_streams", `at most ${this.perTenant} open streams per tenant`);
    }
    this.open.set(tenantId, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const m = (this.open.get(tenantId) ?? 1) - 1;
      if (m === 0) this.open.delete(tenantId);
      else this.open.set(tenantId, m);
    };
  }
}
