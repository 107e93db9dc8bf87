/**
 * A Tally client in Node with connect-node, over the committed gen/:
 * watches an account's balance, posts a transfer with an idempotency key
 * (twice: the second is a replay), reads the balance, and waits for the
 * stream to report the change. Amounts are bigint end to end, so
 * 9007199254740993 (2^53 + 1) stays exact.
 *
 *   TALLY_KEY=tly_... npx tsx examples/node/ledger-client.ts [--url http://127.0.0.1:8080]
 *     [--protocol connect|grpc|grpc-web] [--account alice] [--asset USD]
 *     [--amount 25000000] [--idempotency-key KEY]
 *
 * The key comes from the environment, not the command line, where other
 * users of the machine could read it. It must be an admin key (the example
 * creates the account and funds it from @world).
 */
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { LedgerService } from "../../gen/tally/ledger/v1/ledger_pb.js";
import type { Balance } from "../../gen/tally/ledger/v1/ledger_pb.js";

const { values: args } = parseArgs({
  options: {
    url: { type: "string", default: "http://127.0.0.1:8080" },
    protocol: { type: "string", default: "connect" },
    account: { type: "string", default: "alice" },
    asset: { type: "string", default: "USD" },
    amount: { type: "string", default: "25000000" },
    "idempotency-key": { type: "string" },
  },
});
const key = process.env.TALLY_KEY;
if (!key) throw new Error("set TALLY_KEY to an admin API key");
// BigInt("…") is exact; Number("…") would round anything past 2^53.
const amount = BigInt(args.amount);
const account = args.account;
const asset = args.asset;

/** Every call carries the key. */
const bearer: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${key}`);
  return next(req);
};

function transport(protocol: string, baseUrl: string): Transport {
  switch (protocol) {
    case "connect":
      return createConnectTransport({ baseUrl, httpVersion: "2", interceptors: [bearer] });
    case "grpc":
      return createGrpcTransport({ baseUrl, interceptors: [bearer] });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors: [bearer] });
    default:
      throw new Error(`--protocol must be connect, grpc or grpc-web, got "${protocol}"`);
  }
}

const ledger = createClient(LedgerService, transport(args.protocol, args.url));
const show = (b: Balance | undefined) => `posted=${b?.posted ?? 0n} available=${b?.available ?? 0n} sequence=${b?.sequence ?? 0n}`;

// The account, unless an earlier run made it.
try {
  await ledger.createAccount({ id: account });
  console.log(`account ${account} created`);
} catch (e) {
  if (ConnectError.from(e).code !== Code.AlreadyExists) throw e;
  console.log(`account ${account} exists`);
}

// The stream first, so that the transfer below is seen as a change after its snapshot.
const stop = new AbortController();
const watch = ledger.watchBalance({ accountId: account, asset }, { signal: stop.signal })[Symbol.asyncIterator]();
const first = await watch.next();
if (first.done || first.value.event.case !== "snapshot") throw new Error("WatchBalance must begin with a snapshot");
console.log(`watch snapshot ${account} ${asset} ${show(first.value.event.value.balances[0])}`);

// The same key twice: one transfer, and the second answer is its replay.
const idempotencyKey = args["idempotency-key"] ?? `example-${randomUUID()}`;
const request = { idempotencyKey, debitAccountId: "@world", creditAccountId: account, asset, amount, kind: "payment", note: "examples/node" };
const answers = [await ledger.postTransfer(request), await ledger.postTransfer(request)];
for (const { transfer, replayed } of answers) console.log(`transfer ${transfer?.id} amount=${transfer?.amount} replayed=${replayed}`);

const { balance } = await ledger.getBalance({ accountId: account, asset });
console.log(`balance ${account} ${asset} ${show(balance)}`);

// The change the transfer made, as the stream delivers it (none when an earlier run made it: then both answers were replays).
for (let r = answers[0]!.replayed ? undefined : await watch.next(); r !== undefined && !r.done; r = await watch.next()) {
  const event = r.value.event;
  if (event.case !== "change") continue;
  console.log(`watch change ${account} ${asset} delta=${event.value.delta} ${show(event.value.balance)}`);
  if (event.value.sequence >= (balance?.sequence ?? 0n)) break;
}
stop.abort();
