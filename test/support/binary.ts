import { spawn } from "node:child_process";
import { expect } from "vitest";
import { LedgerService } from "../../gen/tally/ledger/v1/ledger_pb.js";
import { clientFor } from "./server.js";

/** A `tally serve` started from a built binary (not through tsx). */
export interface BinaryServer {
  readonly url: string;
  /** The bootstrap (operator) key printed on the first start. */
  readonly adminKey: string;
  readonly output: () => string;
  /** SIGTERM to the whole process group (npx runs node as its child); resolves when it has exited. */
  stop(): Promise<void>;
}

/** The end of a command run to completion. */
export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to its end (SIGKILLed after `timeoutMs`), collecting its output. */
export function run(cmd: string, args: readonly string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<RunResult> {
  const child = spawn(cmd, [...args], { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => killGroup(child.pid, "SIGKILL"), opts.timeoutMs ?? 60_000);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Starts `cmd args` (which must run `tally serve` on an empty database) in its
 * own process group and waits for its banner: the bootstrap key and the URL.
 */
export async function startBinaryServer(cmd: string, args: readonly string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<BinaryServer> {
  const child = spawn(cmd, [...args], { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      killGroup(child.pid, "SIGKILL");
      reject(new Error(`server did not start:\n${out}`));
    }, 60_000);
    child.stdout.on("data", () => {
      const m = /listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`server exited:\n${out}`));
    });
  });
  const adminKey = /(tly_[a-z0-9_]+)/.exec(out)?.[1];
  if (adminKey === undefined) throw new Error(`no bootstrap key in the banner:\n${out}`);
  return {
    url,
    adminKey,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      killGroup(child.pid, "SIGTERM");
      await exited;
    },
  };
}

/** Funds an account and reads it back with GetBalance over gRPC: the served binary works end to end, generated code included. */
export async function expectServesGetBalance(server: BinaryServer): Promise<void> {
  const client = clientFor(LedgerService, server.url, "grpc", server.adminKey);
  await client.createAccount({ id: "alice" });
  await client.postTransfer({ idempotencyKey: "fund-alice", debitAccountId: "@world", creditAccountId: "alice", asset: "USD", amount: 25_000_000n });
  const { balance } = await client.getBalance({ accountId: "alice", asset: "USD" });
  expect(balance?.posted).toBe(25_000_000n);
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}
