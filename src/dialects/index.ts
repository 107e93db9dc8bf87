import type { DialectFactory } from "./dialect.js";

/**
 * Every dialect Tally ships, by name. Each is switched on by default; the
 * `--dialects` flag picks a subset. Removing a dialect is removing its line
 * here and its folder.
 */
export const DIALECTS: ReadonlyMap<string, DialectFactory> = new Map<string, DialectFactory>([]);
