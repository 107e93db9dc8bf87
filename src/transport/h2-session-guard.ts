import { constants } from "node:http2";
import type { Http2Session, ServerHttp2Stream } from "node:http2";
import type { Socket } from "node:net";
import { stopSendingAfterAnswer } from "./h2-stop-sending.js";

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM } = constants;

/** Options for {@link guardSession}. */
export interface SessionGuardOptions {
  /** A new session must have sent its SETTINGS within this long, in ms. */
  readonly handshakeTimeoutMs: number;
  /** A session with no open stream is closed after this long, in ms. */
  readonly idleTimeoutMs: number;
  /** A stream's request must have ended within this long of its HEADERS, in ms. */
  readonly requestTimeoutMs: number;
  /**
   * While streams are open, the session is pinged this often and destroyed
   * when a ping goes unanswered for handshakeTimeoutMs (0: never pinged).
   */
  readonly pingIntervalMs: number;
  /** After a GOAWAY, how long open streams may go on before the connection is cut, in ms. */
  readonly closeGraceMs: number;
  /** Streams reset by the client within resetWindowMs that make a session abusive... */
  readonly maxResets: number;
  /** ...when they also outnumber the streams it completed in that window. */
  readonly resetWindowMs: number;
  /** Called once when a session is ended for abuse. */
  readonly onAbuse?: (socket: Socket, reason: string) => void;
}

/**
 * Bounds the life of one server HTTP/2 session and its streams, so that no
 * connection outlives its purpose:
 *
 * - the client's SETTINGS must arrive within the handshake timeout (a
 *   partial preface, or the preface and silence, are cut);
 * - an idle timer runs only while no stream is open: armed at the start,
 *   re-armed when the open-stream count drops to 0, cleared when a stream
 *   opens. Long-lived quiet streams (WatchBalance) are never touched by it;
 * - a session that received GOAWAY, had a frame error or was closed is cut
 *   after closeGraceMs. This matters because nghttp2 ends a session by
 *   itself (COMPRESSION_ERROR, too many resets, flood) with a GOAWAY that
 *   Node reports to nobody: it stops reading the socket and would hold it
 *   for good. With no stream open the idle timer finds such a session;
 *   with streams open, the unanswered ping does;
 * - a stream whose request has not ended within the request timeout is
 *   reset soon after: RST_STREAM NO_ERROR when a complete answer was sent
 *   (the RPC layer answers deadline_exceeded at that moment), CANCEL otherwise;
 * - a stream answered before its request ended (an oversized body refused
 *   from its first bytes) is reset with NO_ERROR once the answer is out, so
 *   that the client stops sending and reads it (h2-stop-sending.ts);
 * - a session whose client resets streams far faster than it completes them
 *   (rapid reset) is ended with ENHANCE_YOUR_CALM and reported.
 *
 * `socket` is the connection under the session: Node's session.socket is a
 * proxy that may not be destroyed.
 */
export function guardSession(session: Http2Session, socket: Socket, opts: SessionGuardOptions): void {
  let open = 0;
  let ending = false;
  let idle: NodeJS.Timeout | undefined;
  let ping: NodeJS.Timeout | undefined;
  let windowStart = 0;
  let resets = 0;
  let completed = 0;
  const timer = (ms: number, fn: () => void) => setTimeout(fn, ms).unref();
  const cut = () => {
    if (!session.destroyed) session.destroy();
    if (!socket.destroyed) socket.destroy();
  };

  let handshake: NodeJS.Timeout | undefined = timer(opts.handshakeTimeoutMs, cut);
  session.once("remoteSettings", () => {
    clearTimeout(handshake);
    handshake = undefined;
  });

  const armIdle = () => {
    clearTimeout(idle);
    idle = timer(opts.idleTimeoutMs, () => end(NGHTTP2_NO_ERROR));
  };
  const armPing = () => {
    clearTimeout(ping);
    if (opts.pingIntervalMs <= 0) return;
    ping = timer(opts.pingIntervalMs, () => {
      // Unanswered: the peer is gone, or nghttp2 has stopped this session.
      ping = timer(opts.handshakeTimeoutMs, cut);
      try {
        session.ping((err) => {
          if (err === null && open > 0 && !ending) armPing();
        });
      } catch {
        cut();
      }
    });
  };
  /** GOAWAY now; streams get closeGraceMs to finish, then the connection is cut. */
  const end = (code: number) => {
    if (ending) return;
    ending = true;
    clearTimeout(idle);
    clearTimeout(ping);
    timer(opts.closeGraceMs, cut);
    if (session.destroyed) return;
    if (code === NGHTTP2_NO_ERROR) session.close();
    // With an error: destroy(undefined, code) would send NO_ERROR (undefined takes the
    // parameter's default, NO_ERROR, and that wins over code).
    else session.destroy(new Error("session ended by the server"), code);
  };

  armIdle();
  session.on("stream", (stream: ServerHttp2Stream) => {
    open++;
    if (open === 1) {
      clearTimeout(idle);
      armPing();
    }
    const request = stream.endAfterHeaders ? undefined : timer(opts.requestTimeoutMs, () => expire(stream));
    if (!stream.endAfterHeaders) stream.once("finish", () => stopSendingAfterAnswer(stream, Math.min(1000, opts.requestTimeoutMs)));
    stream.once("close", () => {
      clearTimeout(request);
      open--;
      countOutcome(stream);
      if (open === 0 && !ending) {
        clearTimeout(ping);
        armIdle();
      }
    });
  });
  session.once("goaway", () => end(NGHTTP2_NO_ERROR));
  session.once("frameError", () => end(NGHTTP2_NO_ERROR));
  session.once("close", () => {
    clearTimeout(handshake);
    clearTimeout(idle);
    clearTimeout(ping);
    // Node ends the socket gracefully; a peer that never answers the FIN must not keep it.
    if (!socket.destroyed) timer(opts.closeGraceMs, cut);
  });
  // Node destroys the session on its own errors; the guard only needs to know it is gone.
  session.on("error", () => undefined);

  const expire = (stream: ServerHttp2Stream) => {
    if (stream.destroyed || stream.closed || stream.state.remoteClose === 1) return;
    // The RPC layer's own request deadline fires at the same moment and
    // answers deadline_exceeded. There is no event for "trailers sent", so the
    // answer gets a short grace; then the stream is reset: NO_ERROR after a
    // complete answer ("stop sending", RFC 9113 §8.1), CANCEL without one.
    timer(Math.min(1000, opts.requestTimeoutMs), () => {
      if (stream.destroyed || stream.closed) return;
      stream.close(stream.state.localClose === 1 ? NGHTTP2_NO_ERROR : NGHTTP2_CANCEL);
    });
  };

  const countOutcome = (stream: ServerHttp2Stream) => {
    const now = performance.now();
    if (now - windowStart > opts.resetWindowMs) {
      windowStart = now;
      resets = 0;
      completed = 0;
    }
    // rstCode is NO_ERROR for a stream that ended normally, or that the
    // server ended itself after a complete answer.
    if (stream.rstCode === NGHTTP2_NO_ERROR || stream.rstCode === undefined) {
      completed++;
      return;
    }
    resets++;
    if (resets >= opts.maxResets && resets > completed && !ending) {
      opts.onAbuse?.(socket, "rapid_reset");
      end(NGHTTP2_ENHANCE_YOUR_CALM);
    }
  };
}
