import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { getOption, hasOption } from "@bufbuild/protobuf";
import { http } from "../../../gen/google/api/annotations_pb.js";
import type { HttpRule } from "../../../gen/google/api/http_pb.js";
import { profile as profileOption } from "../../../gen/tally/rest/v1/options_pb.js";
import type { JsonProfile } from "../../../gen/tally/rest/v1/options_pb.js";
import type { PathTemplate } from "./path-template.js";
import { matchTemplate, parseTemplate, specificity } from "./path-template.js";

/** One REST binding of an RPC. */
export interface Route {
  readonly httpMethod: string;
  readonly template: PathTemplate;
  /** "" (no body), "*" (the whole request) or a top-level field name. */
  readonly body: string;
  /** "" (the whole response) or a top-level field name. */
  readonly responseBody: string;
  readonly service: DescService;
  readonly method: DescMethod;
  readonly profile: JsonProfile | undefined;
}

/** What a lookup found. */
export type RouteMatch =
  | { readonly kind: "match"; readonly route: Route; readonly bindings: ReadonlyMap<string, string> }
  | { readonly kind: "method_not_allowed"; readonly allow: readonly string[]; readonly routes: readonly Route[] }
  | { readonly kind: "not_found" };

/** Reads the google.api.http rules of every method of the services, additional bindings included. */
export function routesOf(services: Iterable<DescService>): Route[] {
  const routes: Route[] = [];
  for (const service of services) {
    const profile = hasOption(service, profileOption) ? getOption(service, profileOption) : undefined;
    for (const method of service.methods) {
      if (!hasOption(method, http)) continue;
      const rule = getOption(method, http);
      for (const r of [rule, ...rule.additionalBindings]) {
        routes.push(toRoute(r, service, method, profile));
      }
    }
  }
  return routes;
}

function toRoute(rule: HttpRule, service: DescService, method: DescMethod, profile: JsonProfile | undefined): Route {
  const p = rule.pattern;
  let httpMethod: string;
  let path: string;
  switch (p.case) {
    case "get":
    case "put":
    case "post":
    case "delete":
    case "patch":
      httpMethod = p.case.toUpperCase();
      path = p.value;
      break;
    case "custom":
      httpMethod = p.value.kind.toUpperCase();
      path = p.value.path;
      break;
    default:
      throw new Error(`${method.parent.typeName}.${method.name}: google.api.http rule without a pattern`);
  }
  if (rule.body !== "" && rule.body !== "*" && !method.input.fields.some((f) => f.name === rule.body)) {
    throw new Error(`${method.parent.typeName}.${method.name}: body "${rule.body}" is not a field of ${method.input.typeName}`);
  }
  return {
    httpMethod,
    template: parseTemplate(path),
    body: rule.body,
    responseBody: rule.responseBody,
    service,
    method,
    profile,
  };
}

/**
 * A lookup structure over routes. Among routes whose template matches the
 * path, the most specific wins (literal before `*` before `**`, segment by
 * segment); a path that matches only under other HTTP methods is 405.
 */
export class RouteTable {
  private readonly routes: readonly Route[];

  constructor(routes: readonly Route[]) {
    // Most specific first, so the first match is the winner; among equals, a
    // route with a verb first, or "/x/{id}" would swallow "/x/{id}:verb".
    this.routes = [...routes].sort(
      (a, b) =>
        compareSpecificity(specificity(a.template), specificity(b.template)) ||
        Number(b.template.verb !== undefined) - Number(a.template.verb !== undefined),
    );
    const seen = new Set<string>();
    for (const r of this.routes) {
      const key = `${r.httpMethod} ${r.template.segments.map((s) => (s.kind === "literal" ? s.value : s.kind)).join("/")}:${r.template.verb ?? ""}`;
      if (seen.has(key)) throw new Error(`two routes for ${r.httpMethod} ${r.template.source}`);
      seen.add(key);
    }
  }

  /** All routes, most specific first. */
  get all(): readonly Route[] {
    return this.routes;
  }

  /** Finds the route for a method and a raw (percent-encoded) path. Throws URIError on a malformed escape. */
  find(httpMethod: string, rawPath: string): RouteMatch {
    const segments = rawPath.slice(1).split("/");
    const allow = new Set<string>();
    const others: Route[] = [];
    for (const route of this.routes) {
      let segs = segments;
      const verb = route.template.verb;
      if (verb !== undefined) {
        const last = segs[segs.length - 1]!;
        if (!last.endsWith(`:${verb}`)) continue;
        segs = [...segs.slice(0, -1), last.slice(0, -(verb.length + 1))];
      }
      const m = matchTemplate(route.template, segs);
      if (!m) continue;
      if (route.httpMethod === httpMethod) return { kind: "match", route, bindings: m.bindings };
      allow.add(route.httpMethod);
      others.push(route);
    }
    if (allow.size > 0) return { kind: "method_not_allowed", allow: [...allow].sort(), routes: others };
    return { kind: "not_found" };
  }
}

function compareSpecificity(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return b.length - a.length;
}
