import type { IncomingMessage } from "node:http";

/** How much of an unread request body {@link drainBody} reads before giving up. */
export interface LingerBounds {
  /** Bytes read and dropped at most. */
  readonly maxBytes: number;
  /** Time spent at most, in ms. */
  readonly maxMs: number;
}

/**
 * Reads and drops the rest of a request body that its answer did not wait
 * for (a 413 or 429 for an oversized body, a 415, a 404 to a POST), so that
 * the client can finish sending and then read the answer.
 *
 * Why: an HTTP/1.1 server that stops reading and closes the connection
 * while the client is still sending makes the kernel answer the bytes still
 * arriving with a TCP reset. The client then sees EPIPE or ECONNRESET
 * instead of the answer, which the reset may even discard from its receive
 * buffer before it was read. Draining first ("lingering close") avoids that,
 * within bounds, so that a client cannot make the server read forever.
 *
 * `done(true)` once the body has ended; `done(false)` when the client sent
 * more than `maxBytes`, took longer than `maxMs`, or went away (the
 * connection is then not worth keeping).
 */
export function drainBody(req: IncomingMessage, bounds: LingerBounds, done: (drained: boolean) => void): void {
  // The socket, for the client going away (a client may also end its side
  // once it has read the answer, as Node's own does; Node then closes it).
  const socket = req.socket;
  let read = 0;
  let settled = false;
  const finish = (drained: boolean) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    req.off("data", onData);
    req.off("end", onEnd);
    socket.off("close", onClose);
    // Stop pulling bytes off the wire once we stop counting them.
    if (!drained) req.pause();
    done(drained);
  };
  const onData = (chunk: Buffer) => {
    read += chunk.length;
    if (read > bounds.maxBytes) finish(false);
  };
  const onEnd = () => finish(true);
  const onClose = () => finish(req.complete);
  const timer = setTimeout(() => finish(false), bounds.maxMs).unref();
  req.on("data", onData);
  req.once("end", onEnd);
  socket.once("close", onClose);
  // A reader that stopped early paused the request; a listener alone does not resume it.
  req.resume();
}
