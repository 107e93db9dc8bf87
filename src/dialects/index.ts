import type { DialectFactory } from "./dialect.js";
import { triportDialect } from "./triport/index.js";
import { threeplguysDialect } from "./threeplguys/index.js";
import { blacksheepDialect } from "./blacksheep/index.js";
import { frontierDialect } from "./frontier/index.js";
import { metronomeDialect } from "./metronome/index.js";

// Every dialect folder has one layout, mirroring the Dialect contract in
// dialect.ts, so a reader finds the same part in the same file in each:
//   index.ts     the DialectFactory: wires the other files into a Dialect
//   service.ts   the handlers of its services (and their REST streamers, if any)
//   auth.ts      its authenticators, their errors, and its credential kinds
//   envelope.ts  its error envelope writer
//   money.ts     optional: conversions between ledger units and the vendor's
// A folder imports the contract, the domain, services helpers and gen, never
// src/transport or another dialect, which is what lets one be deleted alone
// (test/layering.test.ts checks the first, test/dialect-removal.test.ts the
// rest and the layout).

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
