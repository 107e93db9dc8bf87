import type { Dialect, DialectDeps, DialectFactory } from "../dialect.js";
import { BalanceService } from "../../../gen/triport/v1/triport_pb.js";
import { StreamLimiter } from "../../domain/stream-limiter.js";
import type { SessionResolver } from "./auth.js";
import { anySessionKey, hmacSessionResolver, sessionAuthenticator, sessionKeyKind } from "./auth.js";
import { triportEnvelope } from "./envelope.js";
import { registerTriport, triportEventStream } from "./service.js";

/** Options of the Triport dialect; every one has a default. */
export interface TriportOptions {
  /** How session cookies become principals (default: HMAC-signed tokens with triport_session_key credentials). */
  readonly sessionResolver?: (deps: DialectDeps) => SessionResolver;
  /** Keep-alive comment interval on the event stream, ms (default 15000, or env TALLY_TRIPORT_KEEPALIVE_MS). */
  readonly keepAliveMs?: number;
  /** Open event streams allowed per tenant (default 100). */
  readonly streamsPerTenant?: number;
}

function keepAliveFromEnv(): number {
  const raw = process.env["TALLY_TRIPORT_KEEPALIVE_MS"];
  const n = raw !== undefined && /^[1-9][0-9]*$/.test(raw) ? Number(raw) : NaN;
  return Number.isSafeInteger(n) ? n : 15_000;
}

/** Builds the Triport dialect with options. */
export function createTriportDialect(options: TriportOptions = {}): DialectFactory {
  return (deps): Dialect => {
    const resolver = options.sessionResolver?.(deps) ?? hmacSessionResolver(deps.credentials, anySessionKey(deps.credentials));
    // One cap for the stream on every protocol: SSE runs the same handler.
    const streams = options.streamsPerTenant === undefined ? deps.streams : new StreamLimiter(options.streamsPerTenant);
    return {
      name: "triport",
      services: [BalanceService],
      register: (router) => registerTriport(router, deps, streams),
      authenticate: sessionAuthenticator(resolver),
      eventStreams: new Map([
        [`/${BalanceService.typeName}/${BalanceService.method.streamBalanceEvents.name}`, triportEventStream(options.keepAliveMs ?? keepAliveFromEnv())],
      ]),
      envelopes: new Map([["triport", triportEnvelope]]),
      credentialKinds: [sessionKeyKind(deps.credentials)],
    };
  };
}

/**
 * Triport: the session user's micro-USD balance, its journal, pay-from-balance
 * and a Server-Sent Events stream. See docs/dialects/triport.md.
 */
export const triportDialect: DialectFactory = createTriportDialect();
