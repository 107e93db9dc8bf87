import type { ConnectRouter } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import type { HealthState } from "./health-state.js";

/** What the health service reports on. */
export interface HealthServiceDeps {
  readonly state: HealthState;
  /** The services served, by full name; "" (the server as a whole) is always known. */
  readonly services: readonly string[];
}

/**
 * `grpc.health.v1.Health` as the gRPC health-checking protocol specifies it:
 * Check answers the status of "" (the whole server) or of one served service
 * (not_found for any other); Watch sends the status at once and again on
 * every change (SERVICE_UNKNOWN for a service not served, keeping the stream
 * open); List gives every service's status. Every service shares the
 * server's readiness: they all stand or fall with the store and the drain.
 * No authentication: load balancers call it.
 */
export function registerHealthService(router: ConnectRouter, deps: HealthServiceDeps): void {
  const known = new Set(["", ...deps.services]);
  const current = () => (deps.state.readiness === "serving" ? Status.SERVING : Status.NOT_SERVING);
  router.service(Health, {
    check(req) {
      if (!known.has(req.service)) throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
      return { status: current() };
    },
    async *watch(req, ctx) {
      if (!known.has(req.service)) {
        yield { status: Status.SERVICE_UNKNOWN };
        // The spec keeps the stream open: the service may appear later (here it never does).
        await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
        return;
      }
      let wake: (() => void) | undefined;
      const unsubscribe = deps.state.subscribe(() => wake?.());
      const aborted = new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
      try {
        let sent: Status | undefined;
        while (!ctx.signal.aborted) {
          const changed = new Promise<void>((resolve) => (wake = resolve));
          const status = current();
          if (status !== sent) {
            sent = status;
            yield { status };
          }
          await Promise.race([changed, aborted]);
        }
      } finally {
        unsubscribe();
      }
    },
    list() {
      const status = current();
      return { statuses: Object.fromEntries([...known].map((s) => [s, { status }])) };
    },
  });
}
