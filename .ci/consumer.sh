#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Consumer test: build gather, install it into a temporary prefix, then build
# and run out-of-tree programs against the installed files the way users do:
#
#   1. tests/consumer/cmake with find_package(gather 0.x CONFIG REQUIRED)
#      against a shared build with GATHER_BUILD_BOTH (as the Debian build),
#      linking gather::gather (shared) and gather::gather_static; in C++ when
#      a C++ compiler is installed (and then in C too), else in C only; then
#      against a static-only build (BUILD_SHARED_LIBS=OFF);
#   2. the same project with gather built inside it, which installs itself
#      and whose installed program must run: add_subdirectory() of this
#      source tree (static by default: nothing of gather installed; with
#      BUILD_SHARED_LIBS=ON: the shared library alone, found by ldd through
#      the app's RPATH; with GATHER_INSTALL=ON too: gather's development
#      files as well), and FetchContent (GIT_TAG main, as in the README) from
#      a git repository made of this tree;
#   3. tests/consumer/pkgconfig/main.c with a plain compiler line,
#      `cc main.c $(pkg-config --cflags --libs gather)`, and statically with
#      `pkg-config --static` and libgather.a.
# (The Debian packages and their consumers: .ci/deb.sh.)
#
# Also checks the installed layout (SONAME chain, CMake package, gather.pc,
# man pages), the version file's policy and the exported symbols.
# Needs cmake, a C compiler and pkg-config (installed with apt-get when
# missing, as root or through sudo). Exits non-zero on the first failure.
# Environment: CC, CXX (compilers), GATHER_CONSUMER_BUILD (gather's build
# directory, default build-consumer), KEEP=1 keeps the temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
BUILD=${GATHER_CONSUMER_BUILD:-build-consumer}
CC=${CC:-cc}
export CC

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gather-consumer.XXXXXX")
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi; }
trap cleanup EXIT
PREFIX=$TMP/prefix

step() { echo "== consumer: $*"; }
# has REGEX TEXT: TEXT has a line matching REGEX. (Not `cmd | grep -q`: with
# pipefail, grep quitting early can kill cmd with SIGPIPE and fail the test.)
has() { grep -q -- "$1" <<<"$2"; }
# run LABEL CMD...: runs a consumer program, its output line labelled.
run() { printf '   %-7s ' "$1:"; shift; "$@"; }
fail() { echo "consumer: FAILED: $*" >&2; exit 1; }
# quiet LOGNAME CMD...: runs CMD with its output in $TMP/LOGNAME.log, shown
# only when it fails.
quiet() {
    local log="$TMP/$1.log"; shift
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        fail "$*"
    fi
}

if ! command -v pkg-config >/dev/null 2>&1; then
    SUDO=
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
    if command -v apt-get >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq pkg-config >/dev/null
    else
        fail "pkg-config is needed (Fedora: pkgconf; macOS: brew install pkg-config)"
    fi
fi
command -v "$CC" >/dev/null 2>&1 || fail "no C compiler ($CC)"
# A C++ compiler: $CXX when set (CXX=none pretends there is none: CMake
# then finds none either), else one of those CMake looks for first.
CXX_FOUND=0
if [ -n "${CXX:-}" ]; then
    command -v "$CXX" >/dev/null 2>&1 && CXX_FOUND=1
else
    for c in c++ g++ clang++; do
        command -v "$c" >/dev/null 2>&1 && CXX_FOUND=1
    done
fi

step "build gather ($BUILD)"
quiet configure cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DGATHER_BUILD_TESTS=OFF -DGATHER_BUILD_EXAMPLES=OFF -DGATHER_BENCH=OFF \
    -DGATHER_SANITIZE= -DBUILD_SHARED_LIBS=ON -DGATHER_BUILD_BOTH=ON
quiet build cmake --build "$BUILD" -j2
# The version and the SONAME's version (README, "ABI policy": 0.x minors
# are their own ABI, libgather.so.0.2; from 1.0 on libgather.so.1).
VERSION=$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
[ -n "$VERSION" ] || fail "no CMAKE_PROJECT_VERSION in $BUILD/CMakeCache.txt"
MAJOR=${VERSION%%.*} MINOR=${VERSION#*.}; MINOR=${MINOR%%.*}
if [ "$MAJOR" = 0 ]; then SOVER=$MAJOR.$MINOR; else SOVER=$MAJOR; fi

step "install into $PREFIX"
quiet install cmake --install "$BUILD" --prefix "$PREFIX"
PC=$(find "$PREFIX" -name gather.pc -path '*/pkgconfig/*' | head -n1)
[ -n "$PC" ] || fail "gather.pc not installed"
LIBDIR=$(dirname "$(dirname "$PC")")
for f in include/gather.h \
         "${LIBDIR#"$PREFIX"/}/libgather.a" \
         "${LIBDIR#"$PREFIX"/}/libgather.so.$VERSION" \
         "${LIBDIR#"$PREFIX"/}/cmake/gather/gatherConfig.cmake" \
         "${LIBDIR#"$PREFIX"/}/cmake/gather/gatherConfigVersion.cmake" \
         "${LIBDIR#"$PREFIX"/}/cmake/gather/gatherTargets.cmake" \
         share/man/man3/gather.3 share/man/man3/gather_futures.3 \
         share/man/man3/gather_submit.3 share/man/man3/gather_future_wait.3 \
         share/man/man3/gather_pool_create.3 share/man/man3/gather_map.3; do
    [ -f "$PREFIX/$f" ] || fail "not installed: $f"
done
ls "$LIBDIR"/cmake/gather/gatherTargets-*.cmake >/dev/null 2>&1 \
    || fail "not installed: gatherTargets-<config>.cmake"
[ "$(readlink "$LIBDIR/libgather.so")" = "libgather.so.$SOVER" ] \
    || fail "libgather.so is not a link to libgather.so.$SOVER"
[ "$(readlink "$LIBDIR/libgather.so.$SOVER")" = "libgather.so.$VERSION" ] \
    || fail "libgather.so.$SOVER is not a link to libgather.so.$VERSION"
if command -v readelf >/dev/null 2>&1; then
    has "SONAME.*\\[libgather\\.so\\.$SOVER\\]" "$(readelf -d "$LIBDIR/libgather.so.$VERSION")" \
        || fail "SONAME is not libgather.so.$SOVER"
    quiet abi cmake -DLIB="$LIBDIR/libgather.so.$VERSION" \
        -DSYMBOLS=tests/abi/gather.symbols -P tests/check_abi.cmake
fi
if command -v nm >/dev/null 2>&1; then
    quiet exports cmake -DLIB="$LIBDIR/libgather.so.$VERSION" -P tests/check_exports.cmake
fi
if command -v groff >/dev/null 2>&1; then
    for m in docs/man/*.3; do
        warn=$(cd docs/man && groff -man -Tutf8 -ww -z "${m##*/}" 2>&1) \
            || fail "groff failed on $m: $warn"
        [ -z "$warn" ] || fail "groff warns on $m: $warn"
    done
fi
if command -v man >/dev/null 2>&1; then # the .so page leads to the full one
    has '^GATHER_FUTURES(3)' "$(MANPATH="$PREFIX/share/man" MANWIDTH=80 man 3 gather_map 2>/dev/null)" \
        || fail "man 3 gather_map does not show gather_futures(3)"
fi

step "find_package version policy"
mkdir -p "$TMP/ver"
cat >"$TMP/ver/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(gather_version_check LANGUAGES C)
foreach(v @SOVER@ @VERSION@)
  find_package(gather ${v} CONFIG QUIET)
  if(NOT gather_FOUND)
    message(FATAL_ERROR "find_package(gather ${v}) did not find ${gather_CONSIDERED_VERSIONS}")
  endif()
  unset(gather_DIR CACHE)
endforeach()
foreach(v @OTHERS@)
  find_package(gather ${v} CONFIG QUIET)
  if(gather_FOUND)
    message(FATAL_ERROR "find_package(gather ${v}) accepted ${gather_VERSION}")
  endif()
  unset(gather_DIR CACHE)
endforeach()
CMAKE
# Accepted: this minor (x.y and x.y.z); refused: other minors, a later patch, 1.0.
others="0.0 0.$((MINOR + 1)) 1.0 $MAJOR.$MINOR.$((${VERSION##*.} + 1))"
[ "$MINOR" -gt 0 ] && others="$others 0.$((MINOR - 1))"
sed -i "s/@SOVER@/$MAJOR.$MINOR/; s/@VERSION@/$VERSION/; s/@OTHERS@/$others/" "$TMP/ver/CMakeLists.txt"
quiet version cmake -S "$TMP/ver" -B "$TMP/ver/build" -DCMAKE_PREFIX_PATH="$PREFIX"

# First with the language the consumer picks itself (C++ when CMake finds a
# C++ compiler, else C), then forced to C when that was C++.
LANGS=auto
[ "$CXX_FOUND" = 1 ] && LANGS="auto C"
for lang in $LANGS; do
    b="$TMP/cmake-$lang"
    quiet "cmake-$lang-configure" cmake -S tests/consumer/cmake -B "$b" \
        -DCMAKE_PREFIX_PATH="$PREFIX" -DCONSUMER_LANG="${lang#auto}" \
        -DGATHER_WANT="$MAJOR.$MINOR"
    step "CMake consumer, find_package ($(grep -o 'main\.cp*' "$TMP/cmake-$lang-configure.log"))"
    if [ "$lang" = auto ] && [ "$CXX_FOUND" = 1 ]; then
        has 'consumer: main.cpp' "$(cat "$TMP/cmake-$lang-configure.log")" \
            || fail "a C++ compiler is installed but the consumer was built in C"
    fi
    quiet "cmake-$lang-build" cmake --build "$b"
    run shared env LD_LIBRARY_PATH="$LIBDIR" "$b/app"
    run static "$b/app_static"
    if command -v readelf >/dev/null 2>&1; then
        has "NEEDED.*libgather\\.so\\.$SOVER\\]" "$(readelf -d "$b/app")" \
            || fail "app does not link libgather.so.$SOVER"
        if has 'NEEDED.*libgather' "$(readelf -d "$b/app_static")"; then
            fail "app_static links libgather dynamically"
        fi
    fi
done
[ "$CXX_FOUND" = 1 ] || echo "consumer: no C++ compiler; the CMake consumer was built in C only"

step "static only (BUILD_SHARED_LIBS=OFF), installed: find_package"
quiet configure-static cmake -S . -B "$BUILD-static" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DGATHER_BUILD_TESTS=OFF -DGATHER_BUILD_EXAMPLES=OFF -DGATHER_BENCH=OFF \
    -DGATHER_SANITIZE= -DBUILD_SHARED_LIBS=OFF
quiet build-static cmake --build "$BUILD-static" -j2
quiet install-static cmake --install "$BUILD-static" --prefix "$TMP/prefix-static"
if [ -n "$(find "$TMP/prefix-static" -name 'libgather.so*')" ]; then
    fail "BUILD_SHARED_LIBS=OFF installed a shared library"
fi
b="$TMP/cmake-static"
quiet cmake-static-configure cmake -S tests/consumer/cmake -B "$b" \
    -DCMAKE_PREFIX_PATH="$TMP/prefix-static" -DGATHER_WANT="$MAJOR.$MINOR"
quiet cmake-static-build cmake --build "$b"
run static "$b/app"
run static "$b/app_static"
if has 'NEEDED.*libgather' "$(readelf -d "$b/app")"; then
    fail "gather::gather of a static build links libgather dynamically"
fi

# sub_consumer NAME KIND CMAKE-ARGS...: the consumer project with gather built
# inside it (add_subdirectory or FetchContent, as the arguments say), built,
# run, installed into $TMP/NAME-prefix; the installed app must run with no
# environment help. KIND: static (ldd shows no libgather, nothing of gather
# installed), runtime (the shared library alone installed, and ldd resolves
# it there through the app's RPATH) or full (runtime, and gather's header,
# CMake package and gather.pc installed too).
sub_consumer() {
    local name=$1 kind=$2 b="$TMP/$1" p="$TMP/$1-prefix" deps others
    shift 2
    quiet "$name-configure" cmake -S tests/consumer/cmake -B "$b" \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
    quiet "$name-build" cmake --build "$b" -j2
    run built "$b/app"
    quiet "$name-install" cmake --install "$b" --prefix "$p"
    [ -x "$p/bin/app" ] || fail "$name: the consumer did not install bin/app"
    deps=$(ldd "$p/bin/app")
    others=$(cd "$p" && find . ! -type d ! -path ./bin/app | sort)
    case $kind in
    static)
        if has libgather "$deps"; then
            echo "$deps" >&2; fail "$name: the installed app loads libgather"
        fi
        [ -z "$others" ] || { echo "$others" >&2; fail "$name: gather installed files with the parent"; }
        ;;
    runtime|full)
        has "libgather\.so\.$SOVER => $p/" "$deps" \
            || { echo "$deps" >&2; fail "$name: ldd does not find libgather.so.$SOVER in $p"; }
        has "/libgather\.so\.$VERSION\$" "$others" || fail "$name: libgather.so.$VERSION not installed"
        if [ "$kind" = runtime ]; then
            if has 'gather\.h$\|libgather\.so$\|gather\.pc$\|cmake/gather' "$others"; then
                echo "$others" >&2; fail "$name: development files installed without GATHER_INSTALL"
            fi
        else
            for f in 'include/gather\.h$' 'libgather\.so$' 'pkgconfig/gather\.pc$' \
                     'cmake/gather/gatherConfig\.cmake$'; do
                has "$f" "$others" || fail "$name: GATHER_INSTALL=ON did not install $f"
            done
        fi
        ;;
    esac
    run installed "$p/bin/app"
}

step "add_subdirectory, installed with the app: static (BUILD_SHARED_LIBS unset)"
sub_consumer subdir static -DGATHER_SOURCE_DIR="$SRC"
step "add_subdirectory, installed with the app: BUILD_SHARED_LIBS=ON"
sub_consumer subdir-shared runtime -DGATHER_SOURCE_DIR="$SRC" -DBUILD_SHARED_LIBS=ON
step "add_subdirectory, installed with the app: BUILD_SHARED_LIBS=ON GATHER_INSTALL=ON"
sub_consumer subdir-install full -DGATHER_SOURCE_DIR="$SRC" -DBUILD_SHARED_LIBS=ON \
    -DGATHER_INSTALL=ON
if command -v git >/dev/null 2>&1 && git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
    # A repository of this tree as it is (tracked and untracked files, not
    # ignored ones; uncommitted changes included), branch main: what the
    # README's FetchContent snippet fetches.
    step "FetchContent (GIT_TAG main) from a repository of this tree, installed with the app"
    up="$TMP/upstream"
    mkdir -p "$up"
    git -C "$SRC" ls-files -z -co --exclude-standard \
        | (cd "$SRC" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) \
        | tar -C "$SRC" --null -T - -cf - | tar -C "$up" -xf -
    quiet upstream sh -c "cd '$up' && git init -q -b main && git add -A &&
        git -c user.name=ci -c user.email=ci@localhost commit -q -m snapshot"
    sub_consumer fetch runtime -DGATHER_GIT_REPOSITORY="file://$up" -DBUILD_SHARED_LIBS=ON
else
    echo "consumer: not a git checkout, FetchContent not tested"
fi

export PKG_CONFIG_PATH="$LIBDIR/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
[ "$(pkg-config --modversion gather)" = "$VERSION" ] || fail "pkg-config --modversion gather"
pc_consumer() { # OUTDIR: builds and runs the pkg-config consumer, shared and static
    local out=$1 lib libs
    mkdir -p "$out"
    # shellcheck disable=SC2046 # word splitting of pkg-config's output is wanted
    quiet pc-shared "$CC" -std=c11 -Wall -Wextra -Wpedantic -Werror \
        -o "$out/app" tests/consumer/pkgconfig/main.c $(pkg-config --cflags --libs gather)
    lib=$(pkg-config --variable=libdir gather)
    run shared env LD_LIBRARY_PATH="$lib" "$out/app"
    # Static: the flags of pkg-config --static, with libgather.a named
    # explicitly (-lgather would pick libgather.so, which sits beside it).
    libs=$(pkg-config --static --libs gather)
    libs=${libs//-lgather/$lib/libgather.a}
    # shellcheck disable=SC2046,SC2086
    quiet pc-static "$CC" -std=c11 -Wall -Wextra -Wpedantic -Werror \
        -o "$out/app_static" tests/consumer/pkgconfig/main.c \
        $(pkg-config --static --cflags gather) $libs
    run static "$out/app_static"
    if command -v readelf >/dev/null 2>&1 \
       && has 'NEEDED.*libgather' "$(readelf -d "$out/app_static")"; then
        fail "the static pkg-config consumer links libgather dynamically"
    fi
}
step "pkg-config consumer: $CC main.c \$(pkg-config --cflags --libs gather), and --static"
pc_consumer "$TMP/pc"

step "passed"
