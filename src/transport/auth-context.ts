import { createContextKey } from "@connectrpc/connect";

/**
 * The Authorization header of a REST request, for the RPC it is transcoded
 * into: an in-process call carries no HTTP headers of its own.
 */
export const authorizationKey = createContextKey<string | undefined>(undefined, { description: "rest authorization header" });
