#!/bin/sh
# SPDX-License-Identifier: MIT
# run_spin.sh - checks one of the spin models of lib/ (lib/*.pml) exhaustively.
#
#   sh tests/models/run_spin.sh [-D NAME[=VALUE]]... [--bug NAME]...
#                               [--bug-live NAME]... MODEL.pml
#
# For the model as written (with the -D flags: a scenario, a size):
#   safety    spin -a, cc -DSAFETY -DNOCLAIM: assertions and invalid end
#             states (deadlocks), exhaustive; must report no error;
#   liveness  cc, pan -a: acceptance cycles against the model's ltl formula;
#             must report no error.
# For each --bug NAME, the model with -DNAME added: the safety run must
# report an error. For each --bug-live NAME: the liveness run with
# assertions ignored (pan -A) must report an acceptance cycle. So a model
# that cannot fail fails here.
#
# Any run that is not exhaustive (search depth or memory limit reached)
# fails. Every run prints states stored, transitions and seconds.
#
# Environment: SPIN (default spin), CC (default cc), SPIN_CFLAGS (default
# -O1: compiles three times faster than -O2 and searches about as fast),
# SPIN_FLAGS (more -D flags for every run, e.g. "-DNW=3"), SPIN_FAIR=1
# (liveness under weak fairness: -DWEAK_FAIRNESS, which makes the models
# use their plain <> formulas, and pan -a -f; several times slower. By
# default the formulas instead assume fairness for the one process whose
# starvation could loop, see sleep.pml), SPIN_MEMLIM (MB, default 4096),
# SPIN_DEPTH (default 100000). The largest run (sleep.pml's liveness) peaks
# at about 0.6 GB; SPIN_CFLAGS="-O1 -DCOLLAPSE" trades time for memory.
# Works in a temporary directory, removed on exit; never in the tree.
set -eu

SPIN=${SPIN:-spin}
CC=${CC:-cc}
SPIN_FLAGS=${SPIN_FLAGS:-}
SPIN_FAIR=${SPIN_FAIR:-0}
SPIN_MEMLIM=${SPIN_MEMLIM:-4096}
SPIN_DEPTH=${SPIN_DEPTH:-100000}
SPIN_CFLAGS=${SPIN_CFLAGS:--O1}

usage() {
    echo "usage: $0 [-D NAME[=VALUE]]... [--bug NAME]... [--bug-live NAME]... MODEL.pml" >&2
    exit 2
}

defines=""
bugs=""
bugs_live=""
model=""
while [ $# -gt 0 ]; do
    case $1 in
    -D) [ $# -ge 2 ] || usage; defines="$defines -D$2"; shift 2 ;;
    -D*) defines="$defines $1"; shift ;;
    --bug) [ $# -ge 2 ] || usage; bugs="$bugs $2"; shift 2 ;;
    --bug-live) [ $# -ge 2 ] || usage; bugs_live="$bugs_live $2"; shift 2 ;;
    -*) usage ;;
    *) [ -z "$model" ] || usage; model=$1; shift ;;
    esac
done
[ -n "$model" ] || usage
[ -f "$model" ] || { echo "run_spin: no such model: $model" >&2; exit 2; }
command -v "$SPIN" >/dev/null 2>&1 || { echo "run_spin: spin not found ($SPIN)" >&2; exit 2; }
defines="$defines $SPIN_FLAGS"

name=$(basename "$model" .pml)
work=$(mktemp -d "${TMPDIR:-/tmp}/gather-spin.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
cp "$model" "$work/$name.pml"
cd "$work"

# Prints one summary line of pan's output: states, transitions, seconds.
summary() { # label, pan output file
    states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$2" | head -n 1)
    visited=$(sed -n 's/.*states, stored (\([0-9.e+]*\) visited).*/\1/p' "$2" | head -n 1)
    trans=$(sed -n 's/^ *\([0-9.e+]*\) transitions.*/\1/p' "$2" | head -n 1)
    secs=$(sed -n 's/^pan: elapsed time \([0-9.e+]*\) seconds.*/\1/p' "$2" | head -n 1)
    errs=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$2" | head -n 1)
    first=$(grep -m 1 -E '^pan:[0-9]+:' "$2" || true)
    echo "$name$defines $1: ${states:-?} states stored${visited:+ ($visited visited)}, ${trans:-?} transitions, ${secs:-?} s, errors: ${errs:-?}${first:+ ($first)}"
}

# Runs spin -a and pan for one variant. kind: safety, liveness or
# bug-liveness. Leaves pan's output in pan.out.
run() { # kind, extra -D flags
    rm -f pan pan.* ./*.trail
    flags="$defines $2"
    if [ "$1" = liveness ] && [ "$SPIN_FAIR" = 1 ]; then
        flags="$flags -DWEAK_FAIRNESS"
    fi
    # shellcheck disable=SC2086 # the flags are words on purpose
    "$SPIN" $flags -a "$name.pml" >spin.out 2>&1 || {
        cat spin.out >&2
        echo "run_spin: spin -a failed on $model" >&2
        exit 1
    }
    case $1 in
    safety) cflags="-DSAFETY -DNOCLAIM"; pflags="" ;;
    liveness)
        if [ "$SPIN_FAIR" = 1 ]; then cflags="-DNFAIR=3"; pflags="-a -f"
        else cflags="-DNOFAIR"; pflags="-a"; fi ;;
    bug-liveness) cflags="-DNOFAIR"; pflags="-a -A" ;;
    esac
    # shellcheck disable=SC2086
    "$CC" $SPIN_CFLAGS -w $cflags -DMEMLIM="$SPIN_MEMLIM" -o pan pan.c || {
        echo "run_spin: compiling pan failed" >&2
        exit 1
    }
    # shellcheck disable=SC2086
    ./pan $pflags -m"$SPIN_DEPTH" >pan.out 2>&1 || true
    if grep -q 'max search depth too small\|-DMEMLIM bound\|out of memory' pan.out; then
        cat pan.out >&2
        echo "run_spin: the search of $name was not exhaustive (depth or memory limit)" >&2
        exit 1
    fi
}

# pan's error count; -1 when pan did not get to report one.
errors() {
    e=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out | head -n 1)
    echo "${e:--1}"
}

# An error where none is expected: show the counterexample.
show_trail() {
    cat pan.out >&2
    trail=$name.pml.trail
    if [ -f "$trail" ]; then
        # shellcheck disable=SC2086
        "$SPIN" $flags -t -p -k "$trail" "$name.pml" 2>&1 | tail -n 80 >&2 || true
    fi
}

status=0
run safety ""
summary safety pan.out
if [ "$(errors)" != 0 ]; then show_trail; status=1; fi

run liveness ""
if [ "$SPIN_FAIR" = 1 ]; then summary "liveness (-a -f)" pan.out
else summary "liveness (-a)" pan.out; fi
if [ "$(errors)" != 0 ]; then show_trail; status=1; fi

for bug in $bugs; do
    run safety "-D$bug"
    summary "-D$bug safety" pan.out
    if [ "$(errors)" -le 0 ]; then
        echo "run_spin: $name with -D$bug: spin found no error, but it must" >&2
        status=1
    fi
done

for bug in $bugs_live; do
    run bug-liveness "-D$bug"
    summary "-D$bug liveness (-a -A)" pan.out
    if [ "$(errors)" -le 0 ] || ! grep -q 'acceptance cycle' pan.out; then
        echo "run_spin: $name with -D$bug: spin found no acceptance cycle, but it must" >&2
        status=1
    fi
done

exit $status
