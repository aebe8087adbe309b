#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the GenMC harnesses of this directory under RC11 and IMM, then the
# mutants (copies of lib/deque.c and lib/sleep.c weakened with sed, in a
# temporary directory) that each harness must catch. Prints one row per
# run and exits non-zero when a harness fails on the real code, a mutant
# is not caught, or a mutation no longer applies to lib/.
#
# usage: tests/genmc/run.sh PATH/TO/genmc [--deep]
#   --deep  also runs the deque with two steal attempts per thief (minutes)
#
# It does not build GenMC; see README.md here.
set -u

if [ $# -lt 1 ] || [ ! -x "$1" ]; then
    echo "usage: $0 PATH/TO/genmc [--deep]" >&2
    exit 2
fi
GENMC=$1
DEEP=${2:-}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/genmc
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gather-genmc.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FAILED=0

printf '%-34s %-27s %-5s %-7s %10s %8s  %s\n' \
    harness config model expect executions time result
printf '%.0s-' {1..130}
echo

# run NAME CONFIG MODEL EXPECT MUTANT_DIR HARNESS [-DX=Y ...]
#   EXPECT: ok (no error), caught (an error), safe (a mutant that is
#   harmless for this harness, see README.md: no error expected).
run() {
    local name=$1 config=$2 model=$3 expect=$4 mutdir=$5 harness=$6
    shift 6
    local inc=()
    [ -n "$mutdir" ] && inc+=("-I$mutdir")
    inc+=("-I$ROOT" "-I$ROOT/include" "-I$ROOT/lib")
    local out
    out=$("$GENMC" "--$model" --disable-estimation -- "${inc[@]}" "$@" \
          "$HERE/$harness" 2>&1)
    local execs time result
    execs=$(sed -n 's/^Number of complete executions explored: //p' <<<"$out")
    time=$(sed -n 's/^Total wall-clock time: //p' <<<"$out")
    if grep -q '^No errors were detected' <<<"$out"; then
        result="no error"
    elif grep -q '^Error: ' <<<"$out"; then
        result=$(grep -m1 '^Error: ' <<<"$out" | sed 's/^Error: //')
        local detail
        detail=$(grep -m1 '^Assertion violation: ' <<<"$out" || true)
        [ -n "$detail" ] && result="$result $detail"
    else
        result="DID NOT RUN"
        echo "$out" | tail -20 >&2
    fi
    local verdict=PASS
    case $expect in
    ok | safe) [ "$result" = "no error" ] || verdict=FAIL ;;
    caught) case $result in "no error" | "DID NOT RUN") verdict=FAIL ;; esac ;;
    esac
    [ $verdict = FAIL ] && FAILED=1
    printf '%-34s %-27s %-5s %-7s %10s %8s  %s: %s\n' "$name" "$config" \
        "$model" "$expect" "${execs:--}" "${time:--}" "$verdict" "$result"
}

# mutate NAME FILE SED_SCRIPT: $WORK/NAME/lib/FILE is lib/FILE edited by
# sed; fails when the edit no longer changes anything.
mutate() {
    local name=$1 file=$2 script=$3
    mkdir -p "$WORK/$name/lib"
    sed -e "$script" "$ROOT/lib/$file" >"$WORK/$name/lib/$file"
    if cmp -s "$ROOT/lib/$file" "$WORK/$name/lib/$file"; then
        echo "mutant $name: the edit does not apply to lib/$file any more" >&2
        FAILED=1
        return 1
    fi
}

MODELS="rc11 imm"

# ---- the real code ---------------------------------------------------------
DEQUE_CONFIGS=("ITEMS=3 STEAL_ATTEMPTS=1" "ITEMS=4 STEAL_ATTEMPTS=1")
[ "$DEEP" = --deep ] && DEQUE_CONFIGS+=("ITEMS=3 STEAL_ATTEMPTS=2")
WAKEUP_CONFIGS=()
for mode in INJECT SPAWN EXIT; do
    for sleepers in 1 2; do
        WAKEUP_CONFIGS+=("MODE=MODE_$mode SLEEPERS=$sleepers")
    done
done

defs() { for d in $1; do printf -- '-D%s\n' "$d"; done; }

for model in $MODELS; do
    for c in "${DEQUE_CONFIGS[@]}"; do
        mapfile -t d < <(defs "$c")
        run deque "${c// /,}" "$model" ok "" deque.c "${d[@]}"
    done
    for c in "${WAKEUP_CONFIGS[@]}"; do
        mapfile -t d < <(defs "$c")
        run wakeup "${c// /,}" "$model" ok "" wakeup.c "${d[@]}"
    done
done

# ---- deque mutants ---------------------------------------------------------
POP='/^void \*gather__deque_pop_owner/,/^}/'
STEAL='/^int gather__deque_steal/,/^}/'
deque_mutant() { # NAME SED_SCRIPT
    mutate "$1" deque.c "$2" || return
    for model in $MODELS; do
        for items in 3 4; do
            run "deque:$1" "ITEMS=$items" "$model" caught "$WORK/$1" deque.c \
                "-DITEMS=$items" -DSTEAL_ATTEMPTS=1
        done
    done
}
# (a) the grown ring published relaxed instead of release
deque_mutant a_grow_publish_relaxed \
    's/store_explicit(&d->buf, n, memory_order_release)/store_explicit(\&d->buf, n, memory_order_relaxed)/'
# (b) pop's store-load ordering weakened, and steal's loads
deque_mutant b1_pop_both_relaxed \
    "$POP"' { s/(&d->bottom, b, memory_order_seq_cst)/(\&d->bottom, b, memory_order_relaxed)/; s/(&d->top, memory_order_seq_cst)/(\&d->top, memory_order_relaxed)/; }'
deque_mutant b2_pop_release_acquire \
    "$POP"' { s/(&d->bottom, b, memory_order_seq_cst)/(\&d->bottom, b, memory_order_release)/; s/(&d->top, memory_order_seq_cst)/(\&d->top, memory_order_acquire)/; }'
deque_mutant b3_pop_store_release \
    "$POP"' s/(&d->bottom, b, memory_order_seq_cst)/(\&d->bottom, b, memory_order_release)/'
deque_mutant b4_pop_load_acquire \
    "$POP"' s/(&d->top, memory_order_seq_cst)/(\&d->top, memory_order_acquire)/'
deque_mutant b5_steal_top_acquire \
    "$STEAL"' s/t = atomic_load_explicit(&d->top, memory_order_seq_cst)/t = atomic_load_explicit(\&d->top, memory_order_acquire)/'
deque_mutant b6_steal_bottom_acquire \
    "$STEAL"' s/b = atomic_load_explicit(&d->bottom, memory_order_seq_cst)/b = atomic_load_explicit(\&d->bottom, memory_order_acquire)/'
# (c) push publishes bottom relaxed instead of release
deque_mutant c_push_bottom_relaxed \
    's/(&d->bottom, b + 1, memory_order_release)/(\&d->bottom, b + 1, memory_order_relaxed)/'
# (d) the old ring freed at growth instead of retired
deque_mutant d_free_at_growth \
    's/^    n->retired = old;/    n->retired = NULL; gather__free(old);/'

# ---- sleep mutants ---------------------------------------------------------
sleep_mutant() { # NAME EXPECT_TASK EXPECT_EXIT SED_SCRIPT
    mutate "$1" sleep.c "$4" || return
    for model in $MODELS; do
        run "wakeup:$1" MODE=MODE_INJECT "$model" "$2" "$WORK/$1" wakeup.c -DMODE=MODE_INJECT
        run "wakeup:$1" MODE=MODE_SPAWN "$model" "$2" "$WORK/$1" wakeup.c -DMODE=MODE_SPAWN
        run "wakeup:$1" MODE=MODE_EXIT "$model" "$3" "$WORK/$1" wakeup.c -DMODE=MODE_EXIT
    done
}
# (e1) the waker's fence (light_barrier) dropped
sleep_mutant e1_waker_fence_dropped caught caught \
    '/^static inline void light_barrier/,/^}/ s/gather__fence_seq_cst();/(void)0;/'
# (e2) the sleeper's fence (heavy_barrier) dropped: the re-check of the
# queues is made of seq_cst loads after a seq_cst RMW, which order it by
# themselves; the acquire load of `exiting` is not.
sleep_mutant e2_sleeper_fence_dropped safe caught \
    '/^static void heavy_barrier/,/^}/ s/gather__fence_seq_cst();/(void)0;/'
# (e3) the sleeper's fence dropped and its registration relaxed
sleep_mutant e3_sleeper_fence_and_rmw_weakened caught caught \
    '/^static void heavy_barrier/,/^}/ s/gather__fence_seq_cst();/(void)0;/
     s/fetch_add_explicit(&s->sleepers, 1, memory_order_seq_cst)/fetch_add_explicit(\&s->sleepers, 1, memory_order_relaxed)/'

echo
if [ $FAILED -ne 0 ]; then
    echo "genmc: FAILED"
    exit 1
fi
echo "genmc: all harnesses pass on lib/, every mutant behaves as expected"
