import type { Metric, Registry } from "prom-client";

/**
 * One labelled series of a histogram: count, sum and per-bucket counts,
 * updated with plain arithmetic. A caller keeps the Series it records into
 * (per procedure, protocol and code, say), so that a call costs no label
 * hashing or validation, which prom-client's own Histogram does on every
 * observation, even through a child from `labels()`.
 */
export class Series {
  count = 0;
  sum = 0;
  /** Observations per bucket, not cumulative (the export accumulates); the last is +Inf. */
  readonly perBucket: Float64Array;

  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly bounds: readonly number[],
  ) {
    this.perBucket = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    this.count++;
    this.sum += value;
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    this.perBucket[i]!++;
  }
}

/** Options of {@link SeriesFamily}. */
export interface SeriesFamilyOptions {
  /** The histogram's name (`…_seconds`). */
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  /** Upper bounds, ascending. */
  readonly buckets: readonly number[];
  /** Also export the count as a counter of this name (`…_total`). */
  readonly counter?: { readonly name: string; readonly help: string };
}

/**
 * A histogram (and optionally the counter of its counts) whose series are
 * {@link Series} objects, exported through a prom-client registry: prom-client
 * formats it with the process metrics and the rest, from `get()` as its
 * own metrics provide it.
 */
export class SeriesFamily {
  readonly #series = new Map<string, Series>();

  constructor(
    readonly options: SeriesFamilyOptions,
    registry: Registry,
  ) {
    registry.registerMetric(this.#metric(options.name, options.help, "histogram", () => this.#histogramValues()));
    if (options.counter) {
      registry.registerMetric(this.#metric(options.counter.name, options.counter.help, "counter", () => this.#counterValues()));
    }
  }

  /** The series of these label values (in labelNames order), created on first use. Callers cache it. */
  series(values: readonly string[]): Series {
    const key = values.join("\u0000");
    let s = this.#series.get(key);
    if (s === undefined) {
      const labels: Record<string, string> = {};
      this.options.labelNames.forEach((n, i) => (labels[n] = values[i]!));
      s = new Series(labels, this.options.buckets);
      this.#series.set(key, s);
    }
    return s;
  }

  #histogramValues() {
    const { name, buckets } = this.options;
    const values: { value: number; labels: Record<string, string | number>; metricName: string }[] = [];
    for (const s of this.#series.values()) {
      let acc = 0;
      buckets.forEach((le, i) => {
        acc += s.perBucket[i]!;
        values.push({ value: acc, labels: { ...s.labels, le }, metricName: `${name}_bucket` });
      });
      values.push({ value: s.count, labels: { ...s.labels, le: "+Inf" }, metricName: `${name}_bucket` });
      values.push({ value: s.sum, labels: { ...s.labels }, metricName: `${name}_sum` });
      values.push({ value: s.count, labels: { ...s.labels }, metricName: `${name}_count` });
    }
    return values;
  }

  #counterValues() {
    return [...this.#series.values()].map((s) => ({ value: s.count, labels: { ...s.labels } }));
  }

  /** A metric object in the shape prom-client's Registry reads (name, help, type, aggregator, get). */
  #metric(name: string, help: string, type: "histogram" | "counter", values: () => unknown[]): Metric {
    const metric = {
      name,
      help,
      type,
      aggregator: "sum" as const,
      get: async () => ({ name, help, type, aggregator: "sum" as const, values: values() }),
    };
    return metric as unknown as Metric;
  }
}
