# campaignd_version: an INTERFACE target whose header "version.h" defines
# campaigns::kVersion (project(VERSION)) and campaigns::kGitCommit.
#
#   target_link_libraries(campaignd PRIVATE campaignd_version)
#   #include "version.h"
#
# The header is written at configure time and again by campaignd_version_header
# on every build (cmake/write_version_header.cmake rewrites it only when the
# commit changed), so an incremental build after a commit or a checkout
# carries the new commit, and one without recompiles nothing.
set(CAMPAIGND_VERSION_DIR ${CMAKE_BINARY_DIR}/generated)
set(CAMPAIGND_VERSION_HEADER ${CAMPAIGND_VERSION_DIR}/version.h)
set(_version_command
    ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
    -DOUTPUT=${CAMPAIGND_VERSION_HEADER} -DVERSION=${PROJECT_VERSION}
    -P ${CMAKE_CURRENT_LIST_DIR}/write_version_header.cmake)
file(MAKE_DIRECTORY ${CAMPAIGND_VERSION_DIR})
execute_process(COMMAND ${_version_command})
add_custom_target(campaignd_version_header
  COMMAND ${_version_command}
  BYPRODUCTS ${CAMPAIGND_VERSION_HEADER}
  COMMENT "version.h: campaignd ${PROJECT_VERSION} and the git commit"
  VERBATIM)
add_library(campaignd_version INTERFACE)
target_include_directories(campaignd_version INTERFACE ${CAMPAIGND_VERSION_DIR})
add_dependencies(campaignd_version campaignd_version_header)
