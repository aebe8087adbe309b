/* SPDX-License-Identifier: MIT */
/*
 * then.pml - spin model of a continuation's life (then.c): the link that
 * waits for `prev`, its cancel, the pool that refuses or runs it, and the
 * pool's memory held for it. It checks that fn runs at most once and never
 * after a cancel that answered true, that the link completes exactly once,
 * that its reference to prev is given back exactly once, that the link and
 * the pool are each freed exactly once and never touched after, and (ltl)
 * that every thread finishes.
 * Checked by tests/models/run_spin.sh (CTest: model_then).
 *
 * What mirrors what:
 *   proctype prev_completer  prev completes; its listener is then.c's
 *                        on_prev_done: CLAIMED (a canceller won) -> wait
 *                        for DONE, drop the queue's reference; else queue
 *                        the link (gather__pool_queue -> inject_push, which
 *                        refuses under inject_lock once `stopping`); refused
 *                        -> claim (gather__future_try_claim) and complete
 *                        with ESHUTDOWN counting a cancel, or, when a
 *                        canceller claimed first, wait for its DONE and drop
 *                        the reference; then gather__pool_unhold
 *   proctype user        gather_future_cancel on the link, or not (either),
 *                        then gather_future_release of its reference
 *                        (future.c: gather__task_cancel: CAS pending ->
 *                        CLAIMED|CANCEL_REQ, count the cancel on the pool,
 *                        complete; running -> flag only)
 *   proctype worker      the pool's one worker (worker.c:run_task): pops
 *                        the queued link, claims it (fetch_or); claimed
 *                        already -> discard_cancelled (wait DONE, drop the
 *                        reference); else fn (then.c:run_link: fn, release
 *                        prev), complete, drop the queue's reference
 *   proctype destroyer   gather_pool_destroy: shutdown sets `stopping`
 *                        (under inject_lock, one step with the queue), waits
 *                        for the drain (queue empty, worker between tasks),
 *                        then gives up the owner's hold (pool.c)
 *   inline unhold        pool.c:gather__pool_unhold: the last hold frees
 *   inline link_release  gather_future_release of the link; its last
 *                        reference runs link_destroy, which releases prev if
 *                        fn never ran
 *   proctype checker     once all have finished: the outcomes, no leak
 *
 * Abstraction, and why it is sound:
 *  - Sequentially consistent memory: every transition of the link is an RMW
 *    on its state word (future.c), the queue and `stopping` are under
 *    inject_lock, and `holds` is an acq_rel RMW (pool.c).
 *  - A CAS loop is one atomic step (its retries change nothing).
 *  - The relaxed CLAIMED read in on_prev_done is a separate step from the
 *    queueing that follows: a cancel between the two is the race the
 *    worker's claim settles, and it is modelled.
 *  - prev's own life is left out (future.pml): its completion is one step,
 *    and the link's reference to it is a counter of releases.
 *
 * Size: one link, one pool: 2,833 states (safety), under a second.
 *
 * BUGGY_NOCLAIM: the refused link is completed without the claim; with a
 * cancel racing it spin finds a second completion.
 * BUGGY_EARLY_UNHOLD: on_prev_done gives up its hold before it queues the
 * link; spin finds the pool freed under the push.
 * BUGGY_NO_DISCARD_WAIT: on_prev_done drops the cancelled link without
 * waiting for the canceller's DONE; spin finds the canceller counting on a
 * freed pool.
 */

/* the link (next) */
bool claimed, done, cancel_req;
byte refs = 2;        /* the user's and the queue's */
bool link_freed;
bool ran;             /* fn ran (run_link) */

/* prev, the pool */
bool prev_done;
byte prev_releases;   /* the link's reference to prev, given back */
bool queued, busy, stopping;
byte holds = 2;       /* the owner's and the link's */
bool pool_freed;

/* ghosts */
byte completions;
bool cancel_true;     /* gather_future_cancel answered true */
byte finished;

ltl all_finish { <> (finished == 4) }

inline unhold()
{
    atomic {
        assert(!pool_freed);
        holds--;
        if
        :: holds == 0 -> pool_freed = true
        :: else -> skip
        fi
    }
}

inline link_release()
{
    atomic {
        assert(!link_freed && refs > 0);
        refs--;
        if
        :: refs == 0 ->
            link_freed = true;
            if
            :: !ran -> prev_releases++ /* link_destroy: prev unrun */
            :: else -> skip
            fi
        :: else -> skip
        fi
    }
}

/* Completes the link (the caller owns the claim). */
inline complete()
{
    atomic {
        assert(!link_freed && !done);
        done = true;
        completions++
    }
}

proctype prev_completer()
{
    bool won;
    prev_done = true;
#ifdef BUGGY_EARLY_UNHOLD
    unhold();
#endif
    if
    :: claimed -> /* relaxed read: a canceller won */
#ifndef BUGGY_NO_DISCARD_WAIT
        done;
#endif
        link_release()
    :: else ->
        atomic {
            assert(!pool_freed);
            if
            :: !stopping -> queued = true
            :: else -> won = true /* refused: ESHUTDOWN */
            fi
        };
        if
        :: won ->
#ifdef BUGGY_NOCLAIM
            won = true;
#else
            atomic { won = !claimed; claimed = true };
#endif
            if
            :: won ->
                atomic { assert(!pool_freed) }; /* count the cancel */
                complete();
                link_release()
            :: else ->
                done;
                link_release()
            fi
        :: else -> skip
        fi
    fi;
#ifndef BUGGY_EARLY_UNHOLD
    unhold();
#endif
    finished++
}

proctype user()
{
    bool won;
    if
    :: atomic { /* gather__task_cancel: one CAS */
           if
           :: !done && !claimed -> claimed = true; cancel_req = true; won = true
           :: !done && claimed -> cancel_req = true
           :: else -> skip
           fi
       };
       if
       :: won ->
           atomic { assert(!pool_freed) }; /* gather__pool_count_cancel */
           complete();
           cancel_true = true
       :: else -> skip
       fi
    :: skip
    fi;
    link_release();
    finished++
}

proctype worker()
{
    bool was;
    do
    :: atomic { queued -> queued = false; busy = true };
        atomic { assert(!pool_freed); was = claimed; claimed = true };
        if
        :: was -> done /* discard_cancelled */
        :: else ->
            atomic { assert(!link_freed && !cancel_true); ran = true };
            prev_releases++; /* run_link releases prev */
            complete()
        fi;
        link_release();
        busy = false
    :: atomic { stopping && !queued && !busy -> break }
    od;
    finished++
}

proctype destroyer()
{
    atomic { assert(!pool_freed); stopping = true };
    !queued && !busy; /* the drain */
    unhold();
    finished++
}

init
{
    atomic {
        run prev_completer();
        run user();
        run worker();
        run destroyer()
    }
}

active proctype checker()
{
    finished == 4;
    assert(completions == 1);
    assert(prev_releases == 1);
    assert(link_freed && refs == 0);
    assert(pool_freed && holds == 0);
    assert(!(ran && cancel_true))
}
