# Registers a GoogleTest binary with ctest as one test per test suite
# (`<binary>:<Suite>`, run as `--gtest_filter=<Suite>.*`) rather than one per
# test as gtest_discover_tests does. Run after each build of the binary
# (campaignd_gtest_suites in tests/CMakeLists.txt); writes CTEST_FILE, which
# the test directory includes.
#
# Why suites: every ctest is a process, and a process pays for the binary's
# start (slow under the sanitizers) and for the throwaway PostgreSQL cluster
# its first PostgreSQL test starts (tests/support/pg_fixture.h). One process
# per suite keeps ctest's parallelism and a failure's name close to the test
# (gtest's own output lists the failed tests), at a fraction of the cost.
#
# Inputs (-D): TEST_EXECUTABLE, CTEST_FILE, TEST_NAME (the binary's name),
# TEST_TIMEOUT (seconds per suite), TEST_ENVIRONMENT (one NAME=VALUE for
# ctest's ENVIRONMENT), DISCOVERY_TIMEOUT (seconds).

execute_process(
  COMMAND "${TEST_EXECUTABLE}" --gtest_list_tests
  TIMEOUT ${DISCOVERY_TIMEOUT}
  OUTPUT_VARIABLE listing
  ERROR_VARIABLE errors
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  file(REMOVE "${CTEST_FILE}")
  message(FATAL_ERROR
    "${TEST_EXECUTABLE} --gtest_list_tests failed (${result}):\n"
    "${listing}${errors}")
endif()

# Suite lines have no indentation and end in '.', optionally followed by a
# type parameter comment ("Suite.  # TypeParam = int"); test lines are
# indented. Anything else (gtest_main's "Running main() from ...") is
# skipped.
string(REPLACE ";" "\\;" listing "${listing}")
string(REPLACE "\n" ";" lines "${listing}")
set(suites "")
set(current "")
foreach(line IN LISTS lines)
  if(line MATCHES "^([^ #][^ ]*)\\.( +#.*)?$")
    set(current "${CMAKE_MATCH_1}")
  elseif(line MATCHES "^  [^ ]" AND NOT current STREQUAL "")
    list(APPEND suites "${current}")
    set(current "")
  endif()
endforeach()
list(REMOVE_DUPLICATES suites)
list(LENGTH suites count)
if(count EQUAL 0)
  message(FATAL_ERROR "${TEST_EXECUTABLE} lists no tests:\n${listing}")
endif()

# The suites of several engines on one database (`...InstancesTest`) are
# the longest of their binaries: a COST makes ctest start them first, so
# they do not end the run alone (tests/CMakeLists.txt's COSTs).
set(script "")
foreach(suite IN LISTS suites)
  set(cost 0)
  if(suite MATCHES "InstancesTest$")
    set(cost 60)
  endif()
  string(APPEND script
    "add_test([=[${TEST_NAME}:${suite}]=] [=[${TEST_EXECUTABLE}]=] "
    "[=[--gtest_filter=${suite}.*]=])\n"
    "set_tests_properties([=[${TEST_NAME}:${suite}]=] PROPERTIES "
    "TIMEOUT ${TEST_TIMEOUT} COST ${cost} "
    "ENVIRONMENT [=[${TEST_ENVIRONMENT}]=])\n")
endforeach()
file(WRITE "${CTEST_FILE}" "${script}")
