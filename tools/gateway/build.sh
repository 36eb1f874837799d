#!/usr/bin/env bash
# Builds campaignd-gateway offline with Debian's Go in GOPATH mode:
#   tools/gateway/build.sh OUT_DIR PROTO_DIR GOOGLEAPIS_DIR
# Generates the Go protobuf, gRPC and gateway code of proto/campaigns/v1 into
# OUT_DIR/gopath, then builds OUT_DIR/campaignd-gateway.
set -euo pipefail
out=$1 proto_dir=$2 googleapis=$3
here=$(cd "$(dirname "$0")" && pwd)
gopath=$out/gopath
rm -rf "$gopath/src/campaignd"
mkdir -p "$gopath/src/campaignd/gateway"

# Map the well-known types to the golang/protobuf 1.3 packages Debian's
# grpc-gateway 1.6.4 runtime is built against (protoc's own go_package points
# at the APIv2 packages, whose JSON handling the 1.3 jsonpb does not know).
M=Mgoogle/protobuf/duration.proto=github.com/golang/protobuf/ptypes/duration
M=$M,Mgoogle/protobuf/timestamp.proto=github.com/golang/protobuf/ptypes/timestamp
M=$M,Mgoogle/protobuf/empty.proto=github.com/golang/protobuf/ptypes/empty
M=$M,Mgoogle/protobuf/any.proto=github.com/golang/protobuf/ptypes/any
M=$M,Mgoogle/protobuf/struct.proto=github.com/golang/protobuf/ptypes/struct
M=$M,Mgoogle/protobuf/field_mask.proto=google.golang.org/genproto/protobuf/field_mask
(cd "$proto_dir" && protoc -I. -I"$googleapis" \
  --go_out=plugins=grpc,"$M":"$gopath/src" \
  --grpc-gateway_out=logtostderr=true,"$M":"$gopath/src" \
  campaigns/v1/*.proto)
# grpc-gateway 1.6.4 rewrites PATCH update_mask paths to Go CamelCase; our
# server expects the proto (snake_case) paths that main.go's decoder makes.
sed -i 's/runtime\.CamelCaseFieldMask(protoReq\.UpdateMask)/_ = protoReq.UpdateMask/' \
  "$gopath"/src/campaignd/gen/campaigns/v1/*.pb.gw.go
cp "$here"/*.go "$gopath/src/campaignd/gateway/"
cd "$gopath/src/campaignd/gateway"
GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOCACHE="$out/gocache" \
  GOFLAGS= go build -o "$out/campaignd-gateway" .
