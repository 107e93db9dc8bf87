#!/usr/bin/env sh
# Generates the Python message and gRPC stubs of tally.ledger.v1 from proto/
# into OUT (default examples/python/gen, which git ignores).
#
# Debian's protobuf-compiler (protoc 3.21) and protobuf-compiler-grpc
# (grpc_python_plugin): python3-grpc-tools' protoc is too old for proto3
# `optional`. timestamp.proto comes with protobuf-compiler, in /usr/include.
set -eu
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/examples/python/gen}"
mkdir -p "$out"
/usr/bin/protoc -I "$root/proto" -I /usr/include \
  --python_out="$out" --grpc_out="$out" \
  --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \
  "$root/proto/tally/ledger/v1/ledger.proto"
echo "generated $out/tally/ledger/v1/ledger_pb2.py and ledger_pb2_grpc.py"
