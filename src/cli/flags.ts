import { parseArgs } from "node:util";
import { nearest } from "./suggest.js";

/** One flag of a command, as `node:util` parseArgs takes it, with its help text. */
export interface FlagSpec {
  readonly type: "string" | "boolean";
  readonly multiple?: boolean;
  readonly short?: string;
  /** Placeholder of the value in help (`FILE`, `ID`); string flags only. */
  readonly value?: string;
  readonly help: string;
}

/** A command's flags by name (without the leading dashes). */
export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

/** Parsed flag values by name, as parseArgs returns them. */
export type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/**
 * A mistake in how the command was called: printed with a hint and exit
 * code 2 (usage), unlike a failure of the command itself (exit 1).
 */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** --db and --database, taken by every command that opens the store. */
export const STORE_FLAGS = {
  db: { type: "string", value: "FILE", help: "SQLite database file (env TALLY_DB, default tally.db)" },
  database: { type: "string", value: "URL", help: "postgres://… : use PostgreSQL instead of SQLite (env DATABASE_URL)" },
} as const satisfies FlagSpecs;

/**
 * Parses `args` against `specs`. An unknown flag is a UsageError naming the
 * nearest known flag (`unknown option --prot; did you mean --port?`), found
 * from parseArgs' own tokens, so that what counts as a flag is exactly what
 * parseArgs would reject, on every Node version (its message differs).
 */
export function parseFlags(
  specs: FlagSpecs,
  args: readonly string[],
  opts: { positionals?: boolean } = {},
): { values: FlagValues; positionals: string[] } {
  const options = Object.fromEntries(
    Object.entries(specs).map(([name, s]) => [name, { type: s.type, ...(s.multiple ? { multiple: true } : {}), ...(s.short ? { short: s.short } : {}) }]),
  );
  const { tokens } = parseArgs({ args: [...args], options, strict: false, allowPositionals: true, tokens: true });
  for (const t of tokens) {
    if (t.kind !== "option" || t.name in specs) continue;
    const known = Object.keys(specs);
    const guess = t.rawName.startsWith("--") ? nearest(t.name, known) : undefined;
    throw new UsageError(`unknown option ${t.rawName}${guess === undefined ? "" : `; did you mean --${guess}?`}`);
  }
  try {
    const { values, positionals } = parseArgs({ args: [...args], options, strict: true, allowPositionals: opts.positionals ?? false });
    return { values: values as FlagValues, positionals };
  } catch (e) {
    // parseArgs' own complaints (a missing value, a stray positional) are usage errors too.
    if ((e as { code?: unknown }).code?.toString().startsWith("ERR_PARSE_ARGS")) throw new UsageError((e as Error).message);
    throw e;
  }
}

/** The value of a string flag, or undefined. */
export function str(values: FlagValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}

/** The values of a repeatable string flag ([] when absent). */
export function strs(values: FlagValues, name: string): string[] {
  const v = values[name];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : typeof v === "string" ? [v] : [];
}

/** Whether a boolean flag was given. */
export function bool(values: FlagValues, name: string): boolean {
  return values[name] === true;
}

/** The value of a flag the command cannot do without. */
export function required(values: FlagValues, name: string): string {
  const v = str(values, name);
  if (v === undefined || v === "") throw new UsageError(`--${name} is required`);
  return v;
}
