/**
 * What opening a store did to its schema: the version (the highest migration
 * applied; 0 for an empty database) before and after, and the migrations it
 * applied. `tally migrate` prints it.
 */
export interface SchemaVersions {
  readonly before: number;
  readonly after: number;
  readonly applied: readonly number[];
}

/** The report for migrations `known`, of which `done` had been applied before. */
export function reportVersions(done: ReadonlySet<number>, known: readonly { version: number }[]): SchemaVersions {
  const before = Math.max(0, ...done);
  const applied = known.map((m) => m.version).filter((v) => !done.has(v));
  return { before, after: Math.max(before, ...applied), applied };
}
