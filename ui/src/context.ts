import { ConnectError } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { ErrorDetailSchema } from "../../gen/tally/ledger/v1/ledger_pb.js";
import type { AssetScales } from "./asset-scales.js";
import type { TallyWebClients } from "./client.js";
import { formatAmount } from "./amount.js";

/** What every view of a logged-in dashboard shares. */
export interface DashboardContext {
  readonly clients: TallyWebClients;
  readonly scales: AssetScales;
  /** An account_read key: no writes, one account. */
  readonly readOnly: boolean;
  /** Shows a message in the page's notice line. */
  notify(message: string, kind?: "info" | "error"): void;
  /** Fires when the page goes away (log out, protocol switch): watches stop. */
  readonly signal: AbortSignal;
}

/** A failed call as a person reads it: `[failed_precondition] balance_locked: account "a" is locked`. */
export function errorText(e: unknown): string {
  const err = ConnectError.from(e);
  const reason = err.findDetails(ErrorDetailSchema)[0]?.reason;
  const code = err.message.slice(0, err.message.indexOf("]") + 1);
  // Most of Tally's messages start with their reason already.
  const prefix = reason === undefined || reason === "" || err.rawMessage.startsWith(reason) ? "" : `${reason}: `;
  return `${code} ${prefix}${err.rawMessage}`;
}

/** An amount at its asset's scale; in smallest units, marked so, while the scale is unknown. */
export function amountText(scales: AssetScales, asset: string, units: bigint): string {
  const scale = scales.get(asset);
  return scale === undefined ? `${units} units` : formatAmount(units, scale);
}

/** A timestamp to the second, in UTC. */
export function timeText(ts: Timestamp | undefined): string {
  return ts === undefined ? "" : timestampDate(ts).toISOString().replace("T", " ").slice(0, 19) + "Z";
}
