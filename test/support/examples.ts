import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { expect } from "vitest";

/** The repository root: examples run from there, as examples/README.md prints them. */
export const ROOT = join(import.meta.dirname, "..", "..");

/** 2^53 + 1: the first integer a JavaScript number or a JSON double cannot hold. */
export const BEYOND_DOUBLE = 9007199254740993n;

/** Runs one example to its end (at most 60 s) and returns what it printed. */
export async function runExample(file: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<string> {
  const { stdout } = await promisify(execFile)(file, [...args], { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60_000 });
  return stdout;
}

/**
 * Checks an example's report of a first run on a new account: the snapshot,
 * the transfer and its replay (one id), the balance read back, and the
 * change the stream delivered, every amount exactly `amount`.
 */
export function expectFirstRun(stdout: string, account: string, amount: bigint, asset = "USD"): void {
  const lines = stdout.trim().split("\n");
  const id = /^transfer (tr_\w+) /.exec(lines[2] ?? "")?.[1];
  const sequence = /sequence=(\d+)$/.exec(lines[4] ?? "")?.[1];
  expect(id, stdout).toBeDefined();
  expect(sequence, stdout).toBeDefined();
  expect(lines).toEqual([
    `account ${account} created`,
    `watch snapshot ${account} ${asset} posted=0 available=0 sequence=0`,
    `transfer ${id} amount=${amount} replayed=false`,
    `transfer ${id} amount=${amount} replayed=true`,
    `balance ${account} ${asset} posted=${amount} available=${amount} sequence=${sequence}`,
    `watch change ${account} ${asset} delta=${amount} posted=${amount} available=${amount} sequence=${sequence}`,
  ]);
}
