import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import type { AddressInfo } from "node:net";
import { ConnectionLimits } from "./connection-limits.js";
import type { Refusal } from "./connection-limits.js";
import { guardHttp1 } from "./h1-guard.js";
import { guardSession } from "./h2-session-guard.js";
import { DEFAULT_TLS_CIPHERS, DEFAULT_TLS_MIN_VERSION } from "./tls-defaults.js";
import { definedOnly } from "../options.js";

/** A request handler shared by HTTP/1.1 and HTTP/2. */
export type NodeHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** TLS settings of {@link ListenOptions}. */
export interface TlsOptions {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** Oldest version accepted ("TLSv1.2"). */
  readonly minVersion?: tls.SecureVersion;
  /** OpenSSL cipher list, TLS 1.3 suites included (forward-secret AEAD suites only). */
  readonly ciphers?: string;
}

/** Options for {@link listen}; every limit has a default fit for a public port. */
export interface ListenOptions {
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port?: number;
  /** Serve TLS (h2 and HTTP/1.1 by ALPN) instead of plaintext. */
  readonly tls?: TlsOptions | undefined;
  /**
   * Time a new connection has to set itself up (TLS handshake, HTTP/2
   * preface and SETTINGS, or its first HTTP/1.1 request headers), and each
   * later HTTP/1.1 request to send its headers, in ms (10 s). Node's 60 s is
   * too generous for a public port.
   */
  readonly headersTimeoutMs?: number;
  /** Time a client has to send a whole request (HTTP/1.1) or a stream's request (HTTP/2), in ms (60 s). */
  readonly requestTimeoutMs?: number;
  /** Idle HTTP/1.1 keep-alive connections are closed after this long, in ms (5 s). */
  readonly keepAliveTimeoutMs?: number;
  /** HTTP/2 sessions with no open stream are closed after this long, in ms (30 s). */
  readonly idleTimeoutMs?: number;
  /** HTTP/2 sessions with open streams are pinged this often, and cut when a ping goes unanswered, in ms (30 s; 0: off). */
  readonly pingIntervalMs?: number;
  /** Largest total header size accepted, in bytes (16 KiB). */
  readonly maxHeaderBytes?: number;
  /** Concurrent streams per HTTP/2 connection (256). */
  readonly maxStreamsPerConnection?: number;
  /** Open connections in all (default: the open-file limit less 64, at most 10,000). */
  readonly maxConnections?: number;
  /** Open connections per client address, IPv6 by /64 (256; 0: no limit). */
  readonly maxConnectionsPerAddress?: number;
  /** Rapid-reset defence; see {@link AbuseOptions}. */
  readonly abuse?: AbuseOptions;
  /** Told of refused connections and abusive sessions, at most once per 10 s per kind. */
  readonly onNotice?: (message: string, fields: Record<string, unknown>) => void;
}

/** When a session is abusive, and what happens to its address. */
export interface AbuseOptions {
  /** Streams a client may reset in resetWindowMs, beyond the ones it completes (100). */
  readonly maxResets?: number;
  /** In ms (10 s). */
  readonly resetWindowMs?: number;
  /** Abusive sessions from one address within strikeWindowMs that get it refused (3). */
  readonly strikes?: number;
  /** In ms (60 s). */
  readonly strikeWindowMs?: number;
  /** How long such an address has new connections refused, in ms (60 s). */
  readonly penaltyMs?: number;
}

/** A listening server. */
export interface Listening {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  /** Open connections now. */
  connections(): number;
  /** Stops accepting, lets in-flight requests finish (up to graceMs), then closes every connection. */
  close(graceMs?: number): Promise<void>;
}

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Time a client has to send a request's headers, in ms, unless `headersTimeoutMs` says otherwise. */
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
/** Time a client has to send a whole request, in ms, unless `requestTimeoutMs` says otherwise. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;

/**
 * Serves one handler on one port for HTTP/1.1 and HTTP/2: the listener in front of the front door (front-door.ts).
 * It admits connections (overall, per address, penalty box), bounds their
 * setup, and hands each to the HTTP/1.1 or the HTTP/2 server, whose
 * connections and streams are then bounded by h1-guard.ts and
 * h2-session-guard.ts.
 *
 * Plaintext: Node cannot negotiate h2c and HTTP/1.1 on one server (ALPN only
 * exists with TLS), so the listener peeks at each connection's first bytes
 * and hands it to the HTTP/2 server when they are (the start of) the HTTP/2
 * preface (gRPC and h2c Connect clients send it), and to the HTTP/1.1 server
 * otherwise (curl, browsers, gRPC-Web). With TLS, ALPN does the same job,
 * and both kinds get the same limits as in plaintext.
 */
export async function listen(handler: NodeHandler, opts: ListenOptions = {}): Promise<Listening> {
  const host = opts.host ?? "127.0.0.1";
  const headersTimeoutMs = opts.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  const requestTimeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const maxHeaderBytes = opts.maxHeaderBytes ?? 16384;
  const notice = throttled(opts.onNotice);
  const limits = new ConnectionLimits(
    definedOnly({
      maxConnections: opts.maxConnections,
      maxPerAddress: opts.maxConnectionsPerAddress,
      strikes: opts.abuse?.strikes,
      strikeWindowMs: opts.abuse?.strikeWindowMs,
      penaltyMs: opts.abuse?.penaltyMs,
    }),
  );
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  let closing = false;

  const h1 = http.createServer({ keepAliveTimeout: opts.keepAliveTimeoutMs ?? 5_000, maxHeaderSize: maxHeaderBytes }, handler);
  const h1Guard = guardHttp1(h1, { headersTimeoutMs, requestTimeoutMs });
  const h2 = http2.createServer(
    {
      settings: { maxConcurrentStreams: opts.maxStreamsPerConnection ?? 256, maxHeaderListSize: maxHeaderBytes },
      maxSessionInvalidFrames: 100,
    },
    handler,
  );
  const sessionGuard = {
    idleTimeoutMs: opts.idleTimeoutMs ?? 30_000,
    requestTimeoutMs,
    pingIntervalMs: opts.pingIntervalMs ?? 30_000,
    closeGraceMs: Math.min(5_000, headersTimeoutMs),
    maxResets: opts.abuse?.maxResets ?? 100,
    resetWindowMs: opts.abuse?.resetWindowMs ?? 10_000,
    onAbuse: (socket: net.Socket, reason: string) => {
      const penalised = limits.strike(socket.remoteAddress);
      notice(`session ended for abuse`, { reason, address: socket.remoteAddress, penalised });
    },
  };
  // The socket being handed to the HTTP/2 server: its "session" event comes synchronously.
  let handing: { socket: net.Socket; setupMs: number } | undefined;
  h2.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    guardSession(session, handing!.socket, { ...sessionGuard, handshakeTimeoutMs: handing!.setupMs });
    if (closing) session.close();
  });
  const toH2 = (socket: net.Socket, setupMs: number) => {
    handing = { socket, setupMs };
    try {
      h2.emit("connection", socket);
    } finally {
      handing = undefined;
    }
  };
  const toH1 = (socket: net.Socket, setupMs: number) => {
    h1Guard.adopt(socket, setupMs);
    h1.emit("connection", socket);
  };
  const admit = (socket: net.Socket): boolean => {
    // A stopping server takes no new connections (the listener may still hand over a last one).
    if (closing) {
      socket.destroy();
      return false;
    }
    const refusal: Refusal | undefined = limits.admit(socket);
    if (refusal !== undefined) {
      socket.destroy();
      notice("connection refused", { reason: refusal, address: socket.remoteAddress });
      return false;
    }
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    return true;
  };

  let front: net.Server;
  if (opts.tls) {
    const secure = tls.createServer({
      cert: opts.tls.cert,
      key: opts.tls.key,
      ALPNProtocols: ["h2", "http/1.1"],
      handshakeTimeout: headersTimeoutMs,
      minVersion: opts.tls.minVersion ?? DEFAULT_TLS_MIN_VERSION,
      ciphers: opts.tls.ciphers ?? DEFAULT_TLS_CIPHERS,
      honorCipherOrder: true,
    });
    // Runs after tls.Server's own listener has wrapped the socket; destroying it ends the TLS socket too.
    secure.on("connection", (socket: net.Socket) => void admit(socket));
    secure.on("secureConnection", (socket: tls.TLSSocket) => {
      if (socket.alpnProtocol === "h2") toH2(socket, headersTimeoutMs);
      else toH1(socket, headersTimeoutMs);
    });
    // Failed or timed-out handshakes: the client's doing. With a listener here, Node
    // leaves the socket open (a handshake that never started would be held for good).
    secure.on("tlsClientError", (_e: Error, socket: tls.TLSSocket) => socket.destroy());
    front = secure;
  } else {
    front = net.createServer((socket) => {
      if (!admit(socket)) return;
      const deadline = performance.now() + headersTimeoutMs;
      // A connection that never sends its first bytes must not stay forever.
      const firstBytes = setTimeout(() => socket.destroy(), headersTimeoutMs).unref();
      socket.once("close", () => clearTimeout(firstBytes));
      socket.on("error", () => undefined);
      socket.once("readable", function peek() {
        const chunk: Buffer | null = socket.read();
        if (chunk === null) {
          socket.once("readable", peek);
          return;
        }
        clearTimeout(firstBytes);
        socket.unshift(chunk);
        // What is left of the setup budget goes on bounding the preface and SETTINGS, or the headers.
        const setupMs = Math.max(1, deadline - performance.now());
        const n = Math.min(chunk.length, PREFACE.length);
        if (chunk.subarray(0, n).equals(PREFACE.subarray(0, n))) {
          toH2(socket, setupMs);
        } else {
          toH1(socket, setupMs);
          socket.resume();
        }
      });
    });
  }

  await new Promise<void>((resolve, reject) => {
    front.once("error", reject);
    front.listen(opts.port ?? 0, host, () => {
      front.off("error", reject);
      resolve();
    });
  });
  // accept() can fail (EMFILE when out of descriptors); that must not end the process.
  front.on("error", (e: NodeJS.ErrnoException) => notice("accept failed", { error: e.code ?? String(e) }));
  const port = (front.address() as AddressInfo).port;
  const scheme = opts.tls ? "https" : "http";
  const urlHost = host.includes(":") ? `[${host}]` : host;

  return {
    host,
    port,
    url: `${scheme}://${urlHost}:${port}`,
    connections: () => limits.size,
    async close(graceMs = 10_000) {
      closing = true;
      const stopped = new Promise<void>((r) => front.close(() => r()));
      for (const s of sessions) s.close();
      h1Guard.drain();
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

/**
 * At most one notice per message and reason every 10 s, with the count of
 * the ones left out: an attack must not turn into a flood of log lines.
 */
function throttled(sink: ListenOptions["onNotice"]): (message: string, fields: Record<string, unknown>) => void {
  const last = new Map<string, { at: number; skipped: number }>();
  return (message, fields) => {
    if (!sink) return;
    const key = `${message}/${String(fields.reason ?? "")}`;
    const now = performance.now();
    const seen = last.get(key);
    if (seen && now - seen.at < 10_000) {
      seen.skipped++;
      return;
    }
    last.set(key, { at: now, skipped: 0 });
    sink(message, seen?.skipped ? { ...fields, suppressed: seen.skipped } : fields);
  };
}
