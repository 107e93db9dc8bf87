import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { arch, availableParallelism, cpus, loadavg, release } from "node:os";

/** The CPU model, from /proc/cpuinfo (Node's own report on other systems). */
export function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m) return m[1]!.trim();
  } catch {
    // Not Linux: fall back to what Node reports.
  }
  return cpus()[0]?.model ?? "unknown";
}

/** CPUs available to this process, as `nproc` prints it. */
export function nproc(): string {
  try {
    return execFileSync("nproc", { encoding: "utf8" }).trim();
  } catch {
    return String(availableParallelism());
  }
}

/** The file system a directory lives on (fsync cost depends on it), e.g. "ext4 (/dev/vda)". */
export function filesystemOf(dir: string): string {
  try {
    return execFileSync("findmnt", ["-n", "-o", "FSTYPE,SOURCE", "-T", dir], { encoding: "utf8" }).trim().replace(/\s+/, " on ");
  } catch {
    return "unknown";
  }
}

/** One line describing the machine. */
export function machineLine(): string {
  return `${nproc()} CPUs (nproc), ${cpuModel()}, ${arch()}, Linux ${release()}, node ${process.version}`;
}

/** The 1, 5 and 15 minute load averages. */
export function loadAverages(): string {
  return loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
}

/**
 * Cumulative stall time, in µs, from Linux pressure stall information: how
 * long at least one runnable task waited for a CPU ("cpu") or for I/O ("io").
 * NaN when the kernel does not expose it.
 */
export function stallMicros(resource: "cpu" | "io"): number {
  try {
    const m = /^some .*total=(\d+)$/m.exec(readFileSync(`/proc/pressure/${resource}`, "utf8"));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/**
 * Measures how contended the machine was over an interval: the share of wall
 * time during which some task waited for a CPU and for I/O. On a machine
 * shared with other jobs these say whether a slow figure is Tally's or the
 * neighbours'.
 */
export class PressureMeter {
  private readonly t0 = performance.now();
  private readonly cpu0 = stallMicros("cpu");
  private readonly io0 = stallMicros("io");

  /** Fractions (0..1) of the interval since construction. */
  read(): { cpu: number; io: number } {
    const us = (performance.now() - this.t0) * 1000;
    return { cpu: (stallMicros("cpu") - this.cpu0) / us, io: (stallMicros("io") - this.io0) / us };
  }
}
