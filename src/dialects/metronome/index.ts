import type { Dialect, DialectFactory } from "../dialect.js";
import { BalancesService } from "../../../gen/metronome/v1/balances_pb.js";
import { metronomeAuthenticator, metronomeKeyKind } from "./auth.js";
import { METRONOME_ENVELOPE, metronomeEnvelope } from "./envelope.js";
import { registerBalancesService } from "./service.js";

/**
 * The Metronome dialect: the commits-and-credits POST endpoints under
 * `/v1/contracts/`, authenticated with tenant-wide Bearer platform keys of
 * kind "metronome_platform_key", over the same Credits domain as
 * tally.credits.v1.CreditService.
 */
export const metronomeDialect: DialectFactory = ({ credits, credentials, pageTokens }): Dialect => {
  return {
    name: "metronome",
    services: [BalancesService],
    register(router) {
      registerBalancesService(router, credits, pageTokens);
    },
    authenticate: metronomeAuthenticator(credentials),
    envelopes: new Map([[METRONOME_ENVELOPE, metronomeEnvelope]]),
    credentialKinds: [metronomeKeyKind(credentials)],
  };
};
