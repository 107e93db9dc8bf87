import type { DialectFactory } from "./dialect.js";
import { triportDialect } from "./triport/index.js";
import { threeplguysDialect } from "./threeplguys/index.js";
import { blacksheepDialect } from "./blacksheep/index.js";
import { frontierDialect } from "./frontier/index.js";
import { metronomeDialect } from "./metronome/index.js";

/**
 * Every dialect Tally ships, by name. Each is switched on by default; the
 * `--dialects` flag picks a subset. Removing a dialect is removing its line
 * here and its folder.
 */
export const DIALECTS: ReadonlyMap<string, DialectFactory> = new Map<string, DialectFactory>([
  ["triport", triportDialect],
  ["blacksheep", blacksheepDialect],
  ["frontier", frontierDialect],
  ["3plguys", threeplguysDialect],
  ["metronome", metronomeDialect],
]);
