import type { ErrorEnvelopeWriter } from "../dialect.js";

/**
 * Frontier's REST errors, as its grpc-gateway wrote them: the google.rpc.Status
 * JSON `{"code": <gRPC code>, "message": "...", "details": []}`, with the HTTP
 * status google.api.http maps the code to (3→400, 16→401, 7→403, 5→404,
 * 13→500). Details stay empty: Tally's ErrorDetail is not a type Frontier's
 * clients know, and an unknown `@type` would break their Any decoding.
 */
export const frontierEnvelope: ErrorEnvelopeWriter = (e, ctx) => ({
  status: ctx.status,
  body: JSON.stringify({ code: e.code, message: e.rawMessage, details: [] }),
});
