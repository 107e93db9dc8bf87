import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import type { ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root, so that children resolve `src/` and `bench/` the same from any cwd. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** A child process started by the bench, with its output kept for error messages. */
export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  /** stdout and stderr so far (the last 64 KiB). */
  output(): string;
  /** Resolves with the exit code once the process has exited. */
  readonly exited: Promise<number | null>;
  /**
   * Waits for a line of stdout matching `re`; rejects on timeout or when the
   * child exits first, so a broken child never hangs the bench.
   */
  waitFor(re: RegExp, timeoutMs: number): Promise<RegExpExecArray>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

/** Every child still running: stopped by {@link stopAllChildren} and, as a last resort, on exit. */
const running = new Set<Child>();

// A bench that throws or is interrupted must not leave servers listening behind it.
process.once("exit", () => {
  for (const c of running) c.proc.kill("SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    for (const c of running) c.proc.kill("SIGKILL");
    process.exit(130);
  });
}

/** Options for {@link spawnChild}. */
export interface SpawnOptions {
  /** Extra environment variables. */
  readonly env?: NodeJS.ProcessEnv;
  /** Node flags placed before the script (e.g. --cpu-prof). */
  readonly nodeArgs?: readonly string[];
}

const MAX_OUTPUT = 64 * 1024;

/**
 * Runs a TypeScript file of this repository under Node with tsx's loader: the
 * same runtime as `tsx src/main.ts`, without tsx's extra watcher process, so
 * that the pid we signal is the process doing the work. With BENCH_DIST=1 it
 * runs the file as `npm run build` compiled it into dist/ instead (plain
 * Node, no loader), for every server of a run alike.
 */
export function spawnTs(name: string, script: string, args: readonly string[], opts: SpawnOptions = {}): Child {
  return spawnChild(name, process.execPath, [...(opts.nodeArgs ?? []), ...scriptArgs(script), ...args], opts);
}

/** Node's arguments that run `script` (a .ts path from the repository root), under tsx or compiled (BENCH_DIST=1). */
export function scriptArgs(script: string): string[] {
  if (process.env["BENCH_DIST"] !== "1") return ["--import", "tsx", join(ROOT, script)];
  const compiled = join(ROOT, "dist", script.replace(/\.ts$/, ".js"));
  if (!existsSync(compiled)) throw new Error(`BENCH_DIST=1: ${compiled} is missing; run npm run build first`);
  return [compiled];
}

/** Spawns any executable and tracks it. */
export function spawnChild(name: string, command: string, args: readonly string[], opts: SpawnOptions = {}): Child {
  const proc = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let lineBuf = "";
  const lineWaiters = new Set<(line: string) => void>();
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > MAX_OUTPUT) out = out.slice(-MAX_OUTPUT);
  };
  // Both pipes are always drained: a child blocked on a full pipe would look like a slow server.
  proc.stdout!.on("data", (d: Buffer) => {
    keep(d);
    lineBuf += d.toString();
    let nl: number;
    while ((nl = lineBuf.indexOf("\n")) >= 0) {
      const line = lineBuf.slice(0, nl);
      lineBuf = lineBuf.slice(nl + 1);
      for (const w of lineWaiters) w(line);
    }
  });
  proc.stderr!.on("data", keep);
  const exited = new Promise<number | null>((resolve) => {
    proc.once("exit", (code) => {
      running.delete(child);
      resolve(code);
    });
    proc.once("error", () => {
      running.delete(child);
      resolve(null);
    });
  });
  const child: Child = {
    name,
    proc,
    exited,
    output: () => out,
    waitFor(re, timeoutMs) {
      const seen = re.exec(out);
      if (seen) return Promise.resolve(seen);
      return new Promise<RegExpExecArray>((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          lineWaiters.delete(onLine);
        };
        const onLine = (line: string) => {
          const m = re.exec(line);
          if (m) {
            done();
            resolve(m);
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name}: no line matching ${re} within ${timeoutMs} ms; output:\n${out}`));
        }, timeoutMs);
        lineWaiters.add(onLine);
        void exited.then((code) => {
          if (!lineWaiters.has(onLine)) return;
          done();
          reject(new Error(`${name} exited (code ${code}) before printing ${re}; output:\n${out}`));
        });
      });
    },
    async stop(graceMs = 10_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  running.add(child);
  return child;
}

/** Stops every child still running (in parallel) and waits for all of them. */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...running].map((c) => c.stop()));
}

/** Runs a child to completion and returns the last stdout line that parses as JSON. */
export async function runJsonChild<T>(child: Child, timeoutMs: number): Promise<T> {
  const timer = setTimeout(() => child.proc.kill("SIGKILL"), timeoutMs);
  const code = await child.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${child.name} failed (exit ${code}); output:\n${child.output()}`);
  const lines = child.output().trim().split("\n").reverse();
  for (const line of lines) {
    if (!line.startsWith("{")) continue;
    try {
      return JSON.parse(line) as T;
    } catch {
      // Not the result line; keep looking.
    }
  }
  throw new Error(`${child.name} printed no JSON result; output:\n${child.output()}`);
}

/** Clock ticks per second of /proc's utime and stime (USER_HZ, 100 on Linux). */
const CLK_TCK = 100;

/**
 * CPU seconds (user + system) a process has used so far, from /proc; NaN when
 * unavailable. Used to report work per CPU-second, a figure that holds up
 * better than requests per wall-clock second on a machine shared with other jobs.
 */
export function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}
