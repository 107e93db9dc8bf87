import type { DialectFactory } from "../dialect.js";
import { AccountBalanceService } from "../../../gen/blacksheep/v1/blacksheep_pb.js";
import { SIGNED_REQUEST_HEADERS, blacksheepAuthenticator, blacksheepKeyKind } from "./auth.js";
import { blacksheepEnvelope } from "./envelope.js";
import { registerBlacksheep } from "./service.js";

/**
 * Blacksheep: `POST /account.balance.getMany` with Ed25519 request signing.
 * See docs/dialects/blacksheep.md.
 */
export const blacksheepDialect: DialectFactory = (deps) => ({
  name: "blacksheep",
  services: [AccountBalanceService],
  register: (router) => registerBlacksheep(router, deps.ledger),
  authenticate: blacksheepAuthenticator(deps.credentials),
  envelopes: new Map([["blacksheep", blacksheepEnvelope]]),
  credentialKinds: [blacksheepKeyKind(deps.credentials)],
  requestHeaders: SIGNED_REQUEST_HEADERS,
});
