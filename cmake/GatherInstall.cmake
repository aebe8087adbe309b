# SPDX-License-Identifier: MIT
# Installation: libraries, header, CMake package, pkg-config file, man pages.
# Included by the top-level CMakeLists.txt when GATHER_INSTALL is ON (the
# default when gather is the top project).
#
# Targets: gather (the variant of BUILD_SHARED_LIBS), and gather_static
# beside a shared gather with GATHER_BUILD_BOTH.
#
# Components: Runtime (libgather.so.0.*) and Development (everything else), so
# that `cmake --install build --component Runtime` installs only what
# programs need to run.
include(CMakePackageConfigHelpers)

set(GATHER_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/gather)

# The include directory comes from the targets' $<INSTALL_INTERFACE>; an
# INCLUDES DESTINATION here would list it twice in gatherTargets.cmake.
install(TARGETS ${GATHER_INSTALL_TARGETS}
  EXPORT gatherTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    COMPONENT Runtime NAMELINK_COMPONENT Development
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Development
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Runtime)
install(FILES include/gather.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  COMPONENT Development)

# gatherTargets.cmake finds the prefix from its own location, so the package
# is relocatable (cmake --install --prefix, dpkg-deb -x).
install(EXPORT gatherTargets
  NAMESPACE gather::
  DESTINATION ${GATHER_CMAKE_DIR}
  COMPONENT Development)

configure_package_config_file(cmake/gatherConfig.cmake.in
  ${PROJECT_BINARY_DIR}/gatherConfig.cmake
  INSTALL_DESTINATION ${GATHER_CMAKE_DIR})
# Version compatibility. While the major version is 0, SemVer (item 4) lets
# any minor release change the API, so find_package(gather 0.1) accepts
# 0.1.x only (SameMinorVersion), never 0.2. STYLE.md's SameMajorVersion
# (zstd) would accept 0.2 for a 0.1 request, which is only right from 1.0 on:
# switch to SameMajorVersion with the 1.0.0 release, when minor releases
# become additive. The architecture check (32/64-bit) is kept.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/gatherConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/gatherConfig.cmake
  ${PROJECT_BINARY_DIR}/gatherConfigVersion.cmake
  DESTINATION ${GATHER_CMAKE_DIR}
  COMPONENT Development)

# gather.pc. The prefix is written relative to the file's own directory
# (${pcfiledir}, understood by pkg-config and pkgconf) rather than taken from
# CMAKE_INSTALL_FULL_* as STYLE.md suggests: the full paths are fixed at
# configure time, so `cmake --install build --prefix DIR` and packagers (that
# stage under their own prefix, then install under /usr) would get a .pc file
# that points at the configure-time prefix. Absolute CMAKE_INSTALL_LIBDIR or
# INCLUDEDIR values cannot be relocated and are written as they are.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(GATHER_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(GATHER_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
else()
  file(RELATIVE_PATH _gather_up "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
  string(REGEX REPLACE "/$" "" _gather_up "${_gather_up}") # "../.." for lib
  set(GATHER_PC_PREFIX "\${pcfiledir}/${_gather_up}")
  set(GATHER_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(GATHER_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(GATHER_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(cmake/gather.pc.in ${PROJECT_BINARY_DIR}/gather.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/gather.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
  COMPONENT Development)

# Man pages (section 3: library calls); `man -l docs/man/gather.3` reads
# them from the source tree. Each function documented on a shared page gets
# a one-line ".so" page, so that `man gather_map` finds gather_futures(3).
set(GATHER_MAN3_PAGES
  gather
  gather_pool_create
  gather_submit
  gather_future_wait
  gather_futures
  gather_cq_create)
set(GATHER_MAN3_LINKS
  gather_pool_create:gather_pool_shutdown,gather_pool_destroy,gather_pool_threads,gather_current_pool,gather_pool_stats_get,gather_pool_resize,gather_blocking_begin,gather_blocking_end
  gather_submit:gather_cancel_requested
  gather_future_wait:gather_future_wait_for,gather_future_done,gather_future_error,gather_future_value,gather_future_cancel,gather_future_cancelled,gather_future_on_done,gather_future_retain,gather_future_release
  gather_futures:gather_futures_for,gather_all,gather_map,gather_wait_any
  gather_cq_create:gather_cq_add,gather_cq_next,gather_cq_fd,gather_cq_destroy
  gather:gather_replace_allocator,gather_version)
set(_gather_man3 "")
foreach(page ${GATHER_MAN3_PAGES})
  list(APPEND _gather_man3 ${PROJECT_SOURCE_DIR}/docs/man/${page}.3)
endforeach()
foreach(entry ${GATHER_MAN3_LINKS})
  string(REPLACE ":" ";" entry "${entry}")
  list(GET entry 0 target)
  list(GET entry 1 names)
  string(REPLACE "," ";" names "${names}")
  foreach(name ${names})
    file(WRITE ${PROJECT_BINARY_DIR}/man3/${name}.3 ".so man3/${target}.3\n")
    list(APPEND _gather_man3 ${PROJECT_BINARY_DIR}/man3/${name}.3)
  endforeach()
endforeach()
install(FILES ${_gather_man3}
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man3
  COMPONENT Development)
