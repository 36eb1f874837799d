#!/usr/bin/env bash
# Builds the libFuzzer targets (tools/fuzz/*_fuzzer.cc) with clang, ASan,
# UBSan and libFuzzer into BUILD_DIR (a CMake build with
# CAMPAIGND_SANITIZE=fuzzer: every object carries libFuzzer's coverage):
#   tools/fuzz/build.sh BUILD_DIR [TARGET...]     (default: every target)
# The targets land in BUILD_DIR/tools/fuzz/. Fuzz one for ten minutes:
#   BUILD_DIR/tools/fuzz/csv_fuzzer -max_total_time=600 NEW_DIR \
#     tests/fuzz/csv_corpus
# (new inputs go to NEW_DIR; see README.md, "Fuzzing", to fold them into the
# committed corpus). Replay a corpus:
#   BUILD_DIR/tools/fuzz/csv_fuzzer -runs=0 tests/fuzz/csv_corpus
# CI does not use this build: the normal and sanitizer builds replay every
# corpus as ctests (tools/fuzz/CMakeLists.txt).
# Env: JOBS (default: number of cores); ccache is used when installed.
set -euo pipefail
build_dir=${1:?usage: tools/fuzz/build.sh BUILD_DIR [TARGET...]}
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(csv_fuzzer json_rows_fuzzer webhook_fuzzer rpc_fuzzer)
fi
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
# -O1 -g1, as the sanitizer build: lines in stack traces, a faster build.
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ \
  -DCAMPAIGND_SANITIZE=fuzzer -DBUILD_TESTING=ON -DCAMPAIGND_BENCH=OFF \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" "${launcher[@]}" >/dev/null
args=()
for t in "${targets[@]}"; do args+=(--target "$t"); done
cmake --build "$build_dir" -j "${JOBS:-$(nproc)}" "${args[@]}"
