#!/usr/bin/env bash
# Configures and builds campaignd into BUILD_DIR (default build/).
#   scripts/build.sh [extra cmake args...]     e.g. -DCAMPAIGND_SANITIZE=address
# Env: BUILD_DIR, JOBS (default: number of cores).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
jobs=${JOBS:-$(nproc)}
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build_dir" -j "$jobs"
