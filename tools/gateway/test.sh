#!/usr/bin/env bash
# Runs the gateway's Go unit tests in the GOPATH tools/gateway/build.sh made:
#   tools/gateway/test.sh OUT_DIR      (OUT_DIR as given to build.sh)
set -euo pipefail
out=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
gopath=$out/gopath
# The sources as they are now (build.sh copied them at build time).
cp "$here"/*.go "$gopath/src/campaignd/gateway/"
cd "$gopath/src/campaignd/gateway"
GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOCACHE="$out/gocache" \
  GOFLAGS= go test -count=1 .
