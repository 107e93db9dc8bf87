import { Code } from "@connectrpc/connect";
import { codeToString as codeName } from "@connectrpc/connect/protocol-connect";
import type { ErrorEnvelopeWriter } from "../../dialects/dialect.js";

/** google.api.http's code → HTTP status table (as grpc-gateway and vanguard use). */
export const HTTP_STATUS: Readonly<Record<Code, number>> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

/** `{"code": "not_found", "message": "..."}`: the Connect error shape, the default. */
export const connectEnvelope: ErrorEnvelopeWriter = (e, ctx) => ({
  status: ctx.status,
  body: JSON.stringify({ code: codeName(e.code), message: e.rawMessage }),
});

/** `{"code": 5, "message": "...", "details": []}`: the google.rpc.Status shape grpc-gateway writes. */
export const statusEnvelope: ErrorEnvelopeWriter = (e, ctx) => ({
  status: ctx.status,
  body: JSON.stringify({ code: e.code, message: e.rawMessage, details: [] }),
});

/** `{"message": "..."}`: the bare envelope some APIs (Metronome) use. */
export const messageEnvelope: ErrorEnvelopeWriter = (e, ctx) => ({
  status: ctx.status,
  body: JSON.stringify({ message: e.rawMessage }),
});



/** snake_case code names, as the Connect protocol writes them. */
