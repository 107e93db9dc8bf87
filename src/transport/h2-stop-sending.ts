import { constants } from "node:http2";
import type { ServerHttp2Stream } from "node:http2";

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL } = constants;

/**
 * Ends a stream whose answer is complete while its client is still sending
 * (an oversized message refused from its first bytes, a 413, a 415): once
 * the answer's last frame (END_STREAM, on the trailers when there are some)
 * has gone out, RST_STREAM NO_ERROR tells the client to stop sending without
 * error (RFC 9113 §8.1). Without it the client, blocked by flow control on a
 * body nobody reads, keeps the stream open until the request timeout, and
 * some clients never look at an answer before their upload is done.
 *
 * Call it when the stream's writable side has finished. Resetting then would
 * be too early: Node sends the trailers later (after "wantTrailers", from a
 * setImmediate), and a reset queued before them loses them, so the client
 * gets a reset without a grpc-status. Node reports no "trailers sent"
 * event; nghttp2's local-close flag says when END_STREAM was written, so it
 * is polled, briefly. A client that reads nothing, so that the answer cannot
 * go out within `graceMs`, gets CANCEL.
 */
export function stopSendingAfterAnswer(stream: ServerHttp2Stream, graceMs: number): void {
  if (stream.destroyed || stream.closed || stream.state.remoteClose === 1) return;
  const deadline = performance.now() + graceMs;
  let spins = 0;
  const check = () => {
    if (stream.destroyed || stream.closed) return;
    const state = stream.state;
    // The client finished its request meanwhile: nothing to stop.
    if (state.remoteClose === 1) return;
    if (state.localClose === 1) return stream.close(NGHTTP2_NO_ERROR);
    if (performance.now() >= deadline) return stream.close(NGHTTP2_CANCEL);
    // The trailers usually go out within a turn or two of the event loop; past
    // that, the client's flow-control window holds them, so poll slowly.
    if (spins++ < 8) setImmediate(check);
    else setTimeout(check, 10).unref();
  };
  check();
}
