import { resolve } from "node:path";
import { startTally } from "../app.js";
import { SERVE_FLAGS, parseServeConfig, redactUrl, toTallyOptions } from "../config.js";
import { jsonLogger } from "../transport/log.js";
import type { Command } from "./command.js";
import type { FlagSpecs } from "./flags.js";

/** `tally serve`: runs the server until SIGTERM or SIGINT. */
export const serveCommand: Command = {
  name: "serve",
  summary: "start the server",
  synopsis: "[flags]",
  details: "Every flag falls back to its environment variable, then to its default; flags win.",
  flags: Object.fromEntries(
    Object.entries(SERVE_FLAGS).map(([name, f]) => [name, { type: "string", value: placeholder(name), help: `${f.help}; env ${f.env}, default "${f.default}"` }]),
  ) as FlagSpecs,
  async run({ args }) {
    const config = parseServeConfig([...args]);
    const logger = jsonLogger(process.stderr, config.logLevel);
    const tally = await startTally({ ...toTallyOptions(config), logger });
    if (tally.bootstrapKey) {
      process.stdout.write(
        `Created tenant "default" in a new database. Its admin API key is shown only this once:\n\n` +
          `  ${tally.bootstrapKey}\n\n`,
      );
    }
    process.stdout.write(`Tally listening on ${tally.url} (database: ${config.databaseUrl === undefined ? resolve(config.databasePath) : redactUrl(config.databaseUrl)})\n`);
    if (tally.metricsUrl !== undefined) process.stdout.write(`Metrics on ${tally.metricsUrl}\n`);
    return new Promise<number>((done) => {
      const stop = (signal: string) => {
        logger.info("shutting down", { signal });
        tally.close().then(
          () => done(0),
          (e: unknown) => {
            process.stderr.write(`tally: shutdown failed: ${String(e)}\n`);
            done(1);
          },
        );
      };
      process.once("SIGTERM", () => stop("SIGTERM"));
      process.once("SIGINT", () => stop("SIGINT"));
    });
  },
};

/** The value's name in help: MS for the timeouts, FILE for the files, the flag's last word otherwise. */
function placeholder(flag: string): string {
  if (flag.endsWith("-ms")) return "MS";
  if (flag === "db" || flag.startsWith("tls-cert") || flag === "tls-key") return "FILE";
  if (flag === "database") return "URL";
  return flag.split("-").at(-1)!.toUpperCase();
}
