import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

let cached: { root: string; version: string } | undefined;

/**
 * Tally's version, from its package.json: the nearest one up from this file
 * named "tally". Searched rather than at a fixed `..` because this file
 * runs from src/ (tsx), dist/src/ (compiled) and node_modules/tally/dist/src/
 * (installed), each at a different depth. For `tally --version`, and for
 * anything else that reports the version (a start-up log line).
 */
export function packageVersion(): string {
  return findPackage().version;
}

/**
 * Tally's package folder (the checkout, or node_modules/tally): where ui/
 * is, whether this runs from src/, dist/src/ or an installed package.
 */
export function packageRoot(): string {
  return findPackage().root;
}

function findPackage(): { root: string; version: string } {
  if (cached !== undefined) return cached;
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: unknown; version?: unknown };
      if (pkg.name === "tally" && typeof pkg.version === "string") return (cached = { root: dir, version: pkg.version });
    } catch {
      // No package.json here (or not ours): look further up.
    }
    if (dirname(dir) === dir) throw new Error("tally's package.json was not found");
  }
}
