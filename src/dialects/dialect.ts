import type { DescMessage, DescService, Message, MessageShape } from "@bufbuild/protobuf";
import type { ConnectError, ConnectRouter } from "@connectrpc/connect";
import type { CredentialKind, Credentials } from "../domain/credentials.js";
import type { Credits } from "../domain/credits/credits.js";
import type { Ledger } from "../domain/ledger.js";
import type { PageTokens } from "../domain/page-token.js";
import type { StreamLimiter } from "../domain/stream-limiter.js";
import type { Principal } from "../domain/access.js";
import type { AccountIdRule } from "../domain/ids.js";

// The contract between the core and a dialect, in domain, gen, protobuf and
// Connect types only: src/transport implements it and imports it from here.

/** What an authenticator sees of a call, whatever its protocol. */
export interface AuthRequest {
  /** The request headers (of the REST request, for a transcoded call). */
  readonly headers: Headers;
  /** The procedure called, `/package.Service/Method`. */
  readonly procedure: string;
  /** Set for a call that came in as REST: what a request signature covers. */
  readonly http?: HttpRequestParts | undefined;
}

/** The parts of a REST request beyond its headers. */
export interface HttpRequestParts {
  readonly method: string;
  /** Path and query, as sent. */
  readonly url: string;
  /** The raw body as sent (still in its Content-Encoding, as a Content-Digest covers it), already read (bounded). */
  readonly body: Uint8Array;
}

/**
 * Resolves the caller of a dialect's calls (session cookie, signature, Basic
 * auth, the vendor's API keys...), over every protocol. Returning undefined
 * leaves the call to the default, Tally's `Authorization: Bearer` API keys;
 * throwing unauthenticated refuses it. Run by the one auth interceptor, for
 * every call to the dialect's services.
 */
export type Authenticator = (req: AuthRequest) => Promise<Principal | undefined>;

/** Writes a message as JSON in a route's JSON profile (field names, int64 and enum forms). */
export interface ProfileJson {
  toJson<D extends DescMessage>(schema: D, message: MessageShape<D>): string;
}

/**
 * How a server-streaming method answers over REST as server-sent events
 * (text/event-stream). The REST layer runs the method through the same
 * pipeline as every other call (so the per-tenant stream cap and the
 * interceptors apply) and owns the loop: headers, keep-alive comments,
 * back-pressure, Last-Event-ID. The dialect supplies only the frame.
 */
export interface EventStreamFormat {
  /** One message as one frame (`id:`, `event:` and `data:` lines, then a blank line); "" sends nothing for it. */
  frame(message: Message, json: ProfileJson): string;
  /**
   * The request field (an int64 or uint64 field, by its JSON-less local
   * name) that a reconnecting client's `Last-Event-ID` header sets. A value
   * that is not a canonical non-negative integer of the field's range is
   * ignored: the stream starts afresh, as for a first connection.
   */
  readonly lastEventIdField?: string;
  /** Interval of the `:` keep-alive comment, in ms. */
  readonly keepAliveMs: number;
}

/** A written error: status, headers and body. */
export interface WrittenError {
  readonly status: number;
  readonly body: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Context an envelope writer may use. */
export interface ErrorContext {
  /** The status the code maps to (413 for an oversized body, 405, ...). */
  readonly status: number;
}

/**
 * Writes an error in a dialect's envelope. Registered by name; a service's
 * JSON profile names the one its routes use.
 */
export type ErrorEnvelopeWriter = (e: ConnectError, ctx: ErrorContext) => WrittenError;

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
  /** Authenticates calls to the dialect's services; without one, they take Tally's Bearer API keys. */
  readonly authenticate?: Authenticator;
  /** Server-sent event formats of its server-streaming REST routes, by "/pkg.Service/Method". */
  readonly eventStreams?: ReadonlyMap<string, EventStreamFormat>;
  /** Error envelope writers by name. */
  readonly envelopes?: ReadonlyMap<string, ErrorEnvelopeWriter>;
  readonly credentialKinds?: readonly CredentialKind[];
  /**
   * Request headers its clients send beyond `authorization` and the RPC
   * protocols' own (lower-case): a browser sends them to another origin only
   * once a CORS preflight allows them.
   */
  readonly requestHeaders?: readonly string[];
  /** Forms the ids of the accounts it reads must have (CreateAccount generates and checks them). */
  readonly accountIdRules?: readonly AccountIdRule[];
}

/** Builds a dialect from the shared dependencies. */
export type DialectFactory = (deps: DialectDeps) => Dialect;
