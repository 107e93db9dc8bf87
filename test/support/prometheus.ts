/** One sample of the Prometheus text format. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A metric family: its TYPE, HELP and samples. */
export interface Family {
  readonly name: string;
  readonly type: string;
  readonly help: string;
  readonly samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/**
 * A strict parser of the Prometheus text exposition format (version 0.0.4),
 * as a scraper reads it: HELP and TYPE before a family's samples, each
 * sample a known family's (histograms: `_bucket` with `le`, `_sum`,
 * `_count`), label values with their escapes, values as Go floats. Throws
 * on anything a Prometheus server would refuse, including a series given
 * twice.
 */
export function parsePrometheus(text: string): Map<string, Family> {
  if (!text.endsWith("\n")) throw new Error("the exposition must end with a newline");
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  const lines = text.split("\n");
  lines.pop();
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${line}`;
    if (line === "") return;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!NAME.test(name)) throw new Error(`bad metric name, ${where}`);
      const f = families.get(name) ?? { name, type: "untyped", help: "", samples: [] };
      if (f.samples.length > 0) throw new Error(`${kind} after the samples of ${name}, ${where}`);
      if (kind === "TYPE") {
        if (!TYPES.has(rest)) throw new Error(`bad type, ${where}`);
        families.set(name, { ...f, type: rest });
      } else families.set(name, { ...f, help: rest });
      return;
    }
    const s = parseSample(line, where);
    const family = familyOf(families, s.name);
    if (family === undefined) throw new Error(`sample of no declared family, ${where}`);
    if (family.type === "histogram") {
      if (s.name === `${family.name}_bucket` && s.labels.le === undefined) throw new Error(`bucket without le, ${where}`);
    }
    const key = `${s.name}{${Object.entries(s.labels).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(",")}}`;
    if (seen.has(key)) throw new Error(`series given twice: ${key}`);
    seen.add(key);
    family.samples.push(s);
  });
  return families;
}

function familyOf(families: Map<string, Family>, sample: string): Family | undefined {
  const direct = families.get(sample);
  if (direct !== undefined) return direct;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!sample.endsWith(suffix)) continue;
    const f = families.get(sample.slice(0, -suffix.length));
    if (f !== undefined && (f.type === "histogram" || f.type === "summary")) return f;
  }
  return undefined;
}

function parseSample(line: string, where: string): Sample {
  let i = 0;
  while (i < line.length && line[i] !== "{" && line[i] !== " ") i++;
  const name = line.slice(0, i);
  if (!NAME.test(name)) throw new Error(`bad sample name, ${where}`);
  const labels: Record<string, string> = {};
  if (line[i] === "{") {
    i++;
    while (line[i] !== "}") {
      const eq = line.indexOf("=", i);
      if (eq < 0) throw new Error(`bad labels, ${where}`);
      const label = line.slice(i, eq);
      if (!LABEL.test(label)) throw new Error(`bad label name "${label}", ${where}`);
      if (line[eq + 1] !== '"') throw new Error(`unquoted label value, ${where}`);
      let j = eq + 2;
      let value = "";
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === "\\") {
          const next = line[++j];
          if (next === "n") value += "\n";
          else if (next === "\\" || next === '"') value += next;
          else throw new Error(`bad escape in a label value, ${where}`);
        } else value += line[j];
      }
      if (j >= line.length) throw new Error(`unterminated label value, ${where}`);
      if (label in labels) throw new Error(`label ${label} twice, ${where}`);
      labels[label] = value;
      i = j + 1;
      if (line[i] === ",") i++;
      else if (line[i] !== "}") throw new Error(`bad labels, ${where}`);
    }
    i++;
  }
  if (line[i] !== " ") throw new Error(`no value, ${where}`);
  const parts = line.slice(i + 1).split(" ");
  if (parts.length > 2 || (parts.length === 2 && !/^-?\d+$/.test(parts[1]!))) throw new Error(`bad value or timestamp, ${where}`);
  const raw = parts[0]!;
  // Go's strconv.ParseFloat, which Prometheus uses: special values in any case (prom-client writes "Nan").
  const special = /^([-+]?)(inf|infinity|nan)$/i.exec(raw);
  let value: number;
  if (special) value = special[2]!.toLowerCase() === "nan" ? NaN : special[1] === "-" ? -Infinity : Infinity;
  else if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw)) value = Number(raw);
  else throw new Error(`bad value "${raw}", ${where}`);
  return { name, labels, value };
}

/** The value of one sample (labels matching exactly those given, others ignored), or 0 when absent. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return 0;
}

/** The sum of every sample of `name` whose labels include `labels`. */
export function sumOf(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  let n = 0;
  for (const f of families.values()) {
    for (const s of f.samples) if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) n += s.value;
  }
  return n;
}
