/**
 * google.api.http path templates:
 *
 *   Template = "/" Segments [ ":" Verb ] ;
 *   Segments = Segment { "/" Segment } ;
 *   Segment  = "*" | "**" | LITERAL | Variable ;
 *   Variable = "{" FieldPath [ "=" Segments ] "}" ;
 *
 * `{x}` means `{x=*}`; `**` may only be last. A single-segment variable is
 * percent-decoded fully; a multi-segment one keeps `%2F` (and `%2f`) so that an
 * escaped slash stays distinguishable from a separator.
 */

/** One segment of a compiled template. */
export type Segment = { readonly kind: "literal"; readonly value: string } | { readonly kind: "star" } | { readonly kind: "deep" };

/** A variable: the field it binds and the segments it spans. */
export interface Variable {
  readonly fieldPath: readonly string[];
  readonly start: number;
  /** Exclusive end; undefined when it runs to the end of the path (`**`). */
  readonly end: number | undefined;
}

/** A parsed template. */
export interface PathTemplate {
  readonly source: string;
  readonly segments: readonly Segment[];
  readonly variables: readonly Variable[];
  readonly verb: string | undefined;
}

/** Thrown for a template the proto declares wrongly: a startup error, never a request error. */
export class TemplateError extends Error {
  override readonly name = "TemplateError";
}

/** Parses a template, refusing anything outside the grammar. */
export function parseTemplate(source: string): PathTemplate {
  if (!source.startsWith("/")) throw new TemplateError(`path template must start with "/": ${source}`);
  let body = source.slice(1);
  let verb: string | undefined;
  // The verb is the part after the last ":" that is outside braces.
  const lastColon = lastColonOutsideBraces(body);
  if (lastColon >= 0) {
    verb = body.slice(lastColon + 1);
    body = body.slice(0, lastColon);
    if (!/^[A-Za-z0-9_.~-]+$/.test(verb)) throw new TemplateError(`bad verb in ${source}`);
  }
  const segments: Segment[] = [];
  const variables: Variable[] = [];
  let i = 0;
  const parts = splitOutsideBraces(body);
  for (const part of parts) {
    if (part.startsWith("{")) {
      if (!part.endsWith("}")) throw new TemplateError(`unclosed variable in ${source}`);
      const inner = part.slice(1, -1);
      const eq = inner.indexOf("=");
      const path = eq < 0 ? inner : inner.slice(0, eq);
      if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(path)) throw new TemplateError(`bad field path in ${source}`);
      const sub = eq < 0 ? ["*"] : inner.slice(eq + 1).split("/");
      const start = i;
      for (const s of sub) {
        if (s.includes("{")) throw new TemplateError(`nested variable in ${source}`);
        segments.push(literalOrWild(s, source));
        i++;
      }
      const deep = sub[sub.length - 1] === "**";
      variables.push({ fieldPath: path.split("."), start, end: deep ? undefined : i });
    } else {
      segments.push(literalOrWild(part, source));
      i++;
    }
  }
  segments.forEach((s, k) => {
    if (s.kind === "deep" && k !== segments.length - 1) throw new TemplateError(`"**" must be the last segment in ${source}`);
  });
  return { source, segments, variables, verb };
}

/** The specificity of a template, compared segment by segment: literal before `*` before `**`. */
export function specificity(t: PathTemplate): number[] {
  return t.segments.map((s) => (s.kind === "literal" ? 0 : s.kind === "star" ? 1 : 2));
}

/** The outcome of matching a request path. */
export type MatchResult = { readonly bindings: ReadonlyMap<string, string> } | undefined;

/**
 * Matches raw (still percent-encoded) path segments, the verb already split
 * off. Returns the variable bindings, decoded, or undefined. Throws URIError
 * for a malformed escape.
 */
export function matchTemplate(t: PathTemplate, rawSegments: readonly string[]): MatchResult {
  const segs = t.segments;
  const deep = segs.length > 0 && segs[segs.length - 1]!.kind === "deep";
  if (deep ? rawSegments.length < segs.length - 1 : rawSegments.length !== segs.length) return undefined;
  for (let k = 0; k < segs.length; k++) {
    const s = segs[k]!;
    if (s.kind === "deep") break;
    const raw = rawSegments[k]!;
    if (s.kind === "literal") {
      if (decodeKeepSlash(raw) !== s.value) return undefined;
    } else if (raw === "") {
      return undefined;
    }
  }
  const bindings = new Map<string, string>();
  for (const v of t.variables) {
    const end = v.end ?? rawSegments.length;
    const slice = rawSegments.slice(v.start, end);
    const single = v.end !== undefined && v.end - v.start === 1;
    bindings.set(v.fieldPath.join("."), single ? decodeURIComponent(slice[0]!) : slice.map(decodeKeepSlash).join("/"));
  }
  return { bindings };
}

/** Decodes every escape except an encoded slash. */
function decodeKeepSlash(s: string): string {
  return s
    .split(/(%2[Ff])/)
    .map((part) => (/^%2[Ff]$/.test(part) ? part : decodeURIComponent(part)))
    .join("");
}

function literalOrWild(s: string, source: string): Segment {
  if (s === "*") return { kind: "star" };
  if (s === "**") return { kind: "deep" };
  if (s === "" || !/^[A-Za-z0-9_.~!$&'()+,;=@-]+$/.test(s)) throw new TemplateError(`bad literal "${s}" in ${source}`);
  return { kind: "literal", value: s };
}

function splitOutsideBraces(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of s) {
    if (ch === "{") depth++;
    if (ch === "}") depth--;
    if (ch === "/" && depth === 0) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function lastColonOutsideBraces(s: string): number {
  let depth = 0;
  let last = -1;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === "{") depth++;
    else if (ch === "}") depth--;
    else if (ch === ":" && depth === 0) last = i;
  }
  return last;
}
