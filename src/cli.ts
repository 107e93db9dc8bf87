import { LedgerError } from "./domain/errors.js";
import { backupCommand } from "./cli/backup.js";
import type { Command } from "./cli/command.js";
import { credentialCreateCommand } from "./cli/credential.js";
import { UsageError, parseFlags } from "./cli/flags.js";
import { commandHelp, groupHelp, usageText } from "./cli/help.js";
import { exportCommand, importCommand } from "./cli/journal.js";
import { keyCreateCommand, keyListCommand, keyRevokeCommand } from "./cli/key.js";
import { migrateCommand } from "./cli/migrate.js";
import { MissingDatabaseError } from "./cli/open-store.js";
import { serveCommand } from "./cli/serve.js";
import { nearest } from "./cli/suggest.js";
import { tenantCreateCommand, tenantListCommand } from "./cli/tenant.js";
import { verifyCommand } from "./cli/verify.js";
import { packageVersion } from "./version.js";

/** Every command, in the order help lists them. */
export const COMMANDS: readonly Command[] = [
  serveCommand,
  verifyCommand,
  migrateCommand,
  backupCommand,
  tenantCreateCommand,
  tenantListCommand,
  keyCreateCommand,
  keyListCommand,
  keyRevokeCommand,
  credentialCreateCommand,
  exportCommand,
  importCommand,
];

const BY_NAME = new Map(COMMANDS.map((c) => [c.name, c]));
/** First words with subcommands (`key` → key create, key list, key revoke). */
const GROUPS = new Map<string, Command[]>();
for (const c of COMMANDS) {
  const [first, second] = c.name.split(" ");
  if (second !== undefined) GROUPS.set(first!, [...(GROUPS.get(first!) ?? []), c]);
}

/**
 * Runs the CLI; resolves to the process exit code: 0 done, 1 the command
 * failed (or verify found a difference), 2 it was called wrongly.
 */
export async function runCli(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  try {
    if (first === "--version" || first === "-v" || first === "version") {
      process.stdout.write(`${packageVersion()}\n`);
      return 0;
    }
    if (first === undefined) {
      process.stderr.write(usageText(COMMANDS));
      return 2;
    }
    if (first === "help" || first === "--help" || first === "-h") return help(rest);
    if (first.startsWith("-")) {
      const guess = nearest(first.replace(/^-+/, ""), ["help", "version"]);
      throw new UsageError(`unknown option ${first}${guess === undefined ? "" : `; did you mean --${guess}?`} (options go after the command)`);
    }
    const resolved = resolveCommand(first, rest);
    if ("group" in resolved) {
      // `tally key`: the group's commands are the answer (an error without --help).
      const list = groupHelp(resolved.group, GROUPS.get(resolved.group)!);
      if (resolved.asked) process.stdout.write(list);
      else process.stderr.write(list);
      return resolved.asked ? 0 : 2;
    }
    const { command, args } = resolved;
    if (wantsHelp(args)) {
      process.stdout.write(commandHelp(command));
      return 0;
    }
    const { values, positionals } = parseFlags(command.flags, args, { positionals: command.positionals ?? false });
    return await command.run({ values, positionals, args });
  } catch (e) {
    process.stderr.write(`tally: ${e instanceof Error ? e.message : String(e)}\n`);
    if (e instanceof UsageError) {
      const command = commandOf(argv);
      process.stderr.write(command === undefined ? "run tally --help for the commands\n" : `run tally ${command.name} --help for its flags\n`);
    }
    return e instanceof LedgerError || e instanceof MissingDatabaseError ? 1 : 2;
  }
}

/** `tally help [command words]`. */
function help(words: string[]): number {
  if (words.length === 0) {
    process.stdout.write(usageText(COMMANDS));
    return 0;
  }
  const name = words.join(" ");
  const command = BY_NAME.get(name);
  if (command) {
    process.stdout.write(commandHelp(command));
    return 0;
  }
  if (words.length === 1 && GROUPS.has(name)) {
    process.stdout.write(groupHelp(name, GROUPS.get(name)!));
    return 0;
  }
  throw unknownCommand(name);
}

/** The command the first words name and the arguments after them, or a group named without its subcommand. */
function resolveCommand(first: string, [second, ...rest]: readonly string[]): { command: Command; args: string[] } | { group: string; asked: boolean } {
  if (GROUPS.has(first)) {
    if (second === undefined || second === "--help" || second === "-h") return { group: first, asked: second !== undefined };
    const command = BY_NAME.get(`${first} ${second}`);
    if (command === undefined) throw unknownCommand(`${first} ${second}`);
    return { command, args: rest };
  }
  const command = BY_NAME.get(first);
  if (command === undefined) throw unknownCommand(first);
  return { command, args: second === undefined ? [] : [second, ...rest] };
}

/** The command argv names, if it names one (for the hint after a usage error). */
function commandOf(argv: readonly string[]): Command | undefined {
  return BY_NAME.get(argv.slice(0, 2).join(" ")) ?? BY_NAME.get(argv[0] ?? "");
}

function unknownCommand(name: string): UsageError {
  const names = [...COMMANDS.map((c) => c.name), ...GROUPS.keys(), "help"];
  const guess = nearest(name, names);
  return new UsageError(`unknown command "${name}"${guess === undefined ? "" : `; did you mean "${guess}"?`}`);
}

/** --help or -h among the flags (not after `--`, where it would be a positional). */
function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  return (end === -1 ? args : args.slice(0, end)).some((a) => a === "--help" || a === "-h");
}
