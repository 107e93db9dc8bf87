/**
 * Diagnostic baseline: Tally's own LedgerService handlers served the stock
 * connect-node way (connectNodeAdapter on http2.createServer) with only the
 * auth interceptor, which the handlers need to find their principal.
 *
 * Against Tally it isolates what Tally's transport adds on top of
 * connect-node (the HTTP/1.1-or-h2c front door, the custom RPC handler, the
 * log and error interceptors, the shutdown signal); against grpc-js it shows
 * what connect-node itself costs.
 *
 * Usage: node --import tsx bench/connect-stock-server.ts --db FILE
 * Prints `READY port=N` once listening.
 */
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { Access } from "../src/domain/access.js";
import { Ledger } from "../src/domain/ledger.js";
import { registerLedgerService } from "../src/services/ledger-service.js";
import { PageTokens } from "../src/domain/page-token.js";
import { StreamLimiter } from "../src/domain/stream-limiter.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { authInterceptor, createAuthenticate } from "../src/transport/auth-interceptor.js";

const { values } = parseArgs({ options: { db: { type: "string" }, host: { type: "string", default: "127.0.0.1" } } });
if (!values.db) throw new Error("--db FILE is required");

const store = SqliteStore.open({ path: values.db });
const ledger = new Ledger({ store });
const access = new Access(store, () => ledger.now());
// GetBalance never touches page tokens; a throwaway key keeps this server read-only on the shared file.
const pageTokens = new PageTokens(Buffer.from(PageTokens.newKey(), "base64url"));

const handler = connectNodeAdapter({
  routes: (router) => registerLedgerService(router, { ledger, pageTokens, streams: new StreamLimiter(100) }),
  interceptors: [authInterceptor(createAuthenticate(access))],
});
// Same stream limit as Tally's server, so h2load's -m means the same on every target.
const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, handler);
server.listen(0, values.host, () => {
  process.stdout.write(`READY port=${(server.address() as AddressInfo).port}\n`);
});
process.once("SIGTERM", () => {
  server.close();
  setTimeout(() => void store.close().then(() => process.exit(0)), 200).unref();
});
