/**
 * The baseline of `npm run bench:streams`: a bare node:http2 server that
 * holds every request open as an idle server stream after one message, with
 * no routing, no decoding, no database and no feed. What it costs per stream
 * is what Node's HTTP/2 stack alone costs, so it bounds what any server of
 * long-lived streams could reach here.
 *
 * Usage: node --import tsx bench/idle-stream-server.ts [--api compat|stream]
 * `compat` (the default) serves through the request/response objects that
 * Tally's front door uses; `stream` through the raw `stream` event.
 * Prints `READY port=N` once listening.
 */
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { api: { type: "string", default: "compat" } } });
// One gRPC envelope of a few bytes: the client counts it as the stream's first message.
const FIRST = Buffer.from([0, 0, 0, 0, 4, 10, 2, 8, 1]);
const HEADERS = { ":status": 200, "content-type": "application/grpc" };

// Same per-connection stream limit as Tally's default, so the client's connections hold the same number.
const server = http2.createServer({ settings: { maxConcurrentStreams: 256 } });
if (values.api === "stream") {
  server.on("stream", (stream) => {
    stream.on("data", () => {});
    stream.once("end", () => {
      if (stream.destroyed) return;
      stream.respond(HEADERS);
      stream.write(FIRST);
    });
    stream.on("error", () => {});
  });
} else if (values.api === "compat") {
  server.on("request", (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    req.on("data", () => {});
    req.once("end", () => {
      res.writeHead(200, { "content-type": "application/grpc" });
      res.write(FIRST);
    });
    res.on("error", () => {});
  });
} else {
  throw new Error(`--api ${values.api}: compat or stream`);
}
server.on("sessionError", () => {});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`READY port=${(server.address() as AddressInfo).port}\n`);
});
process.once("SIGTERM", () => {
  server.close();
  process.exit(0);
});
