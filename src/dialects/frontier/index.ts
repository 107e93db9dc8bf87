import type { Dialect, DialectFactory } from "../dialect.js";
import { FrontierService } from "../../../gen/raystack/frontier/v1beta1/frontier_pb.js";
import { frontierAuthenticator, frontierClientKind } from "./auth.js";
import { frontierEnvelope } from "./envelope.js";
import { billingAccountIds, registerFrontierService } from "./service.js";

/**
 * Raystack Frontier's billing balance: `GET
 * /v1beta1/organizations/{org_id}/billing/{id}/balance` over REST, and the same
 * FrontierService.GetBillingBalance over Connect and gRPC, authenticated with
 * HTTP Basic client id / client secret (credential kind "frontier_client").
 */
export const frontierDialect: DialectFactory = ({ ledger, credentials }): Dialect => ({
  name: "frontier",
  services: [FrontierService],
  register(router) {
    registerFrontierService(router, ledger);
  },
  authenticate: frontierAuthenticator(credentials),
  envelopes: new Map([["frontier", frontierEnvelope]]),
  credentialKinds: [frontierClientKind(credentials)],
  accountIdRules: [billingAccountIds],
});
