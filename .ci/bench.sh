#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# CI for the benchmark suite: build it (Release, every peer found) and run
# bench/run --quick once. No timing is asserted: this fails only when the
# suite does not build, or a program crashes or computes a wrong result, so
# that the benchmarks never rot. Peers (oneTBB, libomp, GLib) are installed
# when missing and apt-get is usable; a peer that cannot be had is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
missing=()
for pkg in python3 libtbb-dev libomp-dev libglib2.0-dev pkg-config g++ clang; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bench: installing ${missing[*]} (optional peers)"
    { $SUDO apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"; } >/dev/null 2>&1 ||
        echo "bench: could not install ${missing[*]}; those peers are skipped"
fi

dir=build-ci-bench
echo "== Benchmarks: build ($dir)"
cmake -S . -B "$dir" -DGATHER_BENCH=ON -DCMAKE_BUILD_TYPE=Release \
    -DGATHER_BUILD_TESTS=OFF -DGATHER_BUILD_EXAMPLES=OFF | grep -E '^-- bench:' || true
cmake --build "$dir" -j2 >/dev/null

echo "== Benchmarks: bench/run --quick (results checked, timings not)"
python3 bench/run --quick --build "$dir" --csv "$dir/bench-quick.csv" --md "$dir/bench-quick.md"
