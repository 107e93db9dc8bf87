import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { arch } from "node:os";
import { join } from "node:path";

/** The repository root: buf resolves `--schema proto` relative to it. */
export const REPO_ROOT = join(import.meta.dirname, "..", "..");

/**
 * The buf CLI shipped by the @bufbuild/buf npm package. node_modules/.bin/buf
 * is a Node wrapper that runs the Go binary as its own child, so a signal sent
 * to the wrapper would leave buf itself running (and holding our pipes open);
 * the platform package's binary is used directly when it is there.
 */
export const BUF = resolveBuf();

function resolveBuf(): string {
  const platformPackage: Record<string, string> = {
    "linux x64": "buf-linux-x64",
    "linux arm64": "buf-linux-aarch64",
    "darwin x64": "buf-darwin-x64",
    "darwin arm64": "buf-darwin-arm64",
  };
  const pkg = platformPackage[`${process.platform} ${arch()}`];
  const native = pkg === undefined ? undefined : join(REPO_ROOT, "node_modules", "@bufbuild", pkg, "bin", "buf");
  return native !== undefined && existsSync(native) ? native : join(REPO_ROOT, "node_modules", ".bin", "buf");
}

// Every buf child any test started, so that a failing test cannot leave one behind.
const live = new Set<ChildProcess>();

/**
 * Starts buf in its own process group, so that killing the group also reaches
 * the Go binary when the npm wrapper had to be used.
 */
function spawnBuf(args: string[]): ChildProcess {
  const child = spawn(BUF, args, { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"], detached: true });
  live.add(child);
  child.once("close", () => live.delete(child));
  return child;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** What one `buf curl` run printed and how it ended. */
export interface BufCurlResult {
  /** buf curl exits with 8 × the RPC error code (0 on success). */
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options for one `buf curl` call. */
export interface BufCurlOptions {
  /** "grpc", "grpcweb" or "connect". */
  readonly protocol: "grpc" | "grpcweb" | "connect";
  /** Plaintext HTTP/2 (h2c) instead of HTTP/1.1. */
  readonly http2?: boolean;
  /** Sent as `Authorization: Bearer <key>`; omitted when undefined. */
  readonly key?: string | undefined;
  /** The request message in protobuf JSON. */
  readonly data: unknown;
  /** `-v`: the HTTP exchange is printed to stderr, so a test can see which protocol was spoken. */
  readonly verbose?: boolean;
  /** Ask the server for the schema (gRPC server reflection) instead of reading proto/. */
  readonly reflect?: boolean;
}

/** The argument list for `buf curl`: schema from the local proto directory, or from the server's reflection. */
export function bufCurlArgs(url: string, procedure: string, o: BufCurlOptions): string[] {
  const args = ["curl", ...(o.reflect ? [] : ["--schema", "proto"]), "--protocol", o.protocol];
  if (o.http2) args.push("--http2-prior-knowledge");
  if (o.verbose) args.push("-v");
  if (o.key !== undefined) args.push("-H", `Authorization: Bearer ${o.key}`);
  args.push("-d", JSON.stringify(o.data), `${url}/${procedure}`);
  return args;
}

/** Runs `buf <args>` to completion (killed after `timeoutMs`). */
export function runBuf(args: string[], timeoutMs = 20_000): Promise<BufCurlResult> {
  const child = spawnBuf(args);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => killGroup(child, "SIGKILL"), timeoutMs);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (exitCode, signal) => {
      clearTimeout(timer);
      resolve({ exitCode, signal, stdout, stderr });
    });
  });
}

/** Kills every buf process still running (for afterAll). */
export function killAllBufCurl(): void {
  for (const c of live) killGroup(c, "SIGKILL");
  live.clear();
}

/** Runs `buf curl` to completion (killed after `timeoutMs`). */
export function bufCurl(url: string, procedure: string, o: BufCurlOptions, timeoutMs = 20_000): Promise<BufCurlResult> {
  return runBuf(bufCurlArgs(url, procedure, o), timeoutMs);
}

/** A `buf curl` server stream that is still running. */
export interface BufCurlStream {
  /** The JSON messages printed so far, in order. */
  messages(): unknown[];
  /** Resolves once `count` messages were printed; rejects on timeout or early exit. */
  waitForMessages(count: number, timeoutMs: number): Promise<unknown[]>;
  /** Stops the client (SIGTERM) and resolves with everything it printed. */
  stop(): Promise<BufCurlResult>;
}

/**
 * Starts `buf curl` on a server-streaming method. buf prints each message as it
 * arrives, so the test can act (make a transfer) while the stream is open and
 * then stop the client; `--timeout` bounds the stream even if the test dies.
 */
export function startBufCurlStream(url: string, procedure: string, o: BufCurlOptions, timeoutSeconds = 30): BufCurlStream {
  const args = bufCurlArgs(url, procedure, o);
  args.splice(1, 0, "--timeout", `${timeoutSeconds}s`);
  const child = spawnBuf(args);
  let stdout = "";
  let stderr = "";
  let onData = () => {};
  child.stdout!.on("data", (d: Buffer) => {
    stdout += d.toString();
    onData();
  });
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<BufCurlResult>((resolve) => {
    child.once("close", (exitCode, signal) => {
      onData();
      resolve({ exitCode, signal, stdout, stderr });
    });
  });
  let exited = false;
  void closed.then(() => (exited = true));
  return {
    messages: () => parseJsonDocuments(stdout).values,
    waitForMessages(count, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          onData = () => {};
          reject(new Error(`buf curl printed ${parseJsonDocuments(stdout).values.length} of ${count} messages in ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
        }, timeoutMs);
        const check = () => {
          const got = parseJsonDocuments(stdout).values;
          if (got.length >= count) {
            clearTimeout(timer);
            onData = () => {};
            resolve(got);
          } else if (exited || child.exitCode !== null || child.signalCode !== null) {
            clearTimeout(timer);
            onData = () => {};
            reject(new Error(`buf curl exited after ${got.length} of ${count} messages\nstdout:\n${stdout}\nstderr:\n${stderr}`));
          }
        };
        onData = check;
        check();
      });
    },
    async stop() {
      killGroup(child, "SIGTERM");
      return closed;
    },
  };
}

/**
 * Splits buf curl's output, a sequence of pretty-printed JSON documents, into
 * values. A trailing incomplete document (still being printed) is left out and
 * reported in `rest`, so the parser can run on a growing buffer.
 */
export function parseJsonDocuments(text: string): { values: unknown[]; rest: string } {
  const values: unknown[] = [];
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === "\\") escaped = true;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    else if (ch === "{" || ch === "[") {
      if (depth === 0) start = i;
      depth++;
    } else if (ch === "}" || ch === "]") {
      depth--;
      if (depth === 0) {
        values.push(JSON.parse(text.slice(start, i + 1)));
        start = -1;
      }
    }
  }
  return { values, rest: start >= 0 ? text.slice(start) : "" };
}
