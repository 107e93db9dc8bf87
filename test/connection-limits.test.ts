import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectionLimits, addressKey, defaultMaxConnections } from "../src/transport/connection-limits.js";
import type { Logger } from "../src/transport/log.js";
import { FLAG, FRAME, H2_ERROR, PREFACE, SETTINGS, errorCodeOf, frame, headersFrame, rawConnect, rstFrame } from "./support/h2-frames.js";
import type { RawConnection } from "./support/h2-frames.js";
import { startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

describe("client addresses (unit)", () => {
  it("counts IPv4 as is, IPv4-mapped IPv6 as IPv4, and IPv6 by /64", () => {
    expect(addressKey("10.1.2.3")).toBe("10.1.2.3");
    expect(addressKey("::ffff:10.1.2.3")).toBe("10.1.2.3");
    expect(addressKey("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(addressKey("2001:db8:1:2:bbbb:cccc:dddd:eeee")).toBe("2001:db8:1:2::/64");
    expect(addressKey("2001:0db8:0001:0002::")).toBe("2001:db8:1:2::/64");
    expect(addressKey("::1")).toBe("0:0:0:0::/64");
    expect(addressKey(undefined)).toBe("unknown");
  });

  it("derives the default overall limit from the open-file limit", () => {
    expect(defaultMaxConnections("/nonexistent")).toBe(10_000);
    const n = defaultMaxConnections();
    expect(n).toBeGreaterThanOrEqual(16);
    expect(n).toBeLessThanOrEqual(10_000);
  });
});

/** Enough of a socket for ConnectionLimits: an address and a close event. */
function fakeSocket(remoteAddress: string): Socket & { close(): void } {
  const e = new EventEmitter() as EventEmitter & { remoteAddress: string; close(): void };
  e.remoteAddress = remoteAddress;
  e.close = () => e.emit("close");
  return e as never;
}

describe("ConnectionLimits (unit)", () => {
  it("refuses past the overall and the per-address limits, and admits again once a connection closes", () => {
    const limits = new ConnectionLimits({ maxConnections: 3, maxPerAddress: 2 });
    const a1 = fakeSocket("10.0.0.1");
    expect(limits.admit(a1)).toBeUndefined();
    expect(limits.admit(fakeSocket("10.0.0.1"))).toBeUndefined();
    expect(limits.admit(fakeSocket("10.0.0.1"))).toBe("max_per_address");
    expect(limits.admit(fakeSocket("10.0.0.2"))).toBeUndefined();
    expect(limits.admit(fakeSocket("10.0.0.3"))).toBe("max_connections");
    expect(limits.size).toBe(3);
    a1.close();
    expect(limits.size).toBe(2);
    expect(limits.admit(fakeSocket("10.0.0.1"))).toBeUndefined();
  });

  it("puts an address in the penalty box after enough strikes within the window, for the penalty time only", () => {
    let now = 0;
    const limits = new ConnectionLimits({ strikes: 3, strikeWindowMs: 1000, penaltyMs: 5000, now: () => now });
    expect(limits.strike("10.0.0.9")).toBe(false);
    now = 600;
    expect(limits.strike("10.0.0.9")).toBe(false);
    now = 1200; // the first strike has expired
    expect(limits.strike("10.0.0.9")).toBe(false);
    expect(limits.admit(fakeSocket("10.0.0.9"))).toBeUndefined();
    now = 1300;
    expect(limits.strike("10.0.0.9")).toBe(true);
    expect(limits.admit(fakeSocket("10.0.0.9"))).toBe("penalty");
    expect(limits.admit(fakeSocket("10.0.0.10"))).toBeUndefined();
    now = 1300 + 5001;
    expect(limits.admit(fakeSocket("10.0.0.9"))).toBeUndefined();
  });

  it("forgets the oldest addresses beyond maxTracked", () => {
    const limits = new ConnectionLimits({ strikes: 1, maxTracked: 2 });
    limits.strike("10.0.0.1");
    limits.strike("10.0.0.2");
    limits.strike("10.0.0.3");
    expect(limits.admit(fakeSocket("10.0.0.1"))).toBeUndefined();
    expect(limits.admit(fakeSocket("10.0.0.3"))).toBe("penalty");
  });
});

const PENALTY_MS = 3000;
const lines: Array<Record<string, unknown>> = [];
const logger: Logger = { info: () => undefined, error: (msg, fields) => lines.push({ msg, ...fields }) };
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({
    maxConnectionsPerAddress: 3,
    abuse: { maxResets: 50, strikes: 2, penaltyMs: PENALTY_MS },
    logger,
  });
});
afterAll(async () => {
  await server.close();
});

/** A raw h2 connection from `from` that has exchanged SETTINGS, or undefined when the server closed it without a word. */
async function h2From(from: string): Promise<RawConnection | undefined> {
  const c = await rawConnect(server.tally.port, undefined, { localAddress: from });
  c.socket.write(Buffer.concat([PREFACE, SETTINGS]));
  const first = await Promise.race([c.waitFor((f) => f.type === FRAME.SETTINGS, 5000).catch(() => undefined), c.closed.then(() => undefined)]);
  return first ? c : undefined;
}

const grpcGet = {
  ":method": "POST",
  ":scheme": "http",
  ":path": "/tally.ledger.v1.LedgerService/GetBalance",
  ":authority": "127.0.0.1",
  "content-type": "application/grpc",
};

describe("limits on a live server", () => {
  it("holds at most maxConnectionsPerAddress connections from one address; other addresses are served", async () => {
    const held = [await h2From("127.0.0.3"), await h2From("127.0.0.3"), await h2From("127.0.0.3")];
    expect(held.every((c) => c !== undefined)).toBe(true);
    expect(await h2From("127.0.0.3")).toBeUndefined();
    const other = await h2From("127.0.0.4");
    expect(other).toBeDefined();
    held[0]!.socket.destroy();
    await held[0]!.closed;
    // The server sees the close a moment later.
    let again: RawConnection | undefined;
    for (let i = 0; i < 20 && !again; i++) {
      await new Promise((r) => setTimeout(r, 50));
      again = await h2From("127.0.0.3");
    }
    expect(again).toBeDefined();
    for (const c of [...held, other, again]) c?.socket.destroy();
    expect(lines.some((l) => l.msg === "connection refused" && l.reason === "max_per_address" && l.address === "127.0.0.3")).toBe(true);
  });

  it("ends a rapid-reset session with ENHANCE_YOUR_CALM, then refuses the address for a while", async () => {
    const flood = async () => {
      const c = (await h2From("127.0.0.5"))!;
      const frames: Buffer[] = [];
      for (let id = 1; id < 400; id += 2) frames.push(headersFrame(id, grpcGet), rstFrame(id, H2_ERROR.CANCEL));
      c.socket.write(Buffer.concat(frames));
      const goaway = await c.waitFor((f) => f.type === FRAME.GOAWAY, 5000);
      expect(errorCodeOf(goaway)).toBe(H2_ERROR.ENHANCE_YOUR_CALM);
      await c.closed;
    };
    await flood();
    expect(lines.some((l) => l.msg === "session ended for abuse" && l.reason === "rapid_reset")).toBe(true);
    await flood(); // the second strike: penalised
    const start = performance.now();
    expect(await h2From("127.0.0.5")).toBeUndefined();
    const bystander = await h2From("127.0.0.6");
    expect(bystander).toBeDefined();
    bystander!.socket.destroy();
    // Served again once the penalty is over.
    let back: RawConnection | undefined;
    while (!back && performance.now() - start < PENALTY_MS + 5000) {
      await new Promise((r) => setTimeout(r, 250));
      back = await h2From("127.0.0.5");
    }
    expect(back).toBeDefined();
    back!.socket.destroy();
  });

  it("does not treat a client that completes calls and cancels some streams as abusive", async () => {
    const c = (await h2From("127.0.0.7"))!;
    let id = 1;
    // 120 calls answered (unauthenticated, but complete) and 60 streams reset by the client,
    // more than maxResets: a client that cancels what it no longer needs, not an attacker.
    for (let i = 0; i < 120; i++) {
      const call = id;
      id += 2;
      c.socket.write(Buffer.concat([headersFrame(call, grpcGet), frame(FRAME.DATA, FLAG.END_STREAM, call, Buffer.alloc(5))]));
      await c.waitFor((f) => f.streamId === call && (f.flags & FLAG.END_STREAM) !== 0, 5000);
      if (i % 2 === 0) {
        c.socket.write(Buffer.concat([headersFrame(id, grpcGet), rstFrame(id, H2_ERROR.CANCEL)]));
        id += 2;
      }
    }
    const last = id;
    c.socket.write(Buffer.concat([headersFrame(last, grpcGet), frame(FRAME.DATA, FLAG.END_STREAM, last, Buffer.alloc(5))]));
    await c.waitFor((f) => f.streamId === last && (f.flags & FLAG.END_STREAM) !== 0, 5000);
    expect(c.frames.filter((f) => f.type === FRAME.GOAWAY)).toEqual([]);
    c.socket.destroy();
  });
});
