# The manual page, the bash completion and the Debian package (docs/PACKAGING.md).
#
# Every build that finds scdoc makes the manual page (packaging/man/hasync.8.scd → roff,
# gzip -9n → hasync.8.gz) and installs it with the bash completion, so `cmake --install`
# gives them too. HASYNC_DEB_PACKAGE=ON lays the install out as the Debian package wants
# it and configures CPack's DEB generator (`cpack -G DEB`):
#   /usr/sbin/hasync, /lib/systemd/system/hasync.service, /etc/hasync/hasync.toml (the
#   commented example, a conffile), /usr/share/doc/hasync/ (docs, examples, copyright,
#   changelog.gz), /usr/share/man/man8/hasync.8.gz,
#   /usr/share/bash-completion/completions/hasync.
# Only the package installs into /etc: a plain `cmake --install` must never overwrite an
# administrator's configuration.

find_program(HASYNC_SCDOC scdoc)
find_program(HASYNC_GZIP gzip)
if(HASYNC_DEB_PACKAGE AND NOT HASYNC_SCDOC)
  message(FATAL_ERROR "HASYNC_DEB_PACKAGE needs scdoc for the manual page (apt-get install scdoc)")
endif()

set(pkg_src ${PROJECT_SOURCE_DIR}/packaging)
set(pkg_out ${PROJECT_BINARY_DIR}/packaging)
file(MAKE_DIRECTORY ${pkg_out})

# The changelog's newest entry must name the project version: a release that bumps one
# and not the other is caught here, not by a user reading the package.
file(STRINGS ${pkg_src}/deb/changelog changelog_top LIMIT_COUNT 1)
if(NOT changelog_top MATCHES "^hasync \\(([^)]+)\\) ")
  message(FATAL_ERROR "packaging/deb/changelog: first line is not 'hasync (VERSION) …'")
endif()
if(HASYNC_DEB_PACKAGE AND NOT CMAKE_MATCH_1 STREQUAL PROJECT_VERSION)
  message(FATAL_ERROR "packaging/deb/changelog names version ${CMAKE_MATCH_1} but the project "
                      "is ${PROJECT_VERSION}: add a changelog entry for this version")
endif()

# Reproducible outputs: scdoc dates the page from SOURCE_DATE_EPOCH, which is the time of
# the newest changelog entry (as dpkg-buildpackage would set it); gzip -n drops the name
# and time stamp.
set(source_date_env "")
find_program(HASYNC_DPKG_PARSECHANGELOG dpkg-parsechangelog)
if(HASYNC_DPKG_PARSECHANGELOG)
  execute_process(
    COMMAND ${HASYNC_DPKG_PARSECHANGELOG} -l ${pkg_src}/deb/changelog -STimestamp
    OUTPUT_VARIABLE changelog_epoch OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
  if(rc EQUAL 0)
    set(source_date_env SOURCE_DATE_EPOCH=${changelog_epoch})
  endif()
endif()

if(HASYNC_SCDOC)
  add_custom_command(
    OUTPUT ${pkg_out}/hasync.8.gz
    COMMAND ${CMAKE_COMMAND} -E env ${source_date_env} sh -c
            "'${HASYNC_SCDOC}' < '${pkg_src}/man/hasync.8.scd' | '${HASYNC_GZIP}' -9n > hasync.8.gz"
    DEPENDS ${pkg_src}/man/hasync.8.scd ${pkg_src}/deb/changelog
    WORKING_DIRECTORY ${pkg_out}
    COMMENT "scdoc: hasync(8) manual page"
    VERBATIM)
  add_custom_target(hasync_man ALL DEPENDS ${pkg_out}/hasync.8.gz)
  install(FILES ${pkg_out}/hasync.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
else()
  message(STATUS "scdoc not found: the hasync(8) manual page is not built")
endif()

install(FILES ${pkg_src}/completion/hasync.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME hasync)

if(NOT HASYNC_DEB_PACKAGE)
  return()
endif()

# --- The Debian package ------------------------------------------------------------------

# Debian's own changelog and copyright files, where Debian policy puts them.
add_custom_command(
  OUTPUT ${pkg_out}/changelog.gz
  COMMAND sh -c "'${HASYNC_GZIP}' -9n < '${pkg_src}/deb/changelog' > changelog.gz"
  DEPENDS ${pkg_src}/deb/changelog
  WORKING_DIRECTORY ${pkg_out}
  VERBATIM)
add_custom_target(hasync_deb_changelog ALL DEPENDS ${pkg_out}/changelog.gz)
install(FILES ${pkg_out}/changelog.gz ${pkg_src}/deb/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})
# The commented example as the configuration: every key shown, node/peer/roots to edit.
install(FILES ${pkg_src}/examples/hasync.toml DESTINATION /etc/hasync)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME hasync)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/deb)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_CONTACT "hasync maintainers <maintainers@users.noreply.r-seed-6631284c.example>")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # hasync_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)  # Depends: from dpkg-shlibdeps
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "replicates a job scheduler's state directory to a standby server
hasync keeps a job scheduler's state directory (Slurm StateSaveLocation,
PBS/Torque server_priv, a Grid Engine spool) identical on a primary and a
standby controller server, and moves the scheduler to the survivor when the
primary dies or hangs, without NFS or any shared disk. One program runs as
the service on both servers and is its own administration tool.")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${pkg_src}/deb/conffiles ${pkg_src}/deb/postinst ${pkg_src}/deb/prerm ${pkg_src}/deb/postrm)
# Maintainer scripts 0755, conffiles 0644, whatever the checkout's umask made them.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)

# The package's tests (tests/package/deb_test.sh), label "package": build it with cpack,
# check it with lintian, then install, check, remove and purge it on this machine (root).
# A step that cannot run here exits 77: CTest reports it skipped, never passed.
enable_testing()
set(deb_test ${PROJECT_SOURCE_DIR}/tests/package/deb_test.sh)
add_test(NAME DebPackage.Build COMMAND ${deb_test} build ${PROJECT_BINARY_DIR})
add_test(NAME DebPackage.Lintian COMMAND ${deb_test} lintian ${PROJECT_BINARY_DIR})
add_test(NAME DebPackage.InstallRemovePurge
         COMMAND ${deb_test} install ${PROJECT_BINARY_DIR} ${PROJECT_VERSION})
set_tests_properties(DebPackage.Build PROPERTIES FIXTURES_SETUP hasync_deb)
set_tests_properties(DebPackage.Lintian DebPackage.InstallRemovePurge
                     PROPERTIES FIXTURES_REQUIRED hasync_deb)
set_tests_properties(DebPackage.Build DebPackage.Lintian DebPackage.InstallRemovePurge
                     PROPERTIES LABELS package SKIP_RETURN_CODE 77 TIMEOUT 600)
