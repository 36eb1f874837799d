# Install rules and the Debian package, included from the root CMakeLists.txt.
#
#   cd build && cpack -G DEB      # -> campaignd_0.1.0_amd64.deb
#   scripts/check_deb.sh build    # what CI checks in it
#
# The package holds /usr/bin/{campaignd,campaignctl,campaignd-gateway},
# /etc/campaignd/campaignd.toml (a conffile: the repository's
# campaignd.example.toml with the packaged paths), the systemd unit
# /lib/systemd/system/campaignd.service (packaging/campaignd.service) and the
# maintainer scripts in packaging/debian/ (the system user campaignd).
# Install rules only: the normal build (scripts/run.sh, scripts/build.sh)
# builds exactly what it built before; the two generated files below are
# written at configure time.
set(_pkg_src ${CMAKE_CURRENT_LIST_DIR})
set(_pkg_out ${CMAKE_BINARY_DIR}/packaging)
file(MAKE_DIRECTORY ${_pkg_out})

# /etc/campaignd/campaignd.toml, derived from campaignd.example.toml so the
# two never drift apart: every key and comment of the example, with the
# database in the state directory. Each edit must find its text, so a change
# to the example that breaks one stops the configure step here.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${PROJECT_SOURCE_DIR}/campaignd.example.toml
             ${_pkg_src}/debian/changelog)
file(READ ${PROJECT_SOURCE_DIR}/campaignd.example.toml _pkg_toml)
function(_pkg_toml_replace from to)
  string(FIND "${_pkg_toml}" "${from}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "packaging/package.cmake: campaignd.example.toml "
                        "no longer contains \"${from}\"; update the edit")
  endif()
  string(REPLACE "${from}" "${to}" result "${_pkg_toml}")
  set(_pkg_toml "${result}" PARENT_SCOPE)
endfunction()
_pkg_toml_replace(
  "# campaignd.example.toml: every key campaignd's config file takes.\n"
  "# /etc/campaignd/campaignd.toml: campaignd's config as the Debian package\n# installs it (campaignd.service runs campaignd --config with this file).\n# A conffile: your edits survive upgrades. It takes every key below.\n")
_pkg_toml_replace("#   campaignd --config campaignd.toml\n"
                  "#   campaignd --config /etc/campaignd/campaignd.toml\n")
_pkg_toml_replace(
  "directory, as on the command line.\n"
  "directory, as on the command line\n# (/var/lib/campaignd under campaignd.service).\n")
_pkg_toml_replace(" (tests/config/config_test.cc loads this file both ways.)" "")
_pkg_toml_replace("db = \"./campaignd.db\"             #"
                  "db = \"/var/lib/campaignd/campaignd.db\"   #")
# Not an edit: the package must listen on loopback only until told otherwise.
_pkg_toml_replace("listen = \"127.0.0.1:50051\"" "listen = \"127.0.0.1:50051\"")
file(WRITE ${_pkg_out}/campaignd.toml.new "${_pkg_toml}")
configure_file(${_pkg_out}/campaignd.toml.new ${_pkg_out}/campaignd.toml
               COPYONLY)

# The Debian changelog, compressed as Debian policy wants (gzip -9n: no name
# or time stamp, so the package's bytes do not depend on when it was built).
# Its first entry's version must be the project's (scripts/check_deb.sh).
execute_process(
  COMMAND gzip -9n -c ${_pkg_src}/debian/changelog
  OUTPUT_FILE ${_pkg_out}/changelog.gz
  RESULT_VARIABLE _pkg_gzip)
if(NOT _pkg_gzip EQUAL 0)
  message(FATAL_ERROR "gzip of packaging/debian/changelog failed")
endif()

# cpack (and make install) package what the build made, without building
# every test binary first: the installed targets are the ones scripts/run.sh
# builds, and CI packages right after the full build. Build before packaging.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

# Install rules. Relative destinations are under the package's prefix /usr;
# /etc and /lib/systemd are absolute, as Debian puts them.
install(TARGETS campaignd campaignctl RUNTIME DESTINATION bin)
if(TARGET gateway)
  install(PROGRAMS ${CMAKE_BINARY_DIR}/tools/gateway/campaignd-gateway
          DESTINATION bin)
  # install(PROGRAMS) is not stripped with the targets: strip the Go binary
  # when the install strips (cpack: CPACK_STRIP_FILES).
  install(CODE "
    if(CMAKE_INSTALL_DO_STRIP)
      execute_process(COMMAND ${CMAKE_STRIP} --strip-unneeded
        --remove-section=.comment --remove-section=.note
        \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/bin/campaignd-gateway\")
    endif()")
endif()
install(FILES ${_pkg_out}/campaignd.toml DESTINATION /etc/campaignd)
install(FILES ${_pkg_src}/campaignd.service DESTINATION /lib/systemd/system)
install(FILES ${_pkg_src}/debian/copyright ${_pkg_out}/changelog.gz
              ${PROJECT_SOURCE_DIR}/README.md
        DESTINATION share/doc/campaignd)

# CPack: one Debian package, campaignd_<version>_<arch>.deb.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME campaignd)
set(CPACK_PACKAGE_VENDOR "The campaignd authors")
set(CPACK_PACKAGE_CONTACT
    "Seed c02bf9e9 maintainers <maintainers@users.noreply.b-seed-c02bf9e9.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "self-hosted bulk-messaging campaign service (gRPC)")
# CPack writes the summary as the synopsis line; this is the long part.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "campaignd is one C++ gRPC process with an embedded SQLite database that lets
an application create a campaign (SMS, WhatsApp, Telegram, email, Slack,
RCS), stream in its recipients, start it and watch it go out: throttled per
sender, pausable, cancellable, every recipient tracked to delivery. This
package holds the server with its systemd unit, the command-line client
campaignctl and campaignd-gateway, a REST/JSON proxy in front of the gRPC
API.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The libraries' packages come from dpkg-shlibdeps; postinst needs adduser.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${_pkg_src}/debian/postinst ${_pkg_src}/debian/prerm
    ${_pkg_src}/debian/postrm ${_pkg_src}/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
    WORLD_READ WORLD_EXECUTE)
set(CPACK_STRIP_FILES ON)
include(CPack)
