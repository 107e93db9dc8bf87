import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

// The folders' import rules, checked on the source: imports point inward.
const SRC = join(import.meta.dirname, "..", "src");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
}

/** Every relative import of a file, resolved to a path under src/ (or "gen/..."). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/from\s+["'](\.{1,2}\/[^"']+)["']/g)].map((m) => relative(SRC, join(file, "..", m[1]!)).replaceAll("\\", "/"));
}

describe("layering", () => {
  it("dialects import no transport code: the transport imports the dialect contract", () => {
    const offenders = sources(join(SRC, "dialects")).flatMap((f) => importsOf(f).filter((i) => i.startsWith("transport/")).map((i) => `${relative(SRC, f)} → ${i}`));
    expect(offenders).toEqual([]);
  });

  it("the domain imports nothing of ours outside the domain (generated code aside)", () => {
    const offenders = sources(join(SRC, "domain")).flatMap((f) =>
      importsOf(f)
        .filter((i) => !i.startsWith("domain/") && !i.startsWith("../gen/"))
        .map((i) => `${relative(SRC, f)} → ${i}`),
    );
    expect(offenders).toEqual([]);
  });

  it("the domain's consumers take their own port, not the whole store (domain/store.ts is for stores to implement)", () => {
    const offenders = sources(join(SRC, "domain")).flatMap((f) =>
      importsOf(f)
        .filter((i) => i === "domain/store.js")
        .map((i) => `${relative(SRC, f)} → ${i}`),
    );
    expect(offenders).toEqual([]);
  });
});
