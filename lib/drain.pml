/* SPDX-License-Identifier: MIT */
/*
 * drain.pml - spin model of shutdown, drain and destroy (pool.c) over the
 * sleep registry (sleep.c): destroy frees the pool only after every
 * accepted task ran or was cancelled (subtasks submitted while draining
 * included) and every worker left; nothing touches the pool after the
 * free; destroy always returns. Checked by tests/models/run_spin.sh
 * (CTest: model_drain), in both scenarios below.
 *
 * What mirrors what:
 *   proctype worker      pool.c:worker_main, find_task, pass_wake_on,
 *                        run_task (claim; gather__pool_cancelling: complete
 *                        with ECANCELED; discard_cancelled), idle_wait
 *                        (gather__sleep_enter, exiting, work_visible re-check,
 *                        "all idle and stopping" -> check_drained, park)
 *   QUIESCENT            sleep.c:gather__sleep_quiescent with
 *                        pool.c:work_visible (idle == n and no work visible,
 *                        read under the registry lock: one step)
 *   inline set_drained   pool.c:check_drained after a quiescent answer:
 *                        drained = true under drain_lock
 *   inline shutdown      pool.c:gather_pool_shutdown after the flags:
 *                        counted in shutdown_waiters, stopping under
 *                        inject_lock, gather__sleep_wake_all,
 *                        check_drained, wait for drained, uncounted
 *   proctype destroyer   gather_pool_destroy: shutdown(0), wait for
 *                        shutdown_waiters == 0, stop_threads (exiting,
 *                        wake_all, join), free_pool
 *   proctype submitter   pool.c:gather_submit from a thread outside the
 *                        pool -> inject_push: refused (ESHUTDOWN) under
 *                        inject_lock once stopping, else append and wake
 *                        when the queue was empty, before unlocking
 *   proctype shutdowner  (default scenario) a second user thread calling
 *                        gather_pool_shutdown(pool, 0 or
 *                        GATHER_CANCEL_PENDING) while tasks are submitted,
 *                        run and spawn, and while destroy runs
 *   proctype canceller   (scenario -DCANCEL_RACE) future.c:
 *                        gather_future_cancel on the first task: claims it
 *                        while pending, gather__pool_count_cancel (touches
 *                        the pool), completes it; the worker that pops it
 *                        must wait for that DONE (discard_cancelled)
 *   a PARENT task        submits one CHILD from its worker (own deque,
 *                        accepted while draining) and wakes one sleeper
 *   ltl destroy_returns  destroy returns, assuming only that the holder of
 *                        inject_lock is not starved (see sleep.pml)
 *   assertions           at free_pool: completed == accepted (no task
 *                        dropped) and all workers joined; every pool access
 *                        of the other threads happens before the free.
 *                        Invalid end state: a deadlock, e.g. destroy waiting
 *                        for a drain that is never noticed.
 *
 * Size: NW = 2 workers, NPARENTS = 2 tasks from outside each spawning one
 * child (up to 4 tasks), the destroyer, the submitter, and the shutdowner
 * or the canceller: 2.4 million states (safety) and 4.6 million
 * (liveness) for the shutdowner, 0.7 and 1.3 million for the canceller.
 * Three workers (-DNW=3) are too slow for a unit test: about 9 million
 * states with neither of those two threads, and 62 million for the
 * canceller scenario's safety run (verified once: no error, 2 minutes,
 * 3 GB with -DCOLLAPSE). Two workers give each role of a drain race a
 * thread: the last worker to go idle, a worker running a task that
 * spawns, the thread that shuts down.
 *
 * Abstraction, and why it is sound: as in sleep.pml (sequentially
 * consistent memory given the protocol's fences; a critical section is one
 * atomic step; wake_n's relaxed early test folded into its locked step;
 * linearizable deques; scans as one step; the waker takes any registered
 * parker; spin_for_work left out). Also:
 *  - A load of a flag that is only ever set (stopping, exiting,
 *    cancelling) that reads true is merged with the step after it (Lipton:
 *    such a load moves right, a later store cannot change what it read);
 *    one that reads false is a step of its own, merged at most with
 *    accesses no other thread can see (a task's ghost count).
 *  - The user contract of destroy: no call on the pool may be under way
 *    when destroy starts, except a gather_pool_shutdown that waits in
 *    shutdown_waiters (the C lets such callers leave before freeing). The
 *    destroyer therefore waits until the submitter is done and the
 *    shutdowner is done or counted; the canceller may run at any time,
 *    as futures outlive their pool. Submits and the shutdowner race freely.
 *    With the submitter done, destroy's lock/unlock of inject_lock (which
 *    waits for a refused submit still holding it) waits for nobody and is
 *    left out.
 *    gather_pool_shutdown counts its caller in shutdown_waiters first
 *    thing, so "counted" is "started": with the count placed after the
 *    stopping store, wake_all and drain check (as the C had it before),
 *    spin finds destroy freeing the pool under a shutdown caller.
 *  - completed and accepted are ghost counters. A task is counted done
 *    when its last modelled step runs (a parent: with its spawn); the
 *    free_pool assertion comes after joining every worker, so where the
 *    count falls inside the task does not change what it checks.
 *  - Task bodies are one step; polling gather_cancel_requested is a read
 *    with no effect on the protocol and is left out.
 *
 * BUGGY (spin -DBUGGY -a): the drain check does not re-check the queues
 * (quiescent counts idle workers only): spin finds destroy freeing the
 * pool with a task still queued (assertion completed == accepted).
 * BUGGY_CANCEL (with -DCANCEL_RACE): discard_cancelled does not wait for
 * the canceller's DONE: spin finds the pool freed under the canceller.
 * BUGGY_LAST: the last worker to go idle after stopping does not check for
 * the drain: spin finds destroy waiting forever (an invalid end state; an
 * acceptance cycle in the liveness run).
 */

#ifndef NW
#define NW 2
#endif
#ifndef NPARENTS
#define NPARENTS 2
#endif

#define NONE 0
#define PARENT 1    /* from the injection queue */
#define FIRST 2     /* the first task submitted: the canceller's target */
#define CHILD 3     /* from our own deque */
#define STOLEN 4    /* a child from another worker's deque */
#define NOTHING 5

byte inject_len;      /* pool.c: tasks in the injection queue */
bool inject_locked;   /* pool.c: inject_lock held */
bool first_taken;     /* the first task left the (FIFO) injection queue */
byte deque[NW];
bool stopping;        /* pool.c: stopping */
bool cancelling;      /* pool.c: cancelling (GATHER_CANCEL_PENDING) */
bool exiting;         /* pool.c: exiting */
bool drained;         /* pool.c: drained (drain_lock) */
byte shutdown_waiters;/* pool.c: shutdown_waiters (drain_lock) */
bool freed;           /* free_pool ran */
bool destroyed;       /* gather_pool_destroy returned */

/* sleep.c registry; every parker here is an idle worker: idle == sleepers */
bool registered[NW];
byte sleepers;
bool notified[NW];

/* the first task's future (future.c state word: CLAIMED, DONE) */
bool first_accepted;
bool first_claimed;
bool first_done;

/* ghosts */
byte accepted;        /* tasks the pool took: outside submits + spawns */
byte completed;       /* tasks whose future got DONE */
byte exited;          /* workers that left worker_main */
bool submitter_done;
bool shutdowner_done;

#ifdef WEAK_FAIRNESS /* checked with pan -a -f (run_spin.sh: SPIN_FAIR=1) */
ltl destroy_returns { <> destroyed }
#else
ltl destroy_returns { ([]<> !inject_locked) -> <> destroyed }
#endif

#define VISIBLE (inject_len != 0 || deque[0] != 0 || \
                 (NW > 1 && deque[1] != 0) || (NW > 2 && deque[2] != 0) || \
                 (NW > 3 && deque[3] != 0))

#define STEAL(v) :: NW > v && me != v && deque[v] > 0 -> deque[v]--; got = STOLEN

inline unlink(p)
{
    registered[p] = false;
    sleepers--
}

/* sleep.c:wake_n (wake_one: n = 1; wake_all: n = NW). Locals k, p. */
inline wake_n(n)
{
    atomic {
        k = n;
        do
        :: k > 0 && sleepers > 0 ->
            if
            :: registered[0] -> p = 0
            :: NW > 1 && registered[1] -> p = 1
            :: NW > 2 && registered[2] -> p = 2
            :: NW > 3 && registered[3] -> p = 3
            fi;
            unlink(p);
            notified[p] = true;
            k--
        :: else -> break
        od;
        k = 0;
        p = 0
    }
}

inline sleep_leave(me)
{
    atomic {
        if
        :: registered[me] -> unlink(me)
        :: else -> skip
        fi
    }
}

/* sleep.c:gather__sleep_quiescent(n = NW, work_visible), registry lock */
#ifdef BUGGY
#define QUIESCENT (sleepers == NW)
#else
#define QUIESCENT (sleepers == NW && !VISIBLE)
#endif

/* pool.c:check_drained once quiescent was read into q. */
inline set_drained()
{
    if
    :: q -> atomic { assert(!freed); drained = true; q = false }
    :: else -> skip
    fi
}

/* pool.c:gather_pool_shutdown, by a thread outside the pool (the flags
 * were applied by the caller). Locals k, p, q. */
inline shutdown()
{
    /* First thing: counted in shutdown_waiters under drain_lock, so that a
     * concurrent destroy waits for this caller before freeing the pool. */
    atomic { assert(!freed); shutdown_waiters++ }
    atomic { /* lock inject_lock; stopping = true; unlock */
        !inject_locked -> assert(!freed); stopping = true
    }
    wake_n(NW); /* gather__sleep_wake_all */
    atomic { assert(!freed); q = QUIESCENT } /* check_drained */
    set_drained();
    /* lock drain_lock; wait for drained (cond_wait releases the lock);
     * shutdown_waiters--; broadcast; unlock */
    atomic { drained -> assert(!freed); shutdown_waiters--; q = false }
}

active [NW] proctype worker()
{
    byte me = _pid; /* workers are the first processes: pids 0 .. NW-1 */
    byte got;
    byte k;
    byte p;
    bool q;
    bool was;

top: /* find_task */
    atomic {
        if
        :: deque[me] > 0 -> deque[me]--; got = CHILD
        :: else ->
            if
            :: inject_len > 0 && !inject_locked ->
                inject_len--;
                if
                :: first_accepted && !first_taken -> first_taken = true; got = FIRST
                :: else -> got = PARENT
                fi
            :: else ->
                if
                STEAL(0)
                STEAL(1)
                STEAL(2)
                STEAL(3)
                :: else -> got = NOTHING
                fi
            fi
        fi
    }
    if
    :: got == NOTHING -> got = NONE; goto idle_wait
    :: got == CHILD -> goto run_task
    :: else -> skip
    fi;
    if /* pass_wake_on */
    :: VISIBLE -> wake_n(1)
    :: else -> skip
    fi;

run_task:
    if
    :: got == FIRST -> /* claim: fetch_or CLAIMED */
        atomic { was = first_claimed; first_claimed = true }
        if
        :: was -> /* discard_cancelled: wait for the canceller's DONE */
#ifndef BUGGY_CANCEL
            first_done;
#endif
            atomic { got = NONE; was = false }
            goto top
        :: else -> skip /* ours to run */
        fi
    :: else -> skip
    fi;
    atomic { /* gather__pool_cancelling(p): ECANCELED without running.
              * Else a child's body (one step) runs, and its DONE. */
        if
        :: cancelling || got == CHILD || got == STOLEN ->
            first_done = first_done || got == FIRST;
            completed++;
            got = NONE
        :: else -> skip
        fi
    }
    if
    :: got != NONE -> /* a parent's body submits a subtask; then DONE */
        atomic {
            deque[me]++;
            accepted++;
            first_done = first_done || got == FIRST;
            completed++; /* ghost: counted before the wake, see above */
            got = NONE
        }
        wake_n(1)
    :: else -> skip
    fi;
    goto top;

idle_wait:
    atomic { /* gather__sleep_enter(idle): k = n_idle */
        registered[me] = true;
        sleepers++;
        k = sleepers
    }
    atomic { /* exiting: leave the registry and the loop */
        if
        :: exiting ->
            if
            :: registered[me] -> unlink(me)
            :: else -> skip
            fi;
            k = 0;
            was = true
        :: else -> skip
        fi
    }
    if
    :: was -> was = false; goto leave_loop
    :: else -> skip
    fi;
    if /* work_visible: leave and look */
    :: VISIBLE -> sleep_leave(me); k = 0; goto top
    :: else -> skip
    fi;
#ifndef BUGGY_LAST
    atomic { /* the last to go idle after stopping: check_drained */
        if
        :: k == NW && stopping -> q = QUIESCENT
        :: else -> skip
        fi;
        k = 0
    }
    set_drained();
#else
    k = 0;
#endif
    atomic { notified[me] -> notified[me] = false } /* gather__park */
    sleep_leave(me);
    goto top;

leave_loop:
    exited++
}

/* Outside the pool: gather_submit, one task at a time, until refused. */
active proctype submitter()
{
    byte i;
    bool was_empty;
    bool refused;
    byte k;
    byte p;

    do
    :: i < NPARENTS && !refused ->
            atomic {
                !inject_locked -> inject_locked = true;
                assert(!freed);
                if
                :: stopping -> refused = true
                :: else ->
                    was_empty = (inject_len == 0);
                    inject_len++;
                    accepted++;
#ifdef CANCEL_RACE
                    first_accepted = first_accepted || i == 0;
#endif
                    skip
                fi
            }
            if
            :: !refused && was_empty -> wake_n(1) /* under inject_lock */
            :: else -> skip
            fi;
            atomic { inject_locked = false; was_empty = false; i++ }
    :: else -> break
    od;
    submitter_done = true
}

#ifdef CANCEL_RACE
/* gather_future_cancel on the first task, whenever it likes. */
active proctype canceller()
{
    bool claimed;

end_wait: /* no future to cancel when the submit was refused */
    first_accepted; /* it holds the future once the submit returned it */
    atomic {
        if
        :: !first_done && !first_claimed -> first_claimed = true; claimed = true
        :: else -> skip /* done, or running: only CANCEL_REQ, no pool access */
        fi
    }
    if
    :: claimed ->
        atomic { assert(!freed) }       /* gather__pool_count_cancel */
        atomic { first_done = true; completed++ } /* complete: DONE */
    :: else -> skip
    fi
}

#else
active proctype shutdowner()
{
    byte k;
    byte p;
    bool q;

    if
    :: cancelling = true /* gather_pool_shutdown(pool, GATHER_CANCEL_PENDING) */
    :: skip              /* gather_pool_shutdown(pool, 0) */
    fi;
    shutdown();
    shutdowner_done = true
}
#endif

active proctype destroyer()
{
    byte k;
    byte p;
    bool q;

    /* No call on the pool may be under way unprotected once destroy
     * starts: the submitter has finished, the shutdowner has finished or
     * waits in shutdown (counted in shutdown_waiters). */
    submitter_done;
#ifndef CANCEL_RACE
    shutdowner_done || shutdown_waiters > 0;
#endif
    /* gather_pool_destroy */
    shutdown();
    shutdown_waiters == 0;
    exiting = true; /* stop_threads */
    wake_n(NW);
    exited == NW; /* join */
    atomic { /* free_pool */
        assert(completed == accepted);
        freed = true
    }
    destroyed = true
}
