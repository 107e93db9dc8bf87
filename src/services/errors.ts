import { create } from "@bufbuild/protobuf";
import type { Interceptor, StreamRequest, UnaryRequest } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { LedgerError } from "../domain/errors.js";
import type { LedgerErrorCode } from "../domain/errors.js";
import { ErrorDetailSchema } from "../../gen/tally/ledger/v1/ledger_pb.js";

const CODES: Record<LedgerErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  out_of_range: Code.OutOfRange,
  permission_denied: Code.PermissionDenied,
  unauthenticated: Code.Unauthenticated,
  resource_exhausted: Code.ResourceExhausted,
  aborted: Code.Aborted,
  unavailable: Code.Unavailable,
  internal: Code.Internal,
};

/** Converts a domain error to its Connect form, with the reason as an ErrorDetail. */
export function toConnectError(e: LedgerError): ConnectError {
  const detail = create(ErrorDetailSchema, { reason: e.reason, metadata: { ...e.metadata } });
  // The domain error as the cause: never sent, but the log reads its reason and credential id.
  return new ConnectError(e.message, CODES[e.code], undefined, [{ desc: ErrorDetailSchema, value: detail }], e);
}


/**
 * Turns anything a handler throws into a ConnectError a client may see:
 * domain errors keep their code and message; Connect errors pass through;
 * anything else is a bug, reported as a bare "internal error" so that no stack
 * trace or internal message ever reaches the wire (it is logged instead).
 */
export function normalizeError(e: unknown, onInternal?: (e: unknown) => void): ConnectError {
  if (e instanceof LedgerError) {
    if (e.code === "internal") onInternal?.(e);
    return toConnectError(e);
  }
  if (e instanceof ConnectError) return e;
  onInternal?.(e);
  return new ConnectError("internal error", Code.Internal);
}

/** An interceptor that applies {@link normalizeError} to unary and streaming responses. */
export function errorInterceptor(onInternal?: (e: unknown, req: UnaryRequest | StreamRequest) => void): Interceptor {
  return (next) => async (req) => {
    try {
      const res = await next(req);
      if (!res.stream) return res;
      const source = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* source;
          } catch (e) {
            // A client that hangs up mid-stream makes the next write fail; that
            // is the client's cancellation, not a server error.
            if (req.signal.aborted) throw whyAborted(req.signal);
            throw normalizeError(e, onInternal && ((x) => onInternal(x, req)));
          }
        })(),
      };
    } catch (e) {
      throw normalizeError(e, onInternal && ((x) => onInternal(x, req)));
    }
  };
}

/**
 * Why a call's signal fired, as the error to end the call with: connect
 * aborts it with a ConnectError for a deadline (deadline_exceeded) or a
 * shutdown; anything else is the client going away (canceled).
 */
export function whyAborted(signal: AbortSignal): ConnectError {
  const reason: unknown = signal.reason;
  if (reason instanceof ConnectError) return reason;
  return new ConnectError("the client cancelled the call", Code.Canceled);
}
