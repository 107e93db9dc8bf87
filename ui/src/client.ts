import { createClient } from "@connectrpc/connect";
import type { Client, Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { AdminService } from "../../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../../gen/tally/ledger/v1/ledger_pb.js";

/** The browser protocols Tally speaks: Connect (JSON) and gRPC-Web (binary). */
export type WebProtocol = "connect" | "grpc-web";

/** Both, for pickers and test matrices. */
export const WEB_PROTOCOLS: readonly WebProtocol[] = ["connect", "grpc-web"];

/** Where and how to call Tally from a browser. */
export interface TallyWebOptions {
  /** Tally's origin, e.g. `location.origin` or `http://127.0.0.1:8080`. */
  readonly baseUrl: string;
  /** A Tally API key (`tly_…`), sent as `Authorization: Bearer`. */
  readonly apiKey: string;
  /** "connect" by default. */
  readonly protocol?: WebProtocol;
}

/** Typed clients of Tally's two services, over one transport. */
export interface TallyWebClients {
  readonly ledger: Client<typeof LedgerService>;
  readonly admin: Client<typeof AdminService>;
  readonly transport: Transport;
}

/**
 * Sends the key in a header, never in the URL: URLs end up in history,
 * logs and Referer headers.
 */
export function bearer(apiKey: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${apiKey}`);
    return next(req);
  };
}

/** A connect-web transport for Tally over one protocol. */
export function createTallyTransport(options: TallyWebOptions): Transport {
  const interceptors = [bearer(options.apiKey)];
  // gRPC-Web is always binary; Connect goes as JSON (int64 as strings, read back as exact bigints).
  return options.protocol === "grpc-web"
    ? createGrpcWebTransport({ baseUrl: options.baseUrl, interceptors })
    : createConnectTransport({ baseUrl: options.baseUrl, interceptors });
}

/**
 * Clients of LedgerService and AdminService for a browser page: the
 * dashboard's own, and importable on its own by any page built with a
 * bundler. Calls from another origin need Tally's `--cors-origins`.
 *
 * ```ts
 * const { ledger } = createTallyClients({ baseUrl: "http://127.0.0.1:8080", apiKey, protocol: "grpc-web" });
 * const { balance } = await ledger.getBalance({ accountId: "alice", asset: "USD" });
 * ```
 */
export function createTallyClients(options: TallyWebOptions): TallyWebClients {
  const transport = createTallyTransport(options);
  return { ledger: createClient(LedgerService, transport), admin: createClient(AdminService, transport), transport };
}
