/**
 * Baseline (b), the ceiling: a bare node:http2 server that answers every
 * request with the same gRPC response bytes, with no routing, no decoding and
 * no database. Nothing written in Node on this machine can serve unary gRPC
 * faster, so it bounds what any framework could reach here.
 *
 * Usage: node --import tsx bench/ceiling-server.ts --response FILE
 * FILE holds a complete gRPC response body (5-byte prefix and message); the
 * bench writes the bytes Tally itself returned, so the responses are the same size.
 * Prints `READY port=N` once listening.
 */
import { readFileSync } from "node:fs";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { response: { type: "string" }, host: { type: "string", default: "127.0.0.1" } } });
if (!values.response) throw new Error("--response FILE is required");
const body = readFileSync(values.response);
const TRAILERS = { "grpc-status": "0", "grpc-message": "" };

// Same stream limit as Tally's server, so h2load's -m means the same on every target.
const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on("stream", (stream) => {
  // Answer once the request is fully read, as a real unary handler must.
  stream.on("data", () => {});
  stream.once("end", () => {
    if (stream.destroyed) return;
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers(TRAILERS));
    stream.end(body);
  });
  stream.on("error", () => {});
});
server.on("sessionError", () => {});
server.listen(0, values.host, () => {
  process.stdout.write(`READY port=${(server.address() as AddressInfo).port}\n`);
});
// Close on SIGTERM so that --cpu-prof (when used) can write its profile.
process.once("SIGTERM", () => {
  server.close();
  setTimeout(() => process.exit(0), 200).unref();
});
