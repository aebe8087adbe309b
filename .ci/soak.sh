#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the soak test (tests/soak/soak.c) of an already built tree:
#
#   bash .ci/soak.sh BUILD_DIR SECONDS [extra soak options, e.g. --seed N]
#
# e.g. `bash .ci/soak.sh build-ci-tsan 60`. The seed is printed first (and
# again on a failure) so that a failure can be replayed with --seed. The
# sanitizer options make any report fatal; a hang is caught by soak's own
# watchdog. Fails when soak exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ]; then
    echo "usage: bash .ci/soak.sh BUILD_DIR SECONDS [soak options]" >&2
    exit 2
fi
dir=$1
seconds=$2
shift 2
bin="$dir/tests/soak/soak"
if [ ! -x "$bin" ]; then
    echo "soak: $bin not found: build $dir with -DGATHER_BUILD_TESTS=ON first" >&2
    exit 2
fi

export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

echo "== Soak: $bin for $seconds s"
start=$(date +%s)
status=0
"$bin" --seconds "$seconds" "$@" || status=$?
echo "== Soak: exit $status after $(( $(date +%s) - start )) s"
if [ "$status" -ne 0 ]; then
    echo "soak: FAILED (exit $status); replay with the seed printed above" >&2
    exit 1
fi
