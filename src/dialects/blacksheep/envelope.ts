import { Code } from "@connectrpc/connect";
import { codeToString as codeName } from "@connectrpc/connect/protocol-connect";
import { ErrorDetailSchema } from "../../../gen/tally/ledger/v1/ledger_pb.js";
import type { ErrorEnvelopeWriter } from "../dialect.js";

/**
 * Blacksheep's two error bodies: `{"error": "<code>"}` with 401 for every
 * authentication failure, and `{"error": {"code", "message"}}` otherwise. The
 * code is the domain reason (such as `invalid_body`), or the snake_case
 * Connect code when there is none.
 */
export const blacksheepEnvelope: ErrorEnvelopeWriter = (e, ctx) => {
  const reason = e.findDetails(ErrorDetailSchema)[0]?.reason || codeName(e.code);
  if (e.code === Code.Unauthenticated) return { status: 401, body: JSON.stringify({ error: reason }) };
  return { status: ctx.status, body: JSON.stringify({ error: { code: reason, message: e.rawMessage } }) };
};
