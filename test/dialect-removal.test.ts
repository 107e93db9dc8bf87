import { readFileSync, readdirSync } from "node:fs";
import { basename, join, relative, resolve } from "node:path";
import ts from "typescript";
import { beforeAll, describe, expect, it } from "vitest";

// src/dialects/dialect.ts promises that deleting a dialect's folder and its
// lines in src/dialects/index.ts leaves the core intact. This compiles the
// whole project (src, gen, test, bench, as tsconfig.json has it) in-process
// once per dialect, with a compiler host that serves an index.ts without the
// dialect and reports the folder as absent, so the working tree is never
// touched. Nothing outside test/ may then fail, and in test/ only the
// dialect's own tests (the files named after it).
//
// Cost: one full check of the project and one re-check of index.ts's
// importers (see beforeAll); after that TypeScript's own incremental builder
// re-checks only what each removal can affect (index.ts, and whatever
// imported a removed file). Source files are parsed once and shared.
//
// The folders' shared layout (see src/dialects/index.ts) is checked here too,
// since it is what makes "delete the folder" the whole removal.

const ROOT = resolve(import.meta.dirname, "..");
const DIALECTS_DIR = join(ROOT, "src", "dialects");
const INDEX = join(DIALECTS_DIR, "index.ts");
const INDEX_TEXT = readFileSync(INDEX, "utf8");

/** The files every dialect folder has, and the ones it may have. */
const REQUIRED_FILES = ["auth.ts", "envelope.ts", "index.ts", "service.ts"];
const OPTIONAL_FILES = ["money.ts"];

/** A dialect as src/dialects/index.ts lists it. */
interface Listed {
  /** Its key in DIALECTS ("3plguys"). */
  readonly name: string;
  /** Its folder under src/dialects ("threeplguys"). */
  readonly folder: string;
}

/** Joins each `import { x } from "./folder/index.js"` to its `["name", x]` entry. */
function listedDialects(indexText: string): Listed[] {
  const folderOf = new Map([...indexText.matchAll(/^import \{ (\w+) \} from "\.\/([\w-]+)\/index\.js";$/gm)].map((m) => [m[1]!, m[2]!]));
  return [...indexText.matchAll(/^\s*\["([^"]+)", (\w+)\],?$/gm)].map((m) => {
    const folder = folderOf.get(m[2]!);
    if (folder === undefined) throw new Error(`DIALECTS entry ${m[1]} has no import of ./<folder>/index.js`);
    return { name: m[1]!, folder };
  });
}

/** index.ts without a dialect's two lines: its import and its DIALECTS entry. */
function withoutDialect(indexText: string, d: Listed): string {
  const lines = indexText.split("\n");
  const isItsLine = (l: string) => l.includes(`from "./${d.folder}/`) || l.includes(`["${d.name}",`);
  const kept = lines.filter((l) => !isItsLine(l));
  if (lines.length - kept.length !== 2) throw new Error(`expected ${d.name} to be one import line and one DIALECTS line in index.ts`);
  return kept.join("\n");
}

const DIALECTS = listedDialects(INDEX_TEXT);

function isInside(dir: string, file: string): boolean {
  return file === dir || file.startsWith(dir + "/");
}

function projectPath(file: string): string {
  return relative(ROOT, file).replaceAll("\\", "/");
}

const config = (() => {
  const parsed = ts.getParsedCommandLineOfConfigFile(join(ROOT, "tsconfig.json"), undefined, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
    },
  });
  if (!parsed || parsed.errors.length > 0) throw new Error("tsconfig.json does not parse");
  return { fileNames: parsed.fileNames, options: { ...parsed.options, noEmit: true } };
})();

/** Parsed once for every program (and so bound once): only index.ts differs between them. */
const sourceFiles = new Map<string, ts.SourceFile>();

/**
 * A compiler host over the real files, except that `hiddenDir` does not exist
 * and index.ts reads as `indexText`. Module resolution goes through the same
 * system, so an import of a hidden file fails as it would after a deletion.
 */
function hostFor(hiddenDir: string | undefined, indexText: string): ts.CompilerHost {
  const hidden = (p: string) => hiddenDir !== undefined && isInside(hiddenDir, p);
  const system: ts.System = {
    ...ts.sys,
    fileExists: (p) => !hidden(p) && ts.sys.fileExists(p),
    directoryExists: (p) => !hidden(p) && ts.sys.directoryExists(p),
    getDirectories: (p) => (hidden(p) ? [] : ts.sys.getDirectories(p).filter((d) => !hidden(join(p, d)))),
    readFile: (p, encoding) => (hidden(p) ? undefined : p === INDEX ? indexText : ts.sys.readFile(p, encoding)),
  };
  // The incremental host stamps each source file with a hash of its text,
  // which is how the builder tells a changed file from an unchanged one.
  const host = ts.createIncrementalCompilerHost(config.options, system);
  const parse = host.getSourceFile.bind(host);
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreateNewSourceFile) => {
    if (hidden(fileName)) return undefined;
    if (fileName === INDEX) return parse(fileName, languageVersion, onError, shouldCreateNewSourceFile);
    let sf = sourceFiles.get(fileName);
    if (sf === undefined) {
      sf = parse(fileName, languageVersion, onError, shouldCreateNewSourceFile);
      if (sf !== undefined) sourceFiles.set(fileName, sf);
    }
    return sf;
  };
  return host;
}

function build(roots: readonly string[], host: ts.CompilerHost, old?: ts.SemanticDiagnosticsBuilderProgram): ts.SemanticDiagnosticsBuilderProgram {
  return ts.createSemanticDiagnosticsBuilderProgram(roots, config.options, host, old);
}

/** Every error of a program (checking what the builder has not yet), by project path. */
function errorsOf(program: ts.SemanticDiagnosticsBuilderProgram): Record<string, string[]> {
  const all = [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...program.getSyntacticDiagnostics(),
    ...program.getSemanticDiagnostics(),
  ];
  const out: Record<string, string[]> = {};
  for (const d of all) {
    const where = d.file ? projectPath(d.file.fileName) : "(project)";
    const at = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
    const text = `${at ? `${at.line + 1}:${at.character + 1} ` : ""}TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, " ")}`;
    (out[where] ??= []).push(text);
  }
  return out;
}

/** A dialect's own tests: the test files named after it ("dialect-3plguys", "triport-stream-cap"). */
function isOwnTest(path: string, d: Listed): boolean {
  const name = basename(path);
  return path.startsWith("test/") && name.endsWith(".test.ts") && (name.includes(d.name) || name.includes(d.folder));
}

function only(errors: Record<string, string[]>, keep: (path: string) => boolean): Record<string, string[]> {
  return Object.fromEntries(Object.entries(errors).filter(([path]) => keep(path)));
}

describe("dialect folders", () => {
  const folders = readdirSync(DIALECTS_DIR, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();

  it("share one layout: index.ts, service.ts, auth.ts, envelope.ts, optional money.ts", () => {
    const layouts = Object.fromEntries(folders.map((f) => [f, readdirSync(join(DIALECTS_DIR, f)).sort()]));
    const expected = Object.fromEntries(
      folders.map((f) => [f, [...REQUIRED_FILES, ...OPTIONAL_FILES.filter((o) => layouts[f]!.includes(o))].sort()]),
    );
    expect(layouts).toEqual(expected);
  });

  it("are each listed once in src/dialects/index.ts", () => {
    expect(DIALECTS.map((d) => d.folder).sort()).toEqual(folders);
    expect(new Set(DIALECTS.map((d) => d.name)).size).toBe(DIALECTS.length);
  });
});

describe("removing a dialect", () => {
  let baselineErrors: Record<string, string[]>;
  /** The checked project, with index.ts's declaration signature already computed (see beforeAll). */
  let base: ts.SemanticDiagnosticsBuilderProgram;

  beforeAll(() => {
    const first = build(config.fileNames, hostFor(undefined, INDEX_TEXT));
    baselineErrors = errorsOf(first);
    // A first builder records file hashes as signatures; only on a change
    // does it compute a file's declaration signature. Were index.ts's first
    // change a removal, its hash-vs-declaration mismatch would re-check every
    // file that imports it, transitively, for each dialect. One edit that
    // keeps its declarations pays for that once. Only the speed depends on
    // this: the builder re-checks whatever it cannot prove unaffected.
    base = build(config.fileNames, hostFor(undefined, INDEX_TEXT + "\n"), first);
    errorsOf(base);
  });

  it("starts from a project that compiles", () => {
    expect(baselineErrors).toEqual({});
  });

  it.each(DIALECTS)("leaves src/ compiling without $name, and fails no test but its own", (d) => {
    const dir = join(DIALECTS_DIR, d.folder);
    const program = build(
      config.fileNames.filter((f) => !isInside(dir, f)),
      hostFor(dir, withoutDialect(INDEX_TEXT, d)),
      base,
    );
    // The dialect is really gone from what was compiled.
    expect(program.getSourceFiles().filter((sf) => isInside(dir, sf.fileName))).toEqual([]);
    expect(program.getSourceFile(INDEX)!.text).not.toContain(`./${d.folder}/`);

    const errors = errorsOf(program);
    expect(only(errors, (p) => !p.startsWith("test/"))).toEqual({});
    expect(only(errors, (p) => p.startsWith("test/") && !isOwnTest(p, d))).toEqual({});
  });

  // The removals above trust the builder to re-check every file an edit of
  // index.ts can break. Here index.ts's export changes type: its importer
  // app.ts must lose its cached "no errors" and fail. (Only app.ts is checked,
  // which keeps this cheap; the builder first takes in what the edit affects.)
  it("would notice a core that stops compiling: an importer of index.ts is re-checked", () => {
    const annotation = "ReadonlyMap<string, DialectFactory> = new Map<string, DialectFactory>";
    expect(INDEX_TEXT).toContain(annotation);
    const broken = INDEX_TEXT.replace(annotation, "ReadonlyMap<string, number> = new Map<string, any>");
    const program = build(config.fileNames, hostFor(undefined, broken), base);
    while (program.getSemanticDiagnosticsOfNextAffectedFile()) {
      // Each call checks one changed file and invalidates what depends on it.
    }
    const app = program.getSourceFile(join(ROOT, "src", "app.ts"));
    expect(app).toBeDefined();
    expect(program.getSemanticDiagnostics(app).length).toBeGreaterThan(0);
  });
});
