# SPDX-License-Identifier: MIT
# Runs examples/fetch against examples/slow_http_server (cmake -P script run
# by CTest when libcurl is found).
#   cmake -DFETCH=path/to/fetch -DSERVER=path/to/slow_http_server -DWORK=dir
#         [-DREQUESTS=64] [-DDELAY_MS=200] [-DMISSING=17] -P fetch_verify.cmake
# Starts the server in the background on an ephemeral port of 127.0.0.1 (it
# answers each request after DELAY_MS, and exits after REQUESTS answers, on
# GET /quit, which this script sends whatever happens, or after 60 s), runs
# `fetch -m MISSING http://127.0.0.1:PORT REQUESTS` and checks:
#   - exit status 1: one request failed;
#   - one line per request, in input order: 200 and item N's body for
#     request N, except request MISSING: 404, with its error payload;
#   - the summary: REQUESTS requests, REQUESTS - 1 ok, 1 failed;
#   - the total time: at least DELAY_MS (the server did wait) and less than
#     3 x DELAY_MS: the requests overlapped (one after the other they take
#     REQUESTS x DELAY_MS). This needs the elastic default pool, or as many
#     pool threads as requests.
foreach(var FETCH SERVER WORK)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "fetch_verify.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT DEFINED REQUESTS)
  set(REQUESTS 64)
endif()
if(NOT DEFINED DELAY_MS)
  set(DELAY_MS 200)
endif()
if(NOT DEFINED MISSING)
  set(MISSING 17)
endif()

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
# Requests to 127.0.0.1 never go through a proxy (fetch's libcurl and
# file(DOWNLOAD) below read these).
set(ENV{no_proxy} "127.0.0.1")
set(ENV{NO_PROXY} "127.0.0.1")

execute_process(COMMAND "${SERVER}" -b -d ${DELAY_MS} -n ${REQUESTS} -t 60
                RESULT_VARIABLE rc OUTPUT_VARIABLE port ERROR_VARIABLE err
                TIMEOUT 10)
string(STRIP "${port}" port)
if(NOT rc EQUAL 0 OR NOT port MATCHES "^[0-9]+$")
  message(FATAL_ERROR "slow_http_server did not start (${rc}): ${port}${err}")
endif()
set(base "http://127.0.0.1:${port}")

# Stops the server: it may have exited already (after REQUESTS answers).
function(stop_server)
  file(DOWNLOAD "${base}/quit" "${WORK}/quit.txt" TIMEOUT 5 STATUS ignored)
endfunction()

execute_process(COMMAND "${FETCH}" -m ${MISSING} "${base}" ${REQUESTS}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                TIMEOUT 60)
stop_server()

# fail(TEXT...): the texts joined, then fetch's output.
function(fail)
  string(JOIN "" why ${ARGV})
  message(FATAL_ERROR "${why}\n--- fetch -m ${MISSING} ${base} ${REQUESTS} (exit ${rc}):\n${out}${err}")
endfunction()

if(NOT rc EQUAL 1)
  fail("fetch exited with ${rc}, expected 1 (one request failed)")
endif()

# The result lines, "INDEX  STATUS  BYTES B  SECONDS s  BODY-OR-ERROR".
string(REPLACE ";" "\\;" lines "${out}")
string(REPLACE "\n" ";" lines "${lines}")
set(expect 1)
set(summary "")
foreach(line IN LISTS lines)
  if(line MATCHES "^ *([0-9]+)  ([0-9]+|---) +([0-9]+) B  ([0-9.]+) s  (.*)$")
    set(index "${CMAKE_MATCH_1}")
    set(status "${CMAKE_MATCH_2}")
    set(rest "${CMAKE_MATCH_5}")
    if(NOT index EQUAL expect)
      fail("result ${index} where result ${expect} was expected: not in input order")
    endif()
    if(index EQUAL MISSING)
      if(NOT status STREQUAL "404" OR
         NOT rest STREQUAL "error 404: HTTP 404 from ${base}/missing: not found")
        fail("request ${index} (/missing): the 404 was not captured in its slot: ${line}")
      endif()
    elseif(NOT status STREQUAL "200" OR
           NOT rest MATCHES "^{\"id\": ${index}, \"title\": \"item ${index}\"")
      fail("request ${index}: not item ${index}'s answer: ${line}")
    endif()
    math(EXPR expect "${expect} + 1")
  elseif(line MATCHES "^fetch: [0-9]+ requests in")
    set(summary "${line}")
  endif()
endforeach()
math(EXPR got "${expect} - 1")
if(NOT got EQUAL REQUESTS)
  fail("${got} result lines, expected ${REQUESTS}")
endif()

math(EXPR ok "${REQUESTS} - 1")
if(NOT summary MATCHES "^fetch: ${REQUESTS} requests in ([0-9]+)\\.([0-9][0-9][0-9]) s: ${ok} ok, 1 failed")
  fail("no summary line \"fetch: ${REQUESTS} requests in S s: ${ok} ok, 1 failed\"")
endif()
set(seconds "${CMAKE_MATCH_1}")
string(REGEX REPLACE "^0+(.)" "\\1" millis "${CMAKE_MATCH_2}") # no octal
math(EXPR took_ms "${seconds} * 1000 + ${millis}")
math(EXPR limit_ms "3 * ${DELAY_MS}")
math(EXPR serial_ms "${REQUESTS} * ${DELAY_MS}")
message(STATUS "fetch: ${REQUESTS} requests to a server answering after ${DELAY_MS} ms "
               "took ${took_ms} ms (limit ${limit_ms} ms; one after the other: ${serial_ms} ms)")
if(took_ms LESS DELAY_MS)
  fail("${took_ms} ms is less than the server's delay of ${DELAY_MS} ms")
endif()
if(NOT took_ms LESS limit_ms)
  fail("${REQUESTS} requests took ${took_ms} ms, not less than 3 x ${DELAY_MS} ms: "
       "they did not all wait at once (does the default pool start spare threads?)")
endif()
message(STATUS "ok: ${REQUESTS} results in input order, the 404 of request ${MISSING} in its slot, "
               "${took_ms} ms < ${limit_ms} ms")
file(REMOVE_RECURSE "${WORK}")
