#!/usr/bin/env node
// The `tally` command: the compiled CLI (dist/, built by `npm run build`, which
// `prepare` runs on `npm ci` and `npm pack`), run by plain node without tsx.
import { existsSync } from "node:fs";

const main = new URL("../dist/src/main.js", import.meta.url);
if (!existsSync(main)) {
  process.stderr.write("tally: dist/ is missing; run `npm run build` (or `npm ci`, which builds it)\n");
  process.exit(1);
}
await import(main.href);
