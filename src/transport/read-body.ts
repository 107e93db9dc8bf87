import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";

type Req = IncomingMessage | Http2ServerRequest;

/** The error for a request whose body did not arrive in time. */
export function requestTimedOut(timeoutMs: number): ConnectError {
  return new ConnectError(`the request was not sent within ${timeoutMs} ms`, Code.DeadlineExceeded);
}

/** What {@link readBody} read: the whole body, or its start when the reader had enough. */
export interface BodyRead {
  readonly bytes: Buffer;
  /** False when reading stopped early (the rest is left unread). */
  readonly complete: boolean;
}

/**
 * Reads a body until it ends, or until `enough(size, chunks)` says to stop
 * (the rest is then left unread: the caller answers and ends the exchange).
 * Rejects with deadline_exceeded when the body has not ended within
 * `timeoutMs` (a client that sends headers and stalls), and with aborted when
 * the client goes away.
 */
export function readBody(req: Req, timeoutMs: number, enough: (size: number, chunks: readonly Buffer[]) => boolean): Promise<BodyRead> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = Number.isFinite(timeoutMs)
      ? setTimeout(() => {
          cleanup();
          req.pause();
          reject(requestTimedOut(timeoutMs));
        }, timeoutMs)
      : undefined;
    const cleanup = () => {
      clearTimeout(timer);
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const joined = () => (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (enough(size, chunks)) {
        // Stop reading, but do not destroy the request: on HTTP/1.1 that resets
        // the socket before the answer is written, and the client sees a
        // connection error instead of an answer.
        cleanup();
        req.pause();
        resolve({ bytes: joined(), complete: false });
      }
    };
    const onEnd = () => {
      cleanup();
      resolve({ bytes: joined(), complete: true });
    };
    const onError = () => {
      cleanup();
      reject(new ConnectError("the client closed the request", Code.Aborted));
    };
    const onClose = () => {
      // "close" before "end": the client went away mid-body.
      if (!req.readableEnded) onError();
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

/** Reads the whole body, or stops past `max` bytes and returns undefined; see {@link readBody}. */
export async function readBounded(req: Req, max: number, timeoutMs = Infinity): Promise<Buffer | undefined> {
  const r = await readBody(req, timeoutMs, (size) => size > max);
  return r.complete ? r.bytes : undefined;
}

/**
 * Passes a request body through, failing with deadline_exceeded when it has
 * not ended within `timeoutMs`: thrown into connect's reading pipeline, the
 * error reaches the client in its protocol's own form (gRPC trailers, a
 * Connect end-stream message).
 */
export async function* untilDeadline<T>(source: AsyncIterable<T>, timeoutMs: number): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(requestTimedOut(timeoutMs));
    }, timeoutMs);
  });
  expired.catch(() => undefined);
  let done = false;
  try {
    for (;;) {
      const r = await Promise.race([it.next(), expired]);
      if (r.done) {
        done = true;
        return;
      }
      yield r.value;
    }
  } finally {
    clearTimeout(timer);
    // A reader that stops early lets go of the source, as for-await would. After
    // a timeout the source is left alone: ending it would reset an HTTP/2 stream
    // before the deadline_exceeded answer is written.
    if (!done && !timedOut) await it.return?.();
  }
}
