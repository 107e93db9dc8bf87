import { execFileSync } from "node:child_process";
import { connect as netConnect } from "node:net";
import type { Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { ConnectionOptions } from "node:tls";

/**
 * Hand-built HTTP/2 frames, for tests that must behave like a broken or
 * hostile client (no HTTP/2 library would send these). Only what the tests
 * need: HPACK literals without indexing and without Huffman coding.
 */
export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 } as const;
export const FLAG = { END_STREAM: 1, ACK: 1, END_HEADERS: 4 } as const;
export const H2_ERROR = { NO_ERROR: 0, PROTOCOL_ERROR: 1, CANCEL: 8, COMPRESSION_ERROR: 9, ENHANCE_YOUR_CALM: 11 } as const;

/** One frame: 9-byte header and payload. */
export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

/** An empty SETTINGS frame. */
export const SETTINGS = frame(FRAME.SETTINGS, 0, 0);

/** HPACK integer with an n-bit prefix (RFC 7541 §5.1). */
function hpackInt(value: number, prefixBits: number, firstByte = 0): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByte | value]);
  const out = [firstByte | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** A header block of literal fields without indexing (new names, no Huffman). */
export function headerBlock(headers: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(headers)) {
    parts.push(Buffer.from([0x00]), hpackInt(name.length, 7), Buffer.from(name, "latin1"), hpackInt(value.length, 7), Buffer.from(value, "latin1"));
  }
  return Buffer.concat(parts);
}

/** A HEADERS frame for a request; the stream stays open unless endStream. */
export function headersFrame(streamId: number, headers: Record<string, string>, endStream = false): Buffer {
  return frame(FRAME.HEADERS, FLAG.END_HEADERS | (endStream ? FLAG.END_STREAM : 0), streamId, headerBlock(headers));
}

/** RST_STREAM with an error code. */
export function rstFrame(streamId: number, code: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(FRAME.RST_STREAM, 0, streamId, p);
}

/** The reproduction: HEADERS whose HPACK block starts with a table-size update of 2^32-1. */
export const COMPRESSION_BOMB = Buffer.concat([
  PREFACE,
  SETTINGS,
  frame(FRAME.HEADERS, 5, 1, Buffer.from([0x3f, 0xe1, 0xff, 0xff, 0xff, 0x0f, 0x83, 0x86, 0x84])),
]);

/** A frame received from the server. */
export interface ReceivedFrame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

/** A raw connection that records the frames the server sends and when it closes. */
export interface RawConnection {
  readonly socket: Socket;
  readonly frames: ReceivedFrame[];
  /** Resolves with ms since connect when the server closed the connection (or it errored). */
  readonly closed: Promise<number>;
  /** Resolves with the first frame matching, or rejects after ms. */
  waitFor(match: (f: ReceivedFrame) => boolean, ms: number): Promise<ReceivedFrame>;
}

/** How a raw test client behaves. */
export interface RawClientOptions {
  /** Source address (another 127.x.y.z address counts as another client). */
  readonly localAddress?: string;
  /** Answer the server's PINGs, as a live peer does (true). */
  readonly answerPings?: boolean;
  /** Keep this side open after the server ends its side, as a stuck peer would (false). */
  readonly allowHalfOpen?: boolean;
}

/** Opens a raw TCP (or TLS, with ALPN h2 unless told otherwise) connection to 127.0.0.1:port. */
export function rawConnect(port: number, tls?: ConnectionOptions, opts: RawClientOptions = {}): Promise<RawConnection> {
  const { localAddress, answerPings = true, allowHalfOpen = false } = opts;
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const where = { host: "127.0.0.1", port, allowHalfOpen, ...(localAddress ? { localAddress } : {}) };
    const socket = tls ? tlsConnect({ ...where, ALPNProtocols: ["h2"], ...tls }) : netConnect(where);
    const frames: ReceivedFrame[] = [];
    const waiters: Array<{ match: (f: ReceivedFrame) => boolean; resolve: (f: ReceivedFrame) => void }> = [];
    let buf = Buffer.alloc(0);
    socket.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const f = { type: buf[3]!, flags: buf[4]!, streamId: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) };
        buf = buf.subarray(9 + len);
        frames.push(f);
        // A live peer answers pings; the server cuts sessions whose pings go unanswered.
        if (answerPings && f.type === FRAME.PING && (f.flags & FLAG.ACK) === 0 && !socket.destroyed) socket.write(frame(FRAME.PING, FLAG.ACK, 0, Buffer.from(f.payload)));
        for (const w of [...waiters]) {
          if (w.match(f)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(f);
          }
        }
      }
    });
    const closed = new Promise<number>((r) => {
      socket.on("close", () => r(performance.now() - start));
      socket.on("end", () => r(performance.now() - start));
    });
    socket.on("error", () => undefined);
    socket.once(tls ? "secureConnect" : "connect", () =>
      resolve({
        socket,
        frames,
        closed,
        waitFor(match, ms) {
          const seen = frames.find(match);
          if (seen) return Promise.resolve(seen);
          return new Promise((res, rej) => {
            const t = setTimeout(() => rej(new Error(`no matching frame within ${ms} ms; got types ${frames.map((f) => f.type).join(",")}`)), ms);
            waiters.push({ match, resolve: (f) => (clearTimeout(t), res(f)) });
          });
        },
      }),
    );
    socket.once("error", reject);
  });
}

/** The error code of a GOAWAY or RST_STREAM frame. */
export function errorCodeOf(f: ReceivedFrame): number {
  return f.type === FRAME.GOAWAY ? f.payload.readUInt32BE(4) : f.payload.readUInt32BE(0);
}

/** Server-side sockets of a port in a TCP state ("close-wait", "established"...), as `ss` sees them. */
export async function socketsInState(port: number, state: string): Promise<number> {
  const out = execFileSync("ss", ["-Htan", "state", state, `( sport = :${port} )`], { encoding: "utf8" });
  return out.split("\n").filter((l) => l.trim() !== "").length;
}

/**
 * Whether process `pid` still holds (has a descriptor for) the server side of
 * the connection from `clientPort` to `port`. A socket the server has closed
 * may linger in the kernel (FIN-WAIT-2, TIME-WAIT) but belongs to no process.
 */
export function serverHoldsConnection(port: number, clientPort: number, pid = process.pid): boolean {
  const out = execFileSync("ss", ["-Htanp", `( sport = :${port} and dport = :${clientPort} )`], { encoding: "utf8" });
  return out.includes(`pid=${pid},`);
}

/**
 * Sends the reproduction n times, `parallel` connections at a time,
 * each destroyed by the client after 100 ms (TLS with ALPN h2 when `tls` is given).
 */
export async function compressionBombs(port: number, n: number, parallel: number, tls?: ConnectionOptions, localAddress?: string): Promise<void> {
  const one = () =>
    new Promise<void>((done) => {
      const where = { host: "127.0.0.1", port, ...(localAddress ? { localAddress } : {}) };
      const s = tls ? tlsConnect({ ...where, ALPNProtocols: ["h2"], ...tls }) : netConnect(where);
      s.once(tls ? "secureConnect" : "connect", () => s.write(COMPRESSION_BOMB));
      s.on("data", () => undefined);
      s.on("error", () => undefined);
      setTimeout(() => {
        s.destroy();
        done();
      }, 100);
    });
  for (let i = 0; i < n; i += parallel) await Promise.all(Array.from({ length: Math.min(parallel, n - i) }, one));
}
