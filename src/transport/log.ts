import type { Interceptor } from "@connectrpc/connect";
import { ConnectError } from "@connectrpc/connect";
import { restCallKey } from "./rest-call.js";
import { codeToString as codeName } from "@connectrpc/connect/protocol-connect";
import { principalKey } from "../services/principal.js";

/** A structured logger: one JSON object per line. */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** False when info lines are dropped (--log-level error or silent): callers can skip building them. */
  readonly infoEnabled?: boolean;
}

/** Writes JSON lines to a stream (stderr by default). */
export function jsonLogger(out: NodeJS.WritableStream = process.stderr, level: "info" | "error" | "silent" = "info"): Logger {
  const write = (lvl: string, msg: string, fields?: Record<string, unknown>) =>
    out.write(JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields }, bigintSafe) + "\n");
  return {
    infoEnabled: level === "info",
    info: (msg, fields) => {
      if (level === "info") write("info", msg, fields);
    },
    error: (msg, fields) => {
      if (level !== "silent") write("error", msg, fields);
    },
  };
}

function bigintSafe(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? v.toString() : v;
}

/**
 * Logs one line per call: procedure, protocol, code, duration and tenant.
 * Headers and bodies are never logged, so no key or secret can leak here.
 * A stream is logged when it ends.
 */
export function logInterceptor(log: Logger): Interceptor {
  // Nothing to write: no per-call timing, closure or line object at all.
  if (log.infoEnabled === false) return (next) => next;
  return (next) => async (req) => {
    const start = performance.now();
    const done = (err: unknown) => {
      const code = err === undefined ? "ok" : codeName(ConnectError.from(err).code);
      const rest = req.contextValues.get(restCallKey);
      log.info("rpc", {
        procedure: `/${req.service.typeName}/${req.method.name}`,
        protocol: rest === undefined ? protocolOf(req.header.get("content-type") ?? "") : "rest",
        ...(rest === undefined ? {} : { http_method: rest.method, path: rest.path }),
        code,
        duration_ms: Math.round((performance.now() - start) * 100) / 100,
        tenant: req.contextValues.get(principalKey)?.tenantId,
      });
    };
    try {
      const res = await next(req);
      if (!res.stream) {
        done(undefined);
        return res;
      }
      const source = res.message;
      return {
        ...res,
        message: (async function* () {
          let err: unknown;
          try {
            yield* source;
          } catch (e) {
            err = e;
            throw e;
          } finally {
            done(err);
          }
        })(),
      };
    } catch (e) {
      done(e);
      throw e;
    }
  };
}


function protocolOf(contentType: string): string {
  if (contentType.startsWith("application/grpc-web")) return "grpc-web";
  if (contentType.startsWith("application/grpc")) return "grpc";
  return "connect";
}
