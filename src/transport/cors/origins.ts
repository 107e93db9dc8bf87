/**
 * Which browser origins may call Tally: any origin (`*`), or an exact list.
 *
 * Credentials here mean what the Fetch standard means by them: cookies,
 * HTTP authentication the browser remembers, TLS client certificates. A key
 * a page's script puts in `Authorization` (or Blacksheep's `Bs-*` headers) is
 * not one; it is an ordinary request header, allowed by the preflight in both
 * modes. So:
 * - `any` answers `Access-Control-Allow-Origin: *` and never allows
 *   credentials: any page may call, but only with a key it holds itself; the
 *   browser never attaches a cookie on its behalf.
 * - `list` echoes an origin of the list and allows credentials, so that a
 *   trusted front end on another origin can also send the one cookie Tally
 *   reads (Triport's session) with `credentials: "include"`.
 */
export type CorsOrigins =
  | { readonly kind: "any" }
  | { readonly kind: "list"; readonly origins: ReadonlySet<string> };

/**
 * Parses the configured origins (`--cors-origins`): `*` alone, or exact
 * origins (`scheme://host[:port]`, http or https). Case and a default port
 * are normalised the way browsers serialise an Origin header (and a lone
 * trailing `/` is tolerated); anything else that is not exactly an origin is
 * refused with a message naming the entry, so that a typo fails at start-up
 * instead of as a browser's opaque CORS error. Returns undefined for an empty
 * list: CORS off.
 */
export function parseCorsOrigins(entries: readonly string[]): CorsOrigins | undefined {
  const list = entries.map((e) => e.trim());
  if (list.length === 0) return undefined;
  if (list.includes("*")) {
    if (list.length > 1) throw new Error(`--cors-origins: "*" allows every origin and cannot be combined with others`);
    return { kind: "any" };
  }
  return { kind: "list", origins: new Set(list.map(exactOrigin)) };
}

/**
 * The Access-Control-Allow-Origin value for a request's Origin header, or
 * undefined when that origin is not allowed (or the request has none). The
 * header is compared as sent: browsers send the serialised origin, so no
 * spelling but the canonical one is ever matched.
 */
export function allowedOrigin(policy: CorsOrigins, origin: string | undefined): string | undefined {
  if (origin === undefined) return undefined;
  if (policy.kind === "any") return "*";
  return policy.origins.has(origin) ? origin : undefined;
}

/** One configured entry as the origin a browser would send, or a readable Error. */
function exactOrigin(entry: string): string {
  const refuse = (why: string) => new Error(`--cors-origins: "${entry}" is not an origin: ${why}`);
  if (entry === "") throw refuse("empty entry (two commas in a row?)");
  // Sandboxed frames, file: pages and redirects all send "null": allowing it allows them all.
  if (entry.toLowerCase() === "null") throw refuse(`"null" is what sandboxed and file: pages send, and cannot be trusted`);
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    throw refuse("write it as scheme://host[:port], for example https://app.example.com");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw refuse("only http and https origins are supported");
  if (url.hostname.includes("*")) throw refuse(`wildcards are not supported; list each origin, or use "*" alone`);
  if (url.username !== "" || url.password !== "") throw refuse("an origin has no user or password");
  // "https://x/" is a common way of writing https://x; a real path, query or fragment is not.
  const tail = entry.slice(entry.indexOf("//") + 2).replace(/^[^/?#]*/, "");
  if (tail !== "" && tail !== "/") throw refuse(`an origin has no path, query or fragment; did you mean "${url.origin}"?`);
  return url.origin;
}
