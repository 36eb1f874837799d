#!/usr/bin/env bash
# Builds the libFuzzer targets with clang, ASan and UBSan into OUT_DIR:
#   tools/fuzz/build.sh OUT_DIR
# Replay the seed corpus (what CI does):  OUT_DIR/csv_fuzzer -runs=0 tests/fuzz/csv_corpus
# Fuzz for ten minutes:  OUT_DIR/csv_fuzzer -max_total_time=600 -max_len=65536 \
#                          tests/fuzz/csv_corpus
set -euo pipefail
out=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$root")
clang++ "${flags[@]}" -o "$out/csv_fuzzer" \
  "$root/tools/fuzz/csv_fuzzer.cc" "$root/server/domain/csv.cc" \
  "$root/server/domain/errors.cc" "$root/server/domain/import_rows.cc" \
  "$root/server/domain/types.cc" "$root/server/domain/utf8.cc" \
  $(pkg-config --libs absl_status absl_strings absl_cord)
