/**
 * The object without its undefined fields: how optional settings are passed on
 * under exactOptionalPropertyTypes without one `...(x === undefined ? {} : { x })` each.
 */
export function definedOnly<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as never;
}
