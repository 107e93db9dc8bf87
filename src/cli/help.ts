import type { Command } from "./command.js";
import type { FlagSpec } from "./flags.js";

/** `tally --help`: every command with its one-line summary. */
export function usageText(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 2;
  return (
    `usage: tally <command> [flags]\n\ncommands:\n` +
    commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}\n`).join("") +
    `\n  tally <command> --help (or tally help <command>) shows a command's flags;\n` +
    `  tally --version (-v) prints the version.\n` +
    `\nCommands that open the database take --db FILE (env TALLY_DB, default tally.db) for SQLite,\n` +
    `or --database postgres://… (env DATABASE_URL) for PostgreSQL.\n`
  );
}

/** `tally <command> --help`: synopsis, details and every flag. */
export function commandHelp(c: Command): string {
  const flags = [...Object.entries(c.flags).map(([name, s]) => [flagLabel(name, s), s.help] as const), ["--help, -h", "this help"] as const];
  const width = Math.max(...flags.map(([l]) => l.length)) + 2;
  // Long labels (serve's) would push every help text far right: then each goes under its flag.
  const line = width > 28 ? (l: string, h: string) => `  ${l}\n      ${h}\n` : (l: string, h: string) => `  ${l.padEnd(width)}${h}\n`;
  return (
    `usage: tally ${c.name} ${c.synopsis}\n\n${c.summary}\n` +
    (c.details ? `\n${c.details.trimEnd()}\n` : "") +
    `\nflags:\n${flags.map(([l, h]) => line(l, h)).join("")}`
  );
}

/** Commands grouped under a first word (`tally key --help`). */
export function groupHelp(group: string, commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 2;
  return `usage: tally ${group} <command> [flags]\n\ncommands:\n${commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}\n`).join("")}\n  tally ${group} <command> --help shows a command's flags.\n`;
}

function flagLabel(name: string, s: FlagSpec): string {
  const short = s.short ? `-${s.short}, ` : "";
  const value = s.type === "string" ? ` ${s.value ?? "VALUE"}` : "";
  return `${short}--${name}${value}${s.multiple ? " (repeatable)" : ""}`;
}
