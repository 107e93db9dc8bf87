import { packageRoot } from "../version.js";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { gzipSync } from "node:zlib";

/** One file of the dashboard, ready to send. */
export interface DashboardFile {
  readonly body: Buffer;
  /** The same bytes gzip-compressed, for clients that accept it. */
  readonly gzip: Buffer;
  readonly contentType: string;
  /** A strong validator of the bytes (quoted, as it goes in ETag). */
  readonly etag: string;
}

/** The built dashboard: its page and its content-hashed assets. */
export interface DashboardBundle {
  /** The page served at /ui/: names the hashed assets, so it must be revalidated. */
  readonly index: DashboardFile;
  /** By file name under /ui/assets/ (`app-<hash>.js`, `styles-<hash>.css`): never change, cached for good. */
  readonly assets: ReadonlyMap<string, DashboardFile>;
  /** How long the build took, in ms. */
  readonly buildMs: number;
}

/** The dashboard's source folder: `ui/` in Tally's package folder (a checkout, or an installed package). */
export const DEFAULT_UI_ROOT = join(packageRoot(), "ui");

const CONTENT_TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".html": "text/html; charset=utf-8",
  ".svg": "image/svg+xml",
};

/**
 * Bundles the dashboard (ui/src/main.ts and ui/styles.css) with esbuild into
 * memory, adds ui/icon.svg, and fills the hashed names into ui/index.html.
 *
 * Built in the server, not by an install step: the bundle can never be older
 * than the sources it is served with (no stale folder after a `git pull`),
 * nothing is written beside the code, and a fresh clone serves /ui/ after
 * `npm ci && npm start` alone. It costs about 0.15 s once per process, on
 * the first /ui/ request (see dashboard.ts). esbuild is loaded only then,
 * so a server that never serves the dashboard never loads it.
 */
export async function buildDashboard(root: string = DEFAULT_UI_ROOT): Promise<DashboardBundle> {
  const started = performance.now();
  const esbuild = await import("esbuild");
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: { app: join(root, "src", "main.ts"), styles: join(root, "styles.css") },
    bundle: true,
    write: false,
    // Not written anywhere: esbuild only needs it to name the outputs.
    outdir: join(root, "assets"),
    entryNames: "[name]-[hash]",
    format: "esm",
    platform: "browser",
    target: ["es2022"],
    minify: true,
    // Licences stay findable in node_modules; the bundle carries none of the comments.
    legalComments: "none",
    logLevel: "silent",
  });
  const assets = new Map<string, DashboardFile>();
  for (const out of result.outputFiles) assets.set(basename(out.path), fileOf(basename(out.path), Buffer.from(out.contents)));
  const named = (prefix: string, ext: string): string => {
    const name = [...assets.keys()].find((n) => n.startsWith(prefix) && n.endsWith(ext));
    if (name === undefined) throw new Error(`the dashboard build made no ${prefix}*${ext}`);
    return name;
  };
  // The icon is no module: hashed here, so that it is cached like the rest (and no /favicon.ico is asked for).
  const icon = await readFile(join(root, "icon.svg"));
  assets.set(`icon-${createHash("sha256").update(icon).digest("hex").slice(0, 8).toUpperCase()}.svg`, fileOf("icon.svg", icon));
  let html = await readFile(join(root, "index.html"), "utf8");
  for (const [token, name] of [
    ["%APP_JS%", named("app-", ".js")],
    ["%STYLES_CSS%", named("styles-", ".css")],
    ["%ICON_SVG%", named("icon-", ".svg")],
  ] as const) {
    if (!html.includes(token)) throw new Error(`ui/index.html lacks ${token}`);
    html = html.replaceAll(token, `assets/${name}`);
  }
  return { index: fileOf("index.html", Buffer.from(html)), assets, buildMs: performance.now() - started };
}

function fileOf(name: string, body: Buffer): DashboardFile {
  const ext = name.slice(name.lastIndexOf("."));
  const contentType = CONTENT_TYPES[ext];
  if (contentType === undefined) throw new Error(`no content type for ${name}`);
  const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
  return { body, gzip: gzipSync(body, { level: 9 }), contentType, etag };
}
