import { createContextKey } from "@connectrpc/connect";
import type { HttpRequestParts } from "../dialects/dialect.js";

/** A call the REST transcoder makes: the HTTP request it came in as. */
export interface RestCall extends HttpRequestParts {
  /** The path without the query, for the log. */
  readonly path: string;
  /** The dialect whose route it is ("" for Tally's own annotated services), for the log. */
  readonly dialect: string;
  /** The route's template (`GET /v1/accounts/{account_id}`), for the log and the metrics. */
  readonly route: string;
}

/**
 * Set by the REST transcoder on the calls it makes, so that the one auth
 * interceptor can hand a dialect's authenticator what a request signature
 * covers, and the log interceptor can log the call as protocol `rest` with
 * its HTTP method and path.
 */
export const restCallKey = createContextKey<RestCall | undefined>(undefined, { description: "rest call" });
