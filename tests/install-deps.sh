#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs what the test suite needs when it is missing: the Check framework
# and pkg-config (to find it). Uses apt-get as root or through sudo; elsewhere
# it names the packages to install and fails.
set -e
if pkg-config --exists check 2>/dev/null; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        SUDO=
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "gather: the tests need Check; as root run: apt-get install check pkg-config" >&2
        exit 1
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq check pkg-config >/dev/null
    exit 0
fi
echo "gather: the tests need the Check unit-test framework and pkg-config." >&2
echo "  Debian/Ubuntu: check pkg-config   Fedora: check-devel pkgconf   macOS (brew): check pkg-config" >&2
exit 1
