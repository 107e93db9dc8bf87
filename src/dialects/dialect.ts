import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import type { CredentialKind, Credentials } from "../domain/credentials.js";
import type { Credits } from "../domain/credits/credits.js";
import type { Ledger } from "../domain/ledger.js";
import type { PageTokens } from "../domain/page-token.js";
import type { StreamLimiter } from "../domain/stream-limiter.js";
import type { Principal } from "../domain/access.js";
import type { ErrorEnvelopeWriter } from "../transport/rest/errors.js";
import type { RestAuthenticator, RestStreamer } from "../transport/rest/rest-handler.js";

/** What every dialect is built on. */
export interface DialectDeps {
  readonly ledger: Ledger;
  /** Commits and credits, over the same store. */
  readonly credits: Credits;
  /** Signs page tokens with the key every replica shares, so cursors survive restarts. */
  readonly pageTokens: PageTokens;
  readonly credentials: Credentials;
  /** The per-tenant cap on open streams, shared with WatchBalance. */
  readonly streams: StreamLimiter;
  /** Fires when the server shuts down (for long-lived streams). */
  readonly shutdown: AbortSignal;
}

/**
 * A vendor REST dialect: its protobuf services (annotated with the vendor's
 * paths and a JSON profile), their handlers over the ledger, and how its
 * clients authenticate and see errors. The core knows dialects only through
 * this interface, so deleting a dialect's folder (and its line in
 * dialects/index.ts) leaves the core intact.
 */
export interface Dialect {
  /** Short name used to switch it on or off ("triport", "3plguys", ...). */
  readonly name: string;
  readonly services: readonly DescService[];
  /** Registers the services' handlers on the Connect router. */
  register(router: ConnectRouter): void;
  /** REST authenticators by service type name. */
  readonly authenticators?: ReadonlyMap<string, RestAuthenticator>;
  /**
   * Authenticates Connect/gRPC calls to the dialect's services from their
   * headers, where the vendor's clients call them that way (Frontier).
   */
  readonly rpcAuthenticator?: (headers: Headers, procedure: string) => Promise<Principal | undefined>;
  /** REST streamers by "/pkg.Service/Method". */
  readonly streamers?: ReadonlyMap<string, RestStreamer>;
  /** Error envelope writers by name. */
  readonly envelopes?: ReadonlyMap<string, ErrorEnvelopeWriter>;
  readonly credentialKinds?: readonly CredentialKind[];
}

/** Builds a dialect from the shared dependencies. */
export type DialectFactory = (deps: DialectDeps) => Dialect;
