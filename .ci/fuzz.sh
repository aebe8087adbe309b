#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fuzzes the public API for a while (tests/fuzz/fuzz_api.c) with libFuzzer,
# AddressSanitizer, UBSan and LeakSanitizer, starting from the regression
# inputs of tests/fuzz/regressions (copied: the tree is not written).
#
#   .ci/fuzz.sh                 60 s in build-ci-fuzz
#   FUZZ_SECONDS=600 .ci/fuzz.sh
#   FUZZ_BUILD=other-dir .ci/fuzz.sh
#
# Installs clang, clang's runtime libraries (libFuzzer is packaged apart from
# the compiler on Debian: libclang-rt-<version>-dev) and the test framework
# when they are missing. Fails on a crash, a leak, a failed check or a hang,
# and prints the path of the input that caused it (kept in the build
# directory); replay it with build-ci-fuzz/tests/fuzz/fuzz_replay FILE, or
# add it to tests/fuzz/regressions once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TO_FUZZ="${FUZZ_SECONDS:-60}"
BUILD="${FUZZ_BUILD:-build-ci-fuzz}"

SUDO=
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
apt_install() {
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

missing=()
for pkg in clang check pkg-config; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
fi

# Can clang link a libFuzzer target? If not, install the runtime libraries
# of this clang version.
probe_dir="$(mktemp -d)"
trap 'rm -rf "$probe_dir"' EXIT
can_link_fuzzer() {
    printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
        > "$probe_dir/probe.c"
    clang -fsanitize=fuzzer,address "$probe_dir/probe.c" -o "$probe_dir/probe" 2>/dev/null
}
if ! can_link_fuzzer; then
    major="$(clang -dumpversion | cut -d. -f1)"
    apt_install "libclang-rt-${major}-dev"
    can_link_fuzzer || { echo "fuzz: clang still cannot link -fsanitize=fuzzer" >&2; exit 1; }
fi

echo "== Build fuzz_api ($BUILD, clang, ASan+UBSan, libFuzzer)"
CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DGATHER_BUILD_TESTS=ON -DGATHER_BUILD_EXAMPLES=OFF \
    -DGATHER_SANITIZE=address -DGATHER_FUZZ=ON >/dev/null
cmake --build "$BUILD" -j2 --target fuzz_api fuzz_replay >/dev/null

# The corpus grows as the fuzzer finds new inputs: a copy, not the tree.
corpus="$probe_dir/corpus"
mkdir -p "$corpus"
find tests/fuzz/regressions -maxdepth 1 -type f ! -name '*.md' -exec cp {} "$corpus/" \;
artifacts="$PWD/$BUILD/fuzz-artifacts"
mkdir -p "$artifacts"
log="$BUILD/fuzz.log"

# Short sessions sharing the corpus, rather than one long one: clang 14's
# LeakSanitizer skips a live thread whose kernel thread id an earlier,
# finished thread of the same process had, and reports what only that
# thread points to as leaked. Thread ids wrap at pid_max (32768), and the
# harness starts pools and spare threads for every input, so one process
# must stay well below that many threads: about 3,000 executions.
SESSION_RUNS="${FUZZ_SESSION_RUNS:-3000}"
echo "== Fuzz for ${SECONDS_TO_FUZZ} s ($(find "$corpus" -type f | wc -l) seed inputs, sessions of ${SESSION_RUNS} runs)"
status=0
end=$((SECONDS + SECONDS_TO_FUZZ))
sessions=0
total_execs=0
: >"$log"
while [ "$status" = 0 ] && [ "$SECONDS" -lt "$end" ]; do
    session_log="$BUILD/fuzz-session.log"
    ASAN_OPTIONS="detect_leaks=1" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
        "$BUILD/tests/fuzz/fuzz_api" -max_total_time="$((end - SECONDS))" \
        -runs="$SESSION_RUNS" -seed="$((sessions + 1))" \
        -timeout=30 -max_len=256 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$corpus" >"$session_log" 2>&1 || status=$?
    cat "$session_log" >>"$log"
    n="$(sed -n 's/^stat::number_of_executed_units: *//p' "$session_log")"
    total_execs=$((total_execs + ${n:-0}))
    sessions=$((sessions + 1))
done

echo "fuzz: ${total_execs} executions in ${sessions} sessions, log in $log"
if [ "$status" != 0 ]; then
    echo "--- the end of $log:" >&2
    tail -n 60 "$log" >&2
    echo "---" >&2
    grep -m 5 -E 'check failed|ERROR: |SUMMARY: ' "$log" >&2 || true
    written="$(sed -n "s/.*Test unit written to //p" "$log")"
    echo "fuzz: FAILED (status $status); input: ${written:-see $log}" >&2
    exit 1
fi
echo "== Fuzzing passed"
