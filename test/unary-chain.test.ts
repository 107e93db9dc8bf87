import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { createContextValues } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { afterAll, describe, expect, it } from "vitest";
import { GetBalanceRequestSchema, LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import type { GetBalanceResponse } from "../gen/tally/ledger/v1/ledger_pb.js";
import { Call } from "../src/transport/lean/call.js";
import type { UnarySpec } from "../src/transport/lean/method-table.js";

/**
 * The lean path chains a unary method's interceptors once, not once per call.
 * Each call must still reach its own implementation run, with its own
 * request, context and headers, also when an interceptor replaces the
 * request on its way in. Real HTTP requests feed the calls.
 */
const spec = {
  kind: "unary",
  method: LedgerService.method.getBalance,
  // Echoes what the call's context says back in the answer.
  impl: (req: { accountId: string }, ctx: { requestHeader: Headers; values: unknown }) => ({
    balance: { accountId: `${req.accountId}|${ctx.requestHeader.get("x-call")}` },
  }),
} as unknown as UnarySpec;

let outer = 0;
const counting: Interceptor = (next) => {
  outer++;
  return (req) => next(req);
};
// Replaces the request (connect merges such a request into the handler's context).
const replacing: Interceptor = (next) => (req) => {
  const header = new Headers(req.header);
  header.set("x-call", `${req.header.get("x-call")}+replaced`);
  return next({ ...req, header });
};

const server = http.createServer();
afterAll(() => server.close());

describe("a prepared unary chain", () => {
  it("is built once and serves every call with its own request and context", async () => {
    const chain = Call.unaryChain([counting, replacing]);
    expect(outer).toBe(1);
    const answers: string[] = [];
    server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
      const id = String(req.headers["x-call"]);
      const call = new Call({
        req,
        res,
        spec,
        protocolName: "connect",
        requestMethod: "POST",
        requestHeader: new Headers({ "x-call": id }),
        responseHeader: new Headers(),
        responseTrailer: new Headers(),
        contextValues: createContextValues(),
        timeoutMs: undefined,
        shutdownSignal: undefined,
      });
      call
        .invoke(create(GetBalanceRequestSchema, { accountId: `a${id}` }), chain)
        .then((m) => answers.push((m as GetBalanceResponse).balance!.accountId))
        .finally(() => {
          call.end();
          res.end();
        });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    const send = (id: number) =>
      new Promise<void>((resolve, reject) => {
        const r = http.request({ host: "127.0.0.1", port, method: "POST", headers: { "x-call": String(id) } }, (res) => {
          res.resume();
          res.on("end", resolve);
        });
        r.on("error", reject);
        r.end();
      });
    await Promise.all(Array.from({ length: 20 }, (_, i) => send(i)));
    expect(outer).toBe(1);
    expect(answers.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `a${i}|${i}+replaced`).sort());
  });
});
