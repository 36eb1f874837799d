#!/usr/bin/env bash
# Sets up and runs campaignd: installs what is missing, builds, and starts the
# server in the foreground on its embedded SQLite default (./campaignd.db).
# Any arguments go to campaignd, e.g.  scripts/run.sh --listen 0.0.0.0:50051
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
"$root/scripts/deps.sh"
BUILD_DIR=$build_dir "$root/scripts/build.sh" \
  --target campaignd --target campaignctl --target gateway
exec "$build_dir/server/campaignd" "$@"
