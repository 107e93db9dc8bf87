import type { FlagSpecs, FlagValues } from "./flags.js";

/** What a command is run with: its flags parsed against its specs, and the raw arguments. */
export interface CommandInput {
  readonly values: FlagValues;
  readonly positionals: string[];
  readonly args: readonly string[];
}

/** One `tally` command (`serve`, `key list`, …): what help prints about it, and how it runs. */
export interface Command {
  /** Words that name it: `serve`, `key list`. */
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** The synopsis after the name: `--tenant ID [--label TEXT]`. */
  readonly synopsis: string;
  /** Paragraphs printed by `--help` after the synopsis. */
  readonly details?: string;
  readonly flags: FlagSpecs;
  /** Whether the command takes positional arguments (import's FILE). */
  readonly positionals?: boolean;
  /** Resolves to the exit code. */
  run(input: CommandInput): Promise<number>;
}
