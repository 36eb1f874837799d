# ctest check of a built binary's --version (tests/CMakeLists.txt):
#   cmake -DBINARY=path/campaignd -DNAME=campaignd -DVERSION=0.1.0 \
#         -P version_check.cmake
# Passes when the binary exits 0 and its first line is
# "NAME VERSION (commit <12 hex digits or unknown>...".
execute_process(COMMAND ${BINARY} --version
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${BINARY} --version exited ${rc}: ${out}${err}")
endif()
string(REPLACE "." "\\." version_re "${VERSION}")
if(NOT out MATCHES "^${NAME} ${version_re} \\(commit ([0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]|unknown)[,)]")
  message(FATAL_ERROR "${BINARY} --version printed \"${out}\"; expected "
                      "\"${NAME} ${VERSION} (commit ...)\"")
endif()
message(STATUS "${out}")
