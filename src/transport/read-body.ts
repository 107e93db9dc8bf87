import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";

type Req = IncomingMessage | Http2ServerRequest;

/** Reads the whole body, or stops at `max` bytes and returns undefined. */
export function readBounded(req: Req, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        // Stop reading, but do not destroy the request: on HTTP/1.1 that resets
        // the socket before the 429 is written, and the client sees a connection
        // error instead of an answer. the caller answers and ends the exchange.
        cleanup();
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
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
