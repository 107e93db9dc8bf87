/**
 * What a load balancer and a schema-less gRPC tool see, over real sockets:
 * grpc.health.v1.Health (Check, Watch, List) and /healthz, /readyz, without a
 * key; NOT_SERVING (and 503) from the moment a graceful stop begins; gRPC
 * server reflection v1 and v1alpha, so that `buf curl` lists the services and
 * calls GetBalance with no --schema. (The store going away is in
 * test/disruptive/postgres-real-restart.test.ts; the rule itself in a unit
 * spec at the end.)
 */
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { HealthState } from "../src/services/health-state.js";
import { bufCurl, killAllBufCurl, runBuf } from "./support/buf-curl.js";
import { h1Exchange } from "./support/exchange.js";
import { PROTOCOLS, clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
  const L = clientFor(LedgerService, server.url, "grpc", server.adminKey);
  await L.createAccount({ id: "alice" });
  await L.postTransfer({ idempotencyKey: "k1", debitAccountId: "@world", creditAccountId: "alice", asset: "USD", amount: 9_007_199_254_740_993n });
});
afterAll(async () => {
  killAllBufCurl();
  await server?.close();
});

describe.each(PROTOCOLS)("gRPC health over %s, without a key", (protocol) => {
  it("answers Check for the server and each service, not_found for others, and List", async () => {
    const h = clientFor(Health, server.url, protocol, undefined);
    expect((await h.check({ service: "" })).status).toBe(Status.SERVING);
    expect((await h.check({ service: "tally.ledger.v1.LedgerService" })).status).toBe(Status.SERVING);
    const unknown = await h.check({ service: "no.such.Service" }).catch((e: unknown) => ConnectError.from(e));
    expect(unknown).toBeInstanceOf(ConnectError);
    expect((unknown as ConnectError).code).toBe(Code.NotFound);
    const list = await h.list({});
    expect(Object.keys(list.statuses)).toEqual(expect.arrayContaining(["", "tally.ledger.v1.LedgerService", "tally.admin.v1.AdminService", "tally.credits.v1.CreditService"]));
    expect(Object.values(list.statuses).every((s) => s.status === Status.SERVING)).toBe(true);
  });
});

describe("HTTP probes", () => {
  it("/healthz and /readyz answer 200 ok, plain text, not cached; other methods 405", async () => {
    for (const path of ["/healthz", "/readyz"]) {
      const r = await h1Exchange(server.url, { method: "GET", path, headers: {} });
      expect([r.status, r.body.toString(), r.headers["content-type"], r.headers["cache-control"]]).toEqual([200, "ok\n", "text/plain; charset=utf-8", "no-store"]);
      const post = await h1Exchange(server.url, { method: "POST", path, headers: {} });
      expect([post.status, post.headers["allow"]]).toEqual([405, "GET, HEAD"]);
    }
  });
});

describe("server reflection", () => {
  it("lets buf curl list the services and call GetBalance without --schema, over gRPC, gRPC-Web and Connect", async () => {
    const list = await runBuf(["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-services", server.url]);
    expect(list.exitCode).toBe(0);
    expect(list.stdout.trim().split("\n")).toEqual(
      expect.arrayContaining(["tally.ledger.v1.LedgerService", "tally.admin.v1.AdminService", "tally.credits.v1.CreditService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"]),
    );
    for (const [protocol, http2] of [["grpc", true], ["grpcweb", false], ["connect", false]] as const) {
      const r = await bufCurl(server.url, "tally.ledger.v1.LedgerService/GetBalance", {
        protocol,
        http2,
        reflect: true,
        key: server.adminKey,
        data: { accountId: "alice", asset: "USD" },
      });
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ balance: { accountId: "alice", posted: "9007199254740993" } });
    }
  });

  it("answers v1alpha with the same files (list_services, file_containing_symbol, file_by_filename, errors)", async () => {
    const r = clientFor(ReflectionV1Alpha, server.url, "grpc", undefined);
    async function* requests() {
      yield { messageRequest: { case: "listServices" as const, value: "" } };
      yield { messageRequest: { case: "fileContainingSymbol" as const, value: "tally.ledger.v1.LedgerService.GetBalance" } };
      yield { messageRequest: { case: "fileByFilename" as const, value: "tally/ledger/v1/ledger.proto" } };
      yield { messageRequest: { case: "fileContainingSymbol" as const, value: "no.such.Thing" } };
    }
    const answers = [];
    for await (const a of r.serverReflectionInfo(requests())) answers.push(a);
    expect(answers).toHaveLength(4);
    const [services, symbol, again, missing] = answers;
    expect(services!.messageResponse.case).toBe("listServicesResponse");
    const names = services!.messageResponse.case === "listServicesResponse" ? services!.messageResponse.value.service.map((s) => s.name) : [];
    expect(names).toEqual(expect.arrayContaining(["tally.ledger.v1.LedgerService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]));
    const fileNames = (a: typeof symbol) =>
      a!.messageResponse.case === "fileDescriptorResponse" ? a!.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name) : [];
    // The file, then the imports the stream has not had yet; asked again, only the file.
    expect(fileNames(symbol)[0]).toBe("tally/ledger/v1/ledger.proto");
    expect(fileNames(symbol)).toEqual(expect.arrayContaining(["google/protobuf/timestamp.proto"]));
    expect(fileNames(again)).toEqual(["tally/ledger/v1/ledger.proto"]);
    expect(missing!.messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: Code.NotFound } });
  });
});

describe("graceful stop", () => {
  it("turns Watch and /readyz to NOT_SERVING as soon as it begins, while still answering", async () => {
    // Long enough for the checks below on a loaded machine; each waits on an event, not a clock.
    const s = await startTestServer({ drainDelayMs: 8_000 });
    {
      const h = clientFor(Health, s.url, "grpc", undefined);
      const watch = h.watch({ service: "tally.ledger.v1.LedgerService" })[Symbol.asyncIterator]();
      expect((await watch.next()).value?.status).toBe(Status.SERVING);
      const closing = s.close();
      expect((await watch.next()).value?.status).toBe(Status.NOT_SERVING);
      // Still answering during the drain delay, and saying it is not ready.
      const ready = await h1Exchange(s.url, { method: "GET", path: "/readyz", headers: {} });
      expect([ready.status, ready.body.toString()]).toEqual([503, "not_serving\n"]);
      expect((await h1Exchange(s.url, { method: "GET", path: "/healthz", headers: {} })).status).toBe(200);
      expect((await h.check({ service: "" })).status).toBe(Status.NOT_SERVING);
      await watch.return?.();
      await closing;
    }
  });
});

describe("readiness (unit)", () => {
  it("follows the store's probe and the drain, telling each change once", async () => {
    let up = true;
    const changes: string[] = [];
    const state = new HealthState({ probe: async () => { if (!up) throw new Error("connection refused"); }, intervalMs: 3_600_000, onChange: (r, why) => changes.push(`${r}: ${why}`) });
    await state.start();
    expect(state.readiness).toBe("serving");
    up = false;
    await state.probeOnce();
    await state.probeOnce();
    expect(state.readiness).toBe("not_serving");
    up = true;
    await state.probeOnce();
    state.setDraining();
    await state.probeOnce();
    state.stop();
    expect(changes).toEqual(["not_serving: store unreachable: connection refused", "serving: store reachable", "not_serving: draining"]);
  });

  it("counts a probe that does not answer in time as unreachable", async () => {
    const state = new HealthState({ probe: () => new Promise(() => {}), timeoutMs: 10, intervalMs: 3_600_000 });
    await state.start();
    state.stop();
    expect(state.readiness).toBe("not_serving");
  });
});
