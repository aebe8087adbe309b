#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The fast suite under valgrind (memcheck): every Check suite of a plain
# RelWithDebInfo build; an error or a leak fails the run. Check forks a
# process per test; valgrind follows the forks and checks leaks in each.
# Usage: bash .ci/valgrind.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build-ci-valgrind}"
if ! command -v valgrind >/dev/null 2>&1; then
    SUDO=
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq valgrind >/dev/null
fi
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGATHER_BUILD_TESTS=ON \
    -DGATHER_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$dir" -j2 >/dev/null
export CK_TIMEOUT_MULTIPLIER=20
export VG_SUPP="$PWD/tests/valgrind.supp"
run_one() {
    local log
    log=$(mktemp)
    local start=$SECONDS
    if valgrind --error-exitcode=1 --leak-check=full --fair-sched=yes -q \
        --suppressions="$VG_SUPP" "$1" >"$log" 2>&1; then
        echo "valgrind ok   $(basename "$1") ($((SECONDS - start)) s)"
        rm -f "$log"
    else
        echo "valgrind FAIL $(basename "$1") ($((SECONDS - start)) s)"
        cat "$log"
        rm -f "$log"
        return 1
    fi
}
export -f run_one
# The Check suites and the shared-library smoke test, two at a time.
find "$dir/tests" -maxdepth 1 -type f -name 'check_*' -perm -u+x \
    ! -name check_header_cxx | sort |
    xargs -P2 -I{} bash -c 'run_one "$@"' _ {}
