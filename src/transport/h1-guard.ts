import type * as http from "node:http";
import type { Socket } from "node:net";
import { drainBody } from "./h1-linger.js";
import type { LingerBounds } from "./h1-linger.js";

/** Options for {@link guardHttp1}. */
export interface Http1GuardOptions {
  /** Time a client has to send each request's headers, in ms. */
  readonly headersTimeoutMs: number;
  /** Time a client has to send a whole request, in ms. */
  readonly requestTimeoutMs: number;
  /**
   * How much of a body its answer did not wait for is read and dropped
   * before the connection is closed (default: 64 MiB, within 5 s or the
   * request timeout if shorter).
   */
  readonly linger?: LingerBounds;
}

/** What {@link guardHttp1} returns. */
export interface Http1Guard {
  /**
   * Starts guarding a socket just handed to the HTTP/1.1 server: its first
   * request's headers must be in within `headersMs` (the time left of the
   * connection's setup budget).
   */
  adopt(socket: Socket, headersMs?: number): void;
  /** Graceful stop: idle sockets are ended now, busy ones once their response is written. */
  drain(): void;
  /** Sockets the HTTP/1.1 server holds. */
  readonly sockets: ReadonlySet<Socket>;
}

/**
 * Node enforces headersTimeout and requestTimeout from a timer that only runs
 * for an http.Server that called listen() itself, which Tally's does not (the
 * listener hands it sockets, plaintext or TLS), and it checks them only
 * every 30 s. So both are enforced here, per socket: each request's headers
 * within headersTimeout of the socket being ready for them, and the whole
 * request within requestTimeout. A request still unsent at its deadline first
 * gets the RPC layer's deadline_exceeded answer (written at the same moment),
 * then the socket is closed: a half-read body leaves nothing reusable.
 *
 * An answer written before its request's body was read (an oversized
 * body's 413 or 429, a 415, a 404 to a POST) is followed by a lingering
 * close: the rest of the body is read and dropped, within bounds, before the
 * connection closes (see h1-linger.ts), so that the client can finish
 * sending and read the answer instead of getting a reset. With
 * `Connection: close` the connection then closes; without it (connect's
 * own answers), it serves the next request once the body is drained.
 *
 * closeIdleConnections() does not see sockets handed over by
 * emit("connection"), so they are tracked here for graceful stops too.
 */
export function guardHttp1(server: http.Server, opts: Http1GuardOptions): Http1Guard {
  const headerTimers = new WeakMap<Socket, NodeJS.Timeout>();
  const sockets = new Set<Socket>();
  const busy = new Set<Socket>();
  /** The request each socket serves now (Node reads requests on a socket one at a time). */
  const current = new WeakMap<Socket, http.IncomingMessage>();
  /** Sockets whose unread body is being drained. */
  const lingering = new WeakSet<Socket>();
  const linger: LingerBounds = opts.linger ?? { maxBytes: 64 * 1024 * 1024, maxMs: Math.min(5_000, opts.requestTimeoutMs) };
  let draining = false;
  const arm = (socket: Socket, ms = opts.headersTimeoutMs) => {
    disarm(socket);
    headerTimers.set(socket, setTimeout(() => socket.destroy(), ms).unref());
  };
  const disarm = (socket: Socket) => {
    clearTimeout(headerTimers.get(socket));
    headerTimers.delete(socket);
  };

  server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const socket = req.socket;
    busy.add(socket);
    current.set(socket, req);
    disarm(socket);
    const requestTimer = setTimeout(() => {
      if (req.complete) return;
      // Let an answer already on its way (deadline_exceeded) reach the client first, and
      // close with a FIN: destroying a socket with unread input sends RST, which can
      // discard the answer before the client reads it.
      const close = () => {
        socket.end();
        setTimeout(() => socket.destroy(), 1000).unref();
      };
      if (res.writableFinished) {
        close();
        return;
      }
      const grace = setTimeout(() => socket.destroy(), Math.min(1000, opts.requestTimeoutMs)).unref();
      res.once("finish", () => {
        clearTimeout(grace);
        close();
      });
    }, opts.requestTimeoutMs).unref();
    req.once("end", () => clearTimeout(requestTimer));
    // Registered after Node's own "finish" listener: a Connection: close answer
    // has already started its lingering close (destroySoon below) by now.
    res.once("finish", () => {
      // (A destroyed request was abandoned by its reader, and Node has dealt with its socket.)
      if (req.complete || req.destroyed || socket.destroyed || lingering.has(socket)) return;
      // A keep-alive answer to a body nobody read: drop the rest, and the
      // connection serves the next request; a body past the bounds is not worth it.
      lingering.add(socket);
      drainBody(req, linger, (drained) => {
        lingering.delete(socket);
        if (!drained) socket.destroy();
        else if (draining) socket.end();
      });
    });
    res.once("close", () => {
      busy.delete(socket);
      // (A socket still draining a body is ended once that is done.)
      if (draining) {
        if (!lingering.has(socket)) socket.end();
      }
      // The next request's headers are due; a body still trickling in is bounded by that too.
      else if (!socket.destroyed) arm(socket);
      if (req.complete) clearTimeout(requestTimer);
    });
  });

  return {
    sockets,
    adopt(socket, headersMs) {
      sockets.add(socket);
      // Node ends a Connection: close answer with destroySoon(): FIN, then destroy
      // once written. With the body still arriving, that destroy resets the
      // connection under the client; drain the rest first.
      const destroySoon = socket.destroySoon.bind(socket);
      socket.destroySoon = () => {
        const req = current.get(socket);
        if (req === undefined || req.complete || req.destroyed || socket.destroyed || lingering.has(socket)) return destroySoon();
        lingering.add(socket);
        drainBody(req, linger, () => destroySoon());
      };
      socket.once("close", () => {
        sockets.delete(socket);
        disarm(socket);
      });
      arm(socket, headersMs);
    },
    drain() {
      draining = true;
      for (const s of sockets) if (!busy.has(s)) s.end();
    },
  };
}
