#!/bin/sh
# SPDX-License-Identifier: MIT
# check_layers.sh NM OBJECT... - the files of lib/ call each other without
# cycles, except inside the task/pool group (a task block knows its pool and
# the pool runs tasks: one concept, split into files for size).
#
# Each object is one lib/*.c compiled alone. A file depends on another when
# it uses a symbol the other defines (nm). The group's files are merged into
# one node, kinds.c (the table that points at every kind's operations:
# data, so that future.c needs no kind) is left out, and tsort looks for a
# loop in what remains. Prints the edges, and the loop when there is one.
set -eu
NM=$1
shift
GROUP="future pool worker inject blocking default_pool"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

node() {
    n=$(basename "$1")
    n=${n%.o}
    n=${n%.c}
    for g in $GROUP; do
        [ "$n" = "$g" ] && { echo "task+pool"; return; }
    done
    echo "$n"
}

for o in "$@"; do
    n=$(node "$o")
    [ "$n" = kinds ] && continue
    "$NM" -g --defined-only "$o" | awk -v n="$n" 'NF == 3 { print $3, n }' >> "$tmp/defs"
    "$NM" -u "$o" | awk -v n="$n" '{ print $NF, n }' >> "$tmp/uses"
done
sort -u "$tmp/defs" -o "$tmp/defs"
sort -u "$tmp/uses" -o "$tmp/uses"
# symbol user, symbol definer -> "user definer" for every symbol of lib/.
join "$tmp/uses" "$tmp/defs" | awk '$2 != $3 { print $2, $3 }' | sort -u > "$tmp/edges"
echo "lib/ file dependencies (user -> definer):"
sed 's/ / -> /' "$tmp/edges" | sed 's/^/  /'
if ! tsort "$tmp/edges" > /dev/null 2> "$tmp/loop"; then
    echo "check_layers: a cycle between files of lib/ outside the task/pool group:" >&2
    cat "$tmp/loop" >&2
    exit 1
fi
echo "check_layers: no cycle outside the task/pool group"
