#!/usr/bin/env bash
# Configures and builds campaignd into BUILD_DIR (default build/).
#   scripts/build.sh [cmake args...] [--target T...]
#   e.g. scripts/build.sh -DCAMPAIGND_SANITIZE=address
# Env: BUILD_DIR, JOBS (default: number of cores).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
jobs=${JOBS:-$(nproc)}
cmake_args=()
targets=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--target" ]; then
    targets+=(--target "$2")
    shift 2
  else
    cmake_args+=("$1")
    shift
  fi
done
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${cmake_args[@]}" >/dev/null
cmake --build "$build_dir" -j "$jobs" "${targets[@]}"
