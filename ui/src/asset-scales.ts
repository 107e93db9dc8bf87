import type { Asset } from "../../gen/tally/ledger/v1/ledger_pb.js";

/**
 * The decimal places of each asset, from ListAssets and from every balance
 * seen (balances carry their scale). Journal entries do not, so they are
 * formatted with what is known here.
 */
export class AssetScales {
  private readonly scales = new Map<string, number>();
  private loading: Promise<void> | undefined;

  constructor(private readonly list: () => Promise<readonly Asset[]>) {}

  /** Reads the tenant's assets (again). */
  load(): Promise<void> {
    this.loading ??= this.list()
      .then((assets) => {
        for (const a of assets) this.scales.set(a.code, a.scale);
      })
      .finally(() => (this.loading = undefined));
    return this.loading;
  }

  learn(code: string, scale: number): void {
    this.scales.set(code, scale);
  }

  get(code: string): number | undefined {
    return this.scales.get(code);
  }

  /** Every known asset code, sorted. */
  codes(): string[] {
    return [...this.scales.keys()].sort();
  }

  /** The scale, reading the assets again once when it is not known yet. */
  async resolve(code: string): Promise<number | undefined> {
    if (!this.scales.has(code)) await this.load();
    return this.scales.get(code);
  }
}
