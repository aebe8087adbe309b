# SPDX-License-Identifier: MIT
# Packaging with CPack: `cpack -G DEB` in the build directory (after a build)
# writes libgather-dev_<version>_<arch>.deb, `cpack -G TGZ` a tarball of the
# installed tree. Included only when gather is the top project.
#
# One package holds everything `cmake --install` installs: the runtime
# library (libgather.so.0*) and the development files (header, libgather.so,
# libgather.a, CMake package, gather.pc, man pages). It is named after the
# development half, as Debian names -dev packages, because that is what one
# installs to build against gather.
set(CPACK_PACKAGE_NAME gather)
set(CPACK_PACKAGE_VENDOR "gather")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "asyncio.gather() for C: a work-stealing thread pool with futures")
# Lines of at most 79 columns (dpkg shows the long description as is).
string(CONCAT CPACK_PACKAGE_DESCRIPTION
  "A C11 library: a work-stealing pthread pool where every submitted task\n"
  "returns a future, and gather_futures() waits for a list of futures the\n"
  "way Python's asyncio.gather() does: results in input order, failures\n"
  "returned at once or captured, the other tasks left running.\n"
  "This package holds the shared library (libgather.so.0), the static\n"
  "library, the header, the CMake package, gather.pc and man pages.")
set(CPACK_RESOURCE_FILE_README ${PROJECT_SOURCE_DIR}/README.md)
# Override on the command line for real releases:
#   cmake -DCPACK_PACKAGE_CONTACT="Name <mail>" ...
set(CPACK_PACKAGE_CONTACT "gather maintainers <gather-maintainers@example.org>"
  CACHE STRING "Maintainer field of the packages")

set(CPACK_DEBIAN_PACKAGE_NAME libgather-dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # libgather-dev_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Architecture: CPack asks dpkg --print-architecture.
# Dependencies: the library needs only libc6 (pthreads are part of it). With
# dpkg-shlibdeps (package dpkg-dev) and file, CPack computes the versioned
# dependency from the symbols used (libc6 (>= 2.34) on glibc 2.34 and later);
# without them the dependency is written unversioned.
find_program(GATHER_DPKG_SHLIBDEPS dpkg-shlibdeps)
find_program(GATHER_FILE_PROGRAM file)
mark_as_advanced(GATHER_DPKG_SHLIBDEPS GATHER_FILE_PROGRAM)
if(GATHER_DPKG_SHLIBDEPS AND GATHER_FILE_PROGRAM)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
else()
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "libc6")
endif()
# Refresh the dynamic linker's cache on install and removal, as debhelper
# does for shared libraries.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/cmake/debian/triggers)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# Source packages (cpack --config CPackSourceConfig.cmake): no VCS or build
# trees.
set(CPACK_SOURCE_GENERATOR TGZ)
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git/" "/build[^/]*/" "/\\\\.gl/" "/\\\\.whl/")

include(CPack)
