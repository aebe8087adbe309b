# SPDX-License-Identifier: MIT
# check_abi.cmake - the ABI check (CTest abi_symbols): the dynamic symbols
# that the shared library defines, each with its version ("name@@VERSION",
# from readelf --dyn-syms), compared with the committed list
# tests/abi/gather.symbols. Any difference fails with the lines that differ,
# so that an ABI change is a visible diff in review.
#
#   cmake -DLIB=libgather.so -DSYMBOLS=tests/abi/gather.symbols
#         [-DREADELF=readelf] [-DUPDATE=ON] -P tests/check_abi.cmake
#
# UPDATE=ON rewrites the list from the library instead (the build target
# abi_update does that): for an intended change, after adding the symbol to
# the node of the release in progress in lib/gather.map.
if(NOT LIB OR NOT SYMBOLS)
  message(FATAL_ERROR "usage: cmake -DLIB=... -DSYMBOLS=... [-DUPDATE=ON] -P check_abi.cmake")
endif()
if(NOT READELF)
  find_program(READELF NAMES readelf eu-readelf REQUIRED)
endif()
execute_process(COMMAND ${READELF} --dyn-syms --wide ${LIB}
                OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "abi_symbols: ${READELF} failed on ${LIB}")
endif()

# "  12: 0000000000004a10   123 FUNC    GLOBAL DEFAULT   14 gather_all@@GATHER_0.1"
# Defined symbols have a section number in Ndx; UND are imports, ABS the
# version nodes themselves (GATHER_0.1). A symbol without a version (the
# version script lost it) is listed bare and shows up as a difference.
string(REPLACE "\n" ";" lines "${out}")
set(actual "")
foreach(line IN LISTS lines)
  if(line MATCHES "^ *[0-9]+: [0-9a-fA-F]+ +[0-9a-fx]+ +[A-Z_]+ +(GLOBAL|WEAK|UNIQUE|GNU_UNIQUE) +[A-Z_]+ +[0-9]+ +([^ ]+)")
    set(sym "${CMAKE_MATCH_2}")
    if(NOT sym MATCHES "^(_init|_fini|_edata|_end|__bss_start)(@|$)")
      list(APPEND actual "${sym}")
    endif()
  endif()
endforeach()
list(SORT actual)
list(REMOVE_DUPLICATES actual)
list(LENGTH actual n)

if(UPDATE)
  string(REPLACE ";" "\n" text "${actual}")
  file(WRITE ${SYMBOLS} "${text}\n")
  message(STATUS "abi_symbols: wrote ${n} symbols to ${SYMBOLS}")
  return()
endif()

if(NOT EXISTS ${SYMBOLS})
  message(FATAL_ERROR "abi_symbols: ${SYMBOLS} does not exist")
endif()
file(STRINGS ${SYMBOLS} expected)
list(FILTER expected EXCLUDE REGEX "^(#|$)")
set(removed ${expected})
list(REMOVE_ITEM removed ${actual})
set(added ${actual})
list(REMOVE_ITEM added ${expected})
if(removed OR added)
  set(diff "")
  foreach(s IN LISTS removed)
    string(APPEND diff "  - ${s}\n")
  endforeach()
  foreach(s IN LISTS added)
    string(APPEND diff "  + ${s}\n")
  endforeach()
  message(FATAL_ERROR
    "abi_symbols: the ABI of ${LIB} differs from ${SYMBOLS}\n"
    "(- listed in the file but not exported, + exported but not listed):\n"
    "${diff}"
    "A removed or re-versioned symbol breaks programs linked against this "
    "SONAME. For an intended addition: put it in the node of the release in "
    "progress in lib/gather.map, then update the list "
    "(cmake --build <build> --target abi_update) and commit both.")
endif()
message(STATUS "abi_symbols: ${n} symbols, as in ${SYMBOLS}")
