#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Debian packages: builds them from debian/ in a temporary copy of this tree
# (dpkg-buildpackage -us -uc -b: libgather0.2, libgather-dev and the
# automatic -dbgsym package), runs lintian on the result (fails on any error
# or warning; informational tags are printed), then installs the packages
# with dpkg -i, builds and runs the consumers of tests/consumer/ against the
# installed system files (find_package with no CMAKE_PREFIX_PATH, pkg-config
# with no PKG_CONFIG_PATH, no LD_LIBRARY_PATH), and removes the packages.
#
# Needs root or sudo for apt-get (missing build tools: debhelper, dpkg-dev,
# lintian, cmake, check, pkgconf) and for dpkg -i/-r; without either it builds
# and checks the packages but does not install them. If libgather0.2 or
# libgather-dev is already installed, it is left alone and not tested.
# KEEP=1 keeps the temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD

step() { echo "== deb: $*"; }
fail() { echo "deb: FAILED: $*" >&2; exit 1; }
has() { grep -q -- "$1" <<<"$2"; }

SUDO=
CAN_ROOT=1
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; else CAN_ROOT=0; fi
fi
command -v dpkg >/dev/null 2>&1 || { echo "deb: not a Debian system, skipped"; exit 0; }

missing=()
for pkg in debhelper dpkg-dev lintian cmake check pkgconf; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$CAN_ROOT" = 1 ] || fail "missing ${missing[*]} (apt-get install them as root)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gather-deb.XXXXXX")
INSTALLED=0
cleanup() {
    if [ "$INSTALLED" = 1 ]; then
        $SUDO dpkg -r libgather-dev libgather0.2 >/dev/null || echo "deb: dpkg -r failed" >&2
    fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# The tree as it is (tracked and untracked files, not ignored ones, so no
# build directories), copied: dpkg-buildpackage writes beside the tree.
step "copy the tree to $TMP/gather"
mkdir -p "$TMP/gather"
if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$SRC" ls-files -z -co --exclude-standard \
        | (cd "$SRC" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) \
        | tar -C "$SRC" --null -T - -cf - | tar -C "$TMP/gather" -xf -
else
    tar -C "$SRC" --exclude='./build*' -cf - . | tar -C "$TMP/gather" -xf -
fi

step "dpkg-buildpackage -us -uc -b"
if ! (cd "$TMP/gather" && dpkg-buildpackage -us -uc -b) >"$TMP/build.log" 2>&1; then
    tail -n 60 "$TMP/build.log" >&2
    fail "dpkg-buildpackage"
fi
VERSION=$(dpkg-parsechangelog -l debian/changelog -S Version)
ARCH=$(dpkg --print-architecture)
CHANGES="$TMP/gather_${VERSION}_${ARCH}.changes"
LIB_DEB="$TMP/libgather0.2_${VERSION}_${ARCH}.deb"
DEV_DEB="$TMP/libgather-dev_${VERSION}_${ARCH}.deb"
for f in "$CHANGES" "$LIB_DEB" "$DEV_DEB"; do [ -f "$f" ] || fail "not built: $f"; done
ls "$TMP"/*.deb

step "lintian (errors and warnings fail; informational tags shown)"
# As root lintian says "running with root privileges is not recommended!" on
# stderr: not a tag.
set +e
LINTIAN=$(lintian --info --display-info --pedantic "$CHANGES" 2>&1)
set -e
echo "${LINTIAN:-(no tags)}"
if has '^[EW]: ' "$LINTIAN"; then
    fail "lintian reports errors or warnings"
fi

step "contents"
LIB_LIST=$(dpkg-deb -c "$LIB_DEB")
DEV_LIST=$(dpkg-deb -c "$DEV_DEB")
for f in 'libgather\.so\.0\.2 -> libgather\.so\.0\.2\.0$' 'libgather\.so\.0\.2\.0$' \
         'doc/libgather0\.2/copyright$'; do
    has "$f" "$LIB_LIST" || fail "libgather0.2 lacks $f"
done
if has 'include/\|libgather\.a\|libgather\.so -> ' "$LIB_LIST"; then
    fail "libgather0.2 holds development files"
fi
for f in 'usr/include/gather\.h$' 'libgather\.so -> libgather\.so\.0\.2$' 'libgather\.a$' \
         'cmake/gather/gatherConfig\.cmake$' 'pkgconfig/gather\.pc$' \
         'man3/gather_futures\.3\.gz$' 'man3/gather_map\.3\.gz -> gather_futures\.3\.gz' \
         'doc/libgather-dev/copyright$'; do
    has "$f" "$DEV_LIST" || fail "libgather-dev lacks $f"
done
[ "$(dpkg-deb -f "$LIB_DEB" Multi-Arch)" = same ] || fail "libgather0.2 is not Multi-Arch: same"
has '^ gather_submit@GATHER_0\.1 ' "$(dpkg-deb -I "$LIB_DEB" symbols)" \
    || fail "libgather0.2 has no symbols file with versioned symbols"

if [ "$CAN_ROOT" = 0 ]; then
    echo "deb: not root and no sudo: packages not installed"
    exit 0
fi
if dpkg -s libgather0.2 >/dev/null 2>&1 || dpkg -s libgather-dev >/dev/null 2>&1; then
    echo "deb: libgather0.2 or libgather-dev is already installed: left alone, not tested"
    exit 0
fi

step "dpkg -i"
INSTALLED=1
$SUDO dpkg -i "$LIB_DEB" "$DEV_DEB" >"$TMP/dpkg-i.log" 2>&1 || { cat "$TMP/dpkg-i.log" >&2; fail "dpkg -i"; }

step "CMake consumer against the installed package (find_package)"
b="$TMP/cmake"
cmake -S tests/consumer/cmake -B "$b" -DCONSUMER_LANG=C -DGATHER_WANT=0.2 >"$TMP/cmake.log" 2>&1 \
    || { cat "$TMP/cmake.log" >&2; fail "consumer configure"; }
has "gather 0\.2\.[0-9]* from /usr/lib/" "$(cat "$TMP/cmake.log")" \
    || { cat "$TMP/cmake.log" >&2; fail "find_package did not find the installed package"; }
cmake --build "$b" >"$TMP/cmake-build.log" 2>&1 || { cat "$TMP/cmake-build.log" >&2; fail "consumer build"; }
"$b/app"
"$b/app_static"
has 'libgather\.so\.0\.2 => \(/usr\)\?/lib/' "$(ldd "$b/app")" || fail "app does not load the installed libgather"

step "pkg-config consumer against the installed package"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -o "$TMP/pc-app" tests/consumer/pkgconfig/main.c \
    $(pkg-config --cflags --libs gather)
"$TMP/pc-app"
# (Container images often keep dpkg from unpacking man pages at all.)
if [ -e /usr/share/man/man3/gather_futures.3.gz ] && command -v man >/dev/null 2>&1; then
    man -w gather_map >/dev/null || fail "man -w gather_map"
fi

step "dpkg -r"
INSTALLED=0
$SUDO dpkg -r libgather-dev libgather0.2 >/dev/null
! dpkg -s libgather0.2 >/dev/null 2>&1 || fail "libgather0.2 still installed"
step "passed"
