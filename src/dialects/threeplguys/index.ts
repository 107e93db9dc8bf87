import type { Dialect, DialectFactory } from "../dialect.js";
import { BalanceService } from "../../../gen/threeplguys/v0/balance_pb.js";
import { threeplguysAuthenticator, threeplguysKeyKind } from "./auth.js";
import { THREEPLGUYS_ENVELOPE, threeplguysEnvelope } from "./envelope.js";
import { registerBalanceService } from "./service.js";

/**
 * The 3PLGuys dialect: `GET /v0/balance` and `GET /v0/balance/transactions`
 * in USD cents, authenticated with `Authorization: Bearer` API keys of kind
 * "3plguys_api_key" that are bound to one account and carry scopes.
 */
export const threeplguysDialect: DialectFactory = ({ ledger, credentials }): Dialect => ({
  name: "3plguys",
  services: [BalanceService],
  register(router) {
    registerBalanceService(router, ledger);
  },
  // Connect and gRPC clients of the same service may present a 3PLGuys key too.
  authenticate: threeplguysAuthenticator(credentials),
  envelopes: new Map([[THREEPLGUYS_ENVELOPE, threeplguysEnvelope]]),
  credentialKinds: [threeplguysKeyKind(credentials)],
});
