#!/usr/bin/env python3
"""A Tally client in Python with grpcio (gRPC over HTTP/2).

Watches an account's balance, posts a transfer with an idempotency key
(twice: the second is a replay), reads the balance, and waits for the stream
to report the change. int64 fields are Python ints, so 9007199254740993
(2^53 + 1) stays exact.

    examples/python/generate.sh
    TALLY_KEY=tly_... /usr/bin/python3 examples/python/ledger_client.py \\
        [--url http://127.0.0.1:8080] [--account alice] [--asset USD] \\
        [--amount 25000000] [--idempotency-key KEY] [--stubs DIR]

The key comes from the environment, not the command line, where other users
of the machine could read it. It must be an admin key (the example creates
the account and funds it from @world).
"""

import argparse
import os
import sys
import uuid
from urllib.parse import urlparse


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--account", default="alice")
    parser.add_argument("--asset", default="USD")
    # int() of the digits is exact at any size; float() would round past 2^53.
    parser.add_argument("--amount", type=int, default=25_000_000)
    parser.add_argument("--idempotency-key")
    parser.add_argument("--stubs", default=os.path.join(here, "gen"), help="where generate.sh wrote the stubs")
    args = parser.parse_args()
    key = os.environ.get("TALLY_KEY")
    if not key:
        sys.exit("set TALLY_KEY to an admin API key")

    # The generated modules import each other as tally.ledger.v1.*: their root goes on the path.
    sys.path.insert(0, args.stubs)
    import grpc
    from tally.ledger.v1 import ledger_pb2 as pb
    from tally.ledger.v1 import ledger_pb2_grpc as rpc

    url = urlparse(args.url)
    secure = url.scheme == "https"
    target = url.netloc if url.port else f"{url.hostname}:{443 if secure else 80}"
    channel = grpc.secure_channel(target, grpc.ssl_channel_credentials()) if secure else grpc.insecure_channel(target)
    ledger = rpc.LedgerServiceStub(channel)
    auth = (("authorization", f"Bearer {key}"),)
    account, asset = args.account, args.asset

    def show(b: "pb.Balance") -> str:
        return f"posted={b.posted} available={b.available} sequence={b.sequence}"

    # The account, unless an earlier run made it.
    try:
        ledger.CreateAccount(pb.CreateAccountRequest(id=account), metadata=auth, timeout=10)
        print(f"account {account} created")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
        print(f"account {account} exists")

    # The stream first, so that the transfer below is seen as a change after its snapshot.
    watch = ledger.WatchBalance(pb.WatchBalanceRequest(account_id=account, asset=asset), metadata=auth)
    first = next(watch)
    if first.WhichOneof("event") != "snapshot":
        raise RuntimeError("WatchBalance must begin with a snapshot")
    print(f"watch snapshot {account} {asset} {show(first.snapshot.balances[0])}")

    # The same key twice: one transfer, and the second answer is its replay.
    request = pb.PostTransferRequest(
        idempotency_key=args.idempotency_key or f"example-{uuid.uuid4()}",
        debit_account_id="@world",
        credit_account_id=account,
        asset=asset,
        amount=args.amount,
        kind="payment",
        note="examples/python",
    )
    answers = [ledger.PostTransfer(request, metadata=auth, timeout=10) for _ in range(2)]
    for a in answers:
        print(f"transfer {a.transfer.id} amount={a.transfer.amount} replayed={str(a.replayed).lower()}")

    balance = ledger.GetBalance(pb.GetBalanceRequest(account_id=account, asset=asset), metadata=auth, timeout=10).balance
    print(f"balance {account} {asset} {show(balance)}")

    # The change the transfer made, as the stream delivers it (none when an earlier run made it: then both answers were replays).
    if not answers[0].replayed:
        for r in watch:
            if r.WhichOneof("event") != "change":
                continue
            print(f"watch change {account} {asset} delta={r.change.delta} {show(r.change.balance)}")
            if r.change.sequence >= balance.sequence:
                break
    watch.cancel()
    channel.close()


if __name__ == "__main__":
    main()
