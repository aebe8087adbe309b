# SPDX-License-Identifier: MIT
# Round trips through pgzip and gzip (cmake -P script run by CTest).
#   cmake -DPGZIP=path/to/pgzip -DGZIP=path/to/gzip -DWORK=scratch-dir -P pgzip_roundtrip.cmake
# Checks: FILE -> FILE.gz with -k (gzip -t, gzip -dc, compared), without -k
# (the input is removed), the stdin -> stdout filter, -c, an empty file, many
# small blocks (-b 1, more blocks than the ring holds), and that an existing
# FILE.gz is not overwritten without -f.
foreach(var PGZIP GZIP WORK)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "pgzip_roundtrip.cmake: -D${var}=... is required")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")

# in.txt: about 700 KB of text, with a random part, not a multiple of the
# block size.
set(text "")
foreach(i RANGE 1 60)
  string(RANDOM LENGTH 2000 ALPHABET "abcdefghij \n" random)
  string(REPEAT "line ${i}: the quick brown fox jumps over the lazy dog\n" 180 repeated)
  string(APPEND text "${random}${repeated}")
endforeach()
string(APPEND text "no newline at the end")
file(WRITE "${WORK}/in.txt" "${text}")
file(WRITE "${WORK}/empty.txt" "")

function(run)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY "${WORK}" RESULT_VARIABLE rc
                  OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}${err}")
  endif()
endfunction()

# check_gz(GZ ORIGINAL): gzip -t accepts GZ, gzip -dc gives back ORIGINAL.
function(check_gz gz original)
  run("${GZIP}" -t "${gz}")
  execute_process(COMMAND "${GZIP}" -dc "${gz}" OUTPUT_FILE "${WORK}/check.out"
                  WORKING_DIRECTORY "${WORK}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gzip -dc ${gz} failed (${rc})")
  endif()
  execute_process(COMMAND "${CMAKE_COMMAND}" -E compare_files "${WORK}/check.out"
                          "${WORK}/${original}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gzip -dc ${gz} differs from ${original}")
  endif()
  message(STATUS "ok: ${gz} == gzip ${original}")
endfunction()

# 1. FILE -> FILE.gz, keeping FILE; small blocks on 3 threads.
run("${PGZIP}" -k -p 3 -b 32 in.txt)
if(NOT EXISTS "${WORK}/in.txt" OR NOT EXISTS "${WORK}/in.txt.gz")
  message(FATAL_ERROR "-k: in.txt and in.txt.gz should both exist")
endif()
check_gz(in.txt.gz in.txt)

# 2. An existing .gz is not overwritten without -f (exit status 2), with -f it is.
execute_process(COMMAND "${PGZIP}" -k in.txt WORKING_DIRECTORY "${WORK}" RESULT_VARIABLE rc
                ERROR_QUIET)
if(NOT rc EQUAL 2)
  message(FATAL_ERROR "pgzip over an existing in.txt.gz: exit ${rc}, expected 2")
endif()
run("${PGZIP}" -k -f -9 in.txt)
check_gz(in.txt.gz in.txt)

# 3. Without -k the input is removed, like gzip.
run("${CMAKE_COMMAND}" -E copy in.txt copy.txt)
run("${PGZIP}" -p 2 copy.txt)
if(EXISTS "${WORK}/copy.txt" OR NOT EXISTS "${WORK}/copy.txt.gz")
  message(FATAL_ERROR "without -k, copy.txt should be replaced by copy.txt.gz")
endif()
check_gz(copy.txt.gz in.txt)

# 4. The filter: stdin to stdout, 1 KiB blocks (hundreds of them, far more
#    than the ring of 4 x 2 slots).
execute_process(COMMAND "${PGZIP}" -p 2 -b 1 INPUT_FILE "${WORK}/in.txt"
                OUTPUT_FILE "${WORK}/filter.gz" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pgzip < in.txt > filter.gz failed (${rc})")
endif()
check_gz(filter.gz in.txt)

# 5. -c: to stdout, input kept.
execute_process(COMMAND "${PGZIP}" -c in.txt WORKING_DIRECTORY "${WORK}"
                OUTPUT_FILE "${WORK}/stdout.gz" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT EXISTS "${WORK}/in.txt")
  message(FATAL_ERROR "pgzip -c in.txt failed (${rc})")
endif()
check_gz(stdout.gz in.txt)

# 6. An empty file gives a valid (one empty member) .gz file.
run("${PGZIP}" -k empty.txt)
check_gz(empty.txt.gz empty.txt)

file(REMOVE_RECURSE "${WORK}")
