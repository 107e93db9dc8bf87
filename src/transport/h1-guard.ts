import type * as http from "node:http";
import type { Socket } from "node:net";

/** Options for {@link guardHttp1}. */
export interface Http1GuardOptions {
  /** Time a client has to send each request's headers, in ms. */
  readonly headersTimeoutMs: number;
  /** Time a client has to send a whole request, in ms. */
  readonly requestTimeoutMs: number;
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
 * closeIdleConnections() does not see sockets handed over by
 * emit("connection"), so they are tracked here for graceful stops too.
 */
export function guardHttp1(server: http.Server, opts: Http1GuardOptions): Http1Guard {
  const headerTimers = new WeakMap<Socket, NodeJS.Timeout>();
  const sockets = new Set<Socket>();
  const busy = new Set<Socket>();
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
    res.once("close", () => {
      busy.delete(socket);
      if (draining) socket.end();
      // The next request's headers are due; a body still trickling in is bounded by that too.
      else if (!socket.destroyed) arm(socket);
      if (req.complete) clearTimeout(requestTimer);
    });
  });

  return {
    sockets,
    adopt(socket, headersMs) {
      sockets.add(socket);
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
