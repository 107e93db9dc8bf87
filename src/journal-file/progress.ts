/** A one-line progress bar for a terminal; nothing at all when the stream is not one. */
export interface Progress {
  /** Shows `done` of `total` (redrawn at most ten times a second). */
  update(done: number, total: number): void;
  /** Draws the final state and ends the line. */
  finish(): void;
}

const WIDTH = 30;

/**
 * A progress bar on `stream` (stderr, so that stdout can carry the data) when
 * it is a TTY: `label [#######.......]  45%  45,000/100,000  12,345/s`.
 */
export function progressBar(stream: NodeJS.WriteStream, label: string, unit: string): Progress {
  if (!stream.isTTY) return { update() {}, finish() {} };
  const started = performance.now();
  let drawnAt = 0;
  let last: [number, number] = [0, 0];
  const draw = () => {
    const [done, total] = last;
    const fraction = total > 0 ? Math.min(1, done / total) : 1;
    const filled = Math.round(fraction * WIDTH);
    const seconds = (performance.now() - started) / 1000;
    const rate = seconds > 0 ? Math.round(done / seconds) : 0;
    stream.write(
      `\r${label} [${"#".repeat(filled)}${".".repeat(WIDTH - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}%  ` +
        `${done.toLocaleString("en-US")}/${total.toLocaleString("en-US")} ${unit}  ${rate.toLocaleString("en-US")}/s`,
    );
  };
  return {
    update(done, total) {
      last = [done, total];
      const now = performance.now();
      if (now - drawnAt >= 100) {
        drawnAt = now;
        draw();
      }
    },
    finish() {
      draw();
      stream.write("\n");
    },
  };
}
