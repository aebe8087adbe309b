# Installation: libraries, header, CMake package, pkg-config file.
include(CMakePackageConfigHelpers)

set(GATHER_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/gather)

install(TARGETS gather gather_static
  EXPORT gatherTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES include/gather.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(EXPORT gatherTargets
  NAMESPACE gather::
  DESTINATION ${GATHER_CMAKE_DIR})

configure_package_config_file(cmake/gatherConfig.cmake.in
  ${PROJECT_BINARY_DIR}/gatherConfig.cmake
  INSTALL_DESTINATION ${GATHER_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/gatherConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/gatherConfig.cmake
  ${PROJECT_BINARY_DIR}/gatherConfigVersion.cmake
  DESTINATION ${GATHER_CMAKE_DIR})

configure_file(cmake/gather.pc.in ${PROJECT_BINARY_DIR}/gather.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/gather.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
