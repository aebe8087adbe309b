# SPDX-License-Identifier: MIT
# Checks examples/checksum against CMake's own SHA-256 (cmake -P script run by
# CTest when checksum uses OpenSSL).
#   cmake -DCHECKSUM=path/to/checksum -DDIR=some/tree -P checksum_verify.cmake
# Every regular file under DIR is listed once, in sorted order, with the hash
# that file(SHA256) computes.
foreach(var CHECKSUM DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "checksum_verify.cmake: -D${var}=... is required")
  endif()
endforeach()

execute_process(COMMAND "${CHECKSUM}" -p 3 "${DIR}" RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "checksum ${DIR} failed (${rc}):\n${err}")
endif()

string(REGEX REPLACE "\n$" "" out "${out}")
string(REPLACE "\n" ";" lines "${out}")
set(paths "")
foreach(line IN LISTS lines)
  if(NOT line MATCHES "^([0-9a-f]+)  (.+)$")
    message(FATAL_ERROR "unexpected line: ${line}")
  endif()
  set(hash "${CMAKE_MATCH_1}")
  set(path "${CMAKE_MATCH_2}")
  file(SHA256 "${path}" want)
  if(NOT hash STREQUAL want)
    message(FATAL_ERROR "${path}: checksum says ${hash}, CMake says ${want}")
  endif()
  list(APPEND paths "${path}")
endforeach()

set(sorted ${paths})
list(SORT sorted)
if(NOT sorted STREQUAL paths)
  message(FATAL_ERROR "the output is not in sorted order")
endif()
file(GLOB_RECURSE files LIST_DIRECTORIES false "${DIR}/*")
list(LENGTH files nfiles)
list(LENGTH paths npaths)
if(NOT nfiles EQUAL npaths)
  message(FATAL_ERROR "${npaths} files checksummed, ${nfiles} under ${DIR}")
endif()
message(STATUS "ok: ${npaths} files under ${DIR}, hashes equal to file(SHA256)")
