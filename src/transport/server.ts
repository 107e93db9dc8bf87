import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { AddressInfo } from "node:net";

/** A request handler shared by HTTP/1.1 and HTTP/2. */
export type NodeHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** Options for {@link listen}. */
export interface ListenOptions {
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port?: number;
  /** PEM certificate and key: serve TLS (h2 and HTTP/1.1 by ALPN) instead of plaintext. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer } | undefined;
  /** Time a client has to send its request headers; Node's default (60 s) is too generous for a public port. */
  readonly headersTimeoutMs?: number;
  /** Time a client has to send a whole HTTP/1.1 request. */
  readonly requestTimeoutMs?: number;
  /** Idle keep-alive connections are closed after this long. */
  readonly keepAliveTimeoutMs?: number;
  /** Largest total header size accepted, in bytes. */
  readonly maxHeaderBytes?: number;
}

/** A listening server. */
export interface Listening {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  /** Stops accepting, lets in-flight requests finish (up to graceMs), then closes every connection. */
  close(graceMs?: number): Promise<void>;
}

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * Serves one handler on one port for HTTP/1.1 and HTTP/2.
 *
 * Plaintext: Node cannot negotiate h2c and HTTP/1.1 on one server (ALPN only
 * exists with TLS), so a raw TCP server peeks at each connection's first bytes
 * and hands it to the HTTP/2 server when they are the HTTP/2 preface (gRPC and
 * h2c Connect clients send it), and to the HTTP/1.1 server otherwise (curl,
 * browsers, gRPC-Web). With TLS, ALPN does the same job.
 */
export async function listen(handler: NodeHandler, opts: ListenOptions = {}): Promise<Listening> {
  const host = opts.host ?? "127.0.0.1";
  const headersTimeout = opts.headersTimeoutMs ?? 10_000;
  const requestTimeout = opts.requestTimeoutMs ?? 60_000;
  const headerTimers = new WeakMap<net.Socket, NodeJS.Timeout>();
  const arm = (socket: net.Socket) => {
    disarm(socket);
    headerTimers.set(socket, setTimeout(() => socket.destroy(), headersTimeout));
  };
  const disarm = (socket: net.Socket) => {
    clearTimeout(headerTimers.get(socket));
    headerTimers.delete(socket);
  };
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  const busy = new Set<net.Socket>();
  const h1Sockets = new Set<net.Socket>();
  let closing = false;
  let front: net.Server;
  let h1: http.Server | undefined;
  let h2: http2.Http2Server | http2.Http2SecureServer;

  const h2Settings: http2.Settings = { maxConcurrentStreams: 1000, maxHeaderListSize: opts.maxHeaderBytes ?? 16384 };
  if (opts.tls) {
    const secure = http2.createSecureServer(
      { cert: opts.tls.cert, key: opts.tls.key, allowHTTP1: true, settings: h2Settings, maxSessionInvalidFrames: 100 },
      handler,
    );
    secure.setTimeout(0);
    h2 = secure;
    front = secure;
    secure.on("connection", (s: net.Socket) => track(sockets, s));
  } else {
    h1 = http.createServer(
      {
        headersTimeout,
        requestTimeout,
        keepAliveTimeout: opts.keepAliveTimeoutMs ?? 5_000,
        maxHeaderSize: opts.maxHeaderBytes ?? 16384,
      },
      handler,
    );
    // closeIdleConnections() does not see sockets handed over by emit("connection"),
    // so HTTP/1.1 sockets are tracked here: idle ones close at once on shutdown,
    // busy ones as soon as their response is done.
    //
    // Node enforces headersTimeout and requestTimeout from a timer that only runs
    // for a server that called listen() itself, which this one does not, so both
    // are enforced here: a socket must deliver each request's headers within
    // headersTimeout of being ready for it, and the whole request within requestTimeout.
    h1.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
      const socket = req.socket;
      busy.add(socket);
      disarm(socket);
      const requestTimer = setTimeout(() => socket.destroy(), requestTimeout);
      req.once("end", () => clearTimeout(requestTimer));
      res.once("close", () => {
        clearTimeout(requestTimer);
        busy.delete(socket);
        if (closing) socket.end();
        else if (!socket.destroyed) arm(socket);
      });
    });
    const plain = http2.createServer({ settings: h2Settings, maxSessionInvalidFrames: 100 }, handler);
    h2 = plain;
    front = net.createServer((socket) => {
      track(sockets, socket);
      // A connection that never sends its first bytes must not stay forever.
      socket.setTimeout(headersTimeout, () => socket.destroy());
      socket.once("readable", function peek() {
        const chunk: Buffer | null = socket.read();
        if (chunk === null) {
          socket.once("readable", peek);
          return;
        }
        socket.setTimeout(0);
        socket.unshift(chunk);
        const isH2 = chunk.length >= PREFACE.length ? chunk.subarray(0, PREFACE.length).equals(PREFACE) : PREFACE.subarray(0, chunk.length).equals(chunk);
        if (isH2) {
          plain.emit("connection", socket);
        } else {
          track(h1Sockets, socket);
          socket.once("close", () => disarm(socket));
          arm(socket);
          h1!.emit("connection", socket);
          socket.resume();
        }
      });
    });
  }
  h2.on("session", (s: http2.Http2Session) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });

  await new Promise<void>((resolve, reject) => {
    front.once("error", reject);
    front.listen(opts.port ?? 0, host, () => {
      front.off("error", reject);
      resolve();
    });
  });
  const port = (front.address() as AddressInfo).port;
  const scheme = opts.tls ? "https" : "http";
  const urlHost = host.includes(":") ? `[${host}]` : host;

  return {
    host,
    port,
    url: `${scheme}://${urlHost}:${port}`,
    async close(graceMs = 10_000) {
      closing = true;
      const stopped = new Promise<void>((r) => front.close(() => r()));
      for (const s of sessions) s.close();
      for (const s of h1Sockets) if (!busy.has(s)) s.end();
      const deadline = setTimeout(() => {
        for (const s of sessions) s.destroy();
        for (const s of sockets) s.destroy();
      }, graceMs);
      deadline.unref();
      await stopped;
      clearTimeout(deadline);
    },
  };
}

function track(set: Set<net.Socket>, s: net.Socket): void {
  set.add(s);
  s.once("close", () => set.delete(s));
}
