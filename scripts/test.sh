#!/usr/bin/env bash
# Sets up and runs every test: installs what is missing, checks formatting,
# builds and runs the whole suite (unit, integration, end-to-end), builds the
# Debian package and checks it (scripts/check_deb.sh, lintian), checks the
# lock annotations with clang's thread safety analysis, then does
# the same under AddressSanitizer + UndefinedBehaviorSanitizer, and the
# domain, storage, PostgreSQL storage, dispatch, config and provider-registry
# suites (our own threads and locks) under ThreadSanitizer. The gRPC-facing suites are not
# run under TSan: Debian's gRPC and Abseil libraries are not built for it,
# so it cannot see their synchronisation. The fuzz targets' corpora
# (tests/fuzz/) are replayed as ctests of the normal and the ASan + UBSan
# builds (tools/fuzz/CMakeLists.txt); the clang libFuzzer build
# (tools/fuzz/build.sh) is for fuzzing by hand and not run here.
#   scripts/test.sh            everything
#   scripts/test.sh --quick    skip the sanitizer builds
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
quick=0
[ "${1:-}" = "--quick" ] && quick=1

scripts/deps.sh
# The smpp provider tests' SMSC (npm `smpp`, pinned by its package-lock).
npm ci --prefix tests/peers/smsc --no-audit --no-fund

echo "== clang-format, gofmt"
bad=""
while IFS= read -r f; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
done < <(find proto server storage client tests tools -name '*.cc' -o -name '*.h' 2>/dev/null)
if [ -n "$bad" ]; then
  echo "not clang-format clean (run clang-format -i):$bad"
  exit 1
fi
unformatted_go=$(gofmt -l tools)
if [ -n "$unformatted_go" ]; then
  echo "not gofmt clean (run gofmt -w): $unformatted_go"
  exit 1
fi

# ARCHITECTURE.md's one-way links: api -> dispatch -> domain <- storage.
# api/ and dispatch/ reach storage only through domain's interfaces
# (server/domain/repository.h), so another storage engine can stand behind
# them; domain/ and storage/ never see proto types.
echo "== layers"
layer_breaks=$(
  grep -rnE '#include "(server/api|server/dispatch|server/http|storage|campaigns/v1)/' server/domain
  grep -rnE '#include "(server/api|storage)/' server/dispatch server/http
  grep -rnE '#include "storage/' server/api
  grep -rnE '#include "(server/api|server/dispatch|server/http|campaigns/v1)/' storage
) || true
if [ -n "$layer_breaks" ]; then
  echo "includes against the layers (ARCHITECTURE.md):"
  echo "$layer_breaks"
  exit 1
fi

# ctest runs twice as many tests as there are cores: most of a test's time
# is spent waiting (fake and real timers, PostgreSQL, the servers and peers
# it starts), and at one per core the cores were idle most of the run.
# CTEST_EXCLUDE: a regex of ctests not to run (ctest -E).
run_suite() {  # $1 = build dir, rest = cmake args
  local dir=$1
  shift
  BUILD_DIR=$dir scripts/build.sh -DBUILD_TESTING=ON "$@"
  test -s "$dir/openapi/campaigns.swagger.json"
  (cd "$dir" && ctest --output-on-failure -j "$(($(nproc) * 2))" --timeout 600 \
    ${CTEST_EXCLUDE:+-E "$CTEST_EXCLUDE"})
}

# Runs the TSan test binaries side by side, postgres_tests (the longest, most
# of it waiting on PostgreSQL) in two halves (GoogleTest's sharding), each
# with its output in a file printed when all have ended; fails if any did.
run_tsan() {  # $1 = the TSan build dir
  local dir=$1 logs=$1/tsan-logs
  rm -rf "$logs" && mkdir -p "$logs"
  export TSAN_OPTIONS="halt_on_error=1 suppressions=$root/tests/tsan.supp"
  local pids=() names=()
  for shard in 0 1; do
    GTEST_TOTAL_SHARDS=2 GTEST_SHARD_INDEX=$shard \
      "$dir/tests/postgres_tests" --gtest_brief=1 >"$logs/postgres_tests.$shard" 2>&1 &
    pids+=($!) names+=("postgres_tests.$shard")
  done
  (
    for t in dispatch_tests storage_tests domain_tests config_tests provider_tests; do
      echo "== $t"
      "$dir/tests/$t" --gtest_brief=1 || exit 1
    done
  ) >"$logs/others" 2>&1 &
  pids+=($!) names+=(others)
  local failed=""
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed="$failed ${names[$i]}"
  done
  for n in "${names[@]}"; do
    echo "== TSan: $n"
    cat "$logs/$n"
  done
  if [ -n "$failed" ]; then
    echo "failed under TSan:$failed"
    return 1
  fi
}

echo "== build and test (${SECONDS}s so far)"
run_suite "$root/build"
echo "== the Debian package: cpack -G DEB, scripts/check_deb.sh (${SECONDS}s so far)"
(cd "$root/build" && cpack -G DEB >/dev/null)
scripts/check_deb.sh "$root/build"
echo "== lock annotations: clang -Wthread-safety (${SECONDS}s so far)"
scripts/thread_safety.sh "$root/build"
if [ $quick -eq 0 ]; then
  echo "== build and test under ASan + UBSan (${SECONDS}s so far)"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # -O1 -g1 (line tables), as the sanitizers' docs advise: stack traces
  # keep their lines, and it compiles faster than -O2 -g.
  # The benchmarks are not run here: not built either.
  # Not e2e_pg and e2e_rest_pg: the release phase ran them, and under ASan
  # their PostgreSQL code runs in integration_pg_* (in-process) and their
  # suites on SQLite in e2e and e2e_rest; e2e_instances_pg stays.
  CTEST_EXCLUDE='^e2e(_rest)?_pg$' run_suite "$root/build-asan" \
    -DCAMPAIGND_SANITIZE=address \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" -DCAMPAIGND_BENCH=OFF

  echo "== domain, storage, postgres, dispatch, config and provider tests under TSan (${SECONDS}s so far)"
  BUILD_DIR=$root/build-tsan scripts/build.sh -DBUILD_TESTING=ON \
    -DCAMPAIGND_SANITIZE=thread "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" \
    --target domain_tests --target storage_tests --target postgres_tests \
    --target dispatch_tests --target config_tests --target provider_tests
  run_tsan "$root/build-tsan"
fi
echo "== all tests passed in ${SECONDS}s"
