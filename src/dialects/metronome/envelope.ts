import { Code } from "@connectrpc/connect";
import type { ConnectError } from "@connectrpc/connect";
import type { ErrorEnvelopeWriter } from "../dialect.js";
import { ErrorDetailSchema } from "../../../gen/tally/ledger/v1/ledger_pb.js";

/** The envelope's registered name, as the proto's JSON profile refers to it. */
export const METRONOME_ENVELOPE = "metronome";

/**
 * `{"message": "..."}`, Metronome's error body. Not-found messages are reduced
 * to what was not found ("Customer not found"), without the id, so an unknown
 * id and another tenant's id get byte-identical answers; 5xx stay generic.
 */
export const metronomeEnvelope: ErrorEnvelopeWriter = (e, ctx) => ({
  status: ctx.status,
  body: JSON.stringify({ message: messageOf(e, ctx.status) }),
});

function messageOf(e: ConnectError, status: number): string {
  if (status >= 500 && e.code !== Code.Unavailable) return "Internal server error";
  if (e.code === Code.Unauthenticated) return "Unauthorized";
  if (e.code === Code.NotFound) {
    const reason = e.findDetails(ErrorDetailSchema)[0]?.reason ?? "";
    const what = reason.endsWith("_not_found") ? reason.slice(0, -"_not_found".length).replace(/_/g, " ") : "";
    return what === "" ? "Not found" : `${what[0]!.toUpperCase()}${what.slice(1)} not found`;
  }
  // The core names its cursor page_token; this API calls it next_page.
  if (e.findDetails(ErrorDetailSchema)[0]?.reason === "invalid_page_token") return "next_page is invalid for this request";
  return e.rawMessage;
}
