/* SPDX-License-Identifier: MIT */
/*
 * sleep.pml - spin model of the worker sleep/wake protocol (sleep.c and
 * the worker loop and submit paths of pool.c): no lost wake-up.
 * Checked by tests/models/run_spin.sh (CTest: model_sleep).
 *
 * What mirrors what:
 *   proctype worker      pool.c:worker_main, gather__worker_help, run_task
 *     take step          pool.c:find_task: gather__deque_pop_owner, then
 *                        inject_take (relaxed length test + trylock), then
 *                        steal_any
 *     after a take from  pool.c:pass_wake_on (the wake-up chain): work
 *     the queue or steal still visible -> gather__sleep_wake_one
 *     PARENT task        pool.c:gather_submit from a worker (push on its own
 *                        deque) then gather__sleep_wake_one
 *     idle_wait:         pool.c:idle_wait
 *       enter            sleep.c:gather__sleep_enter (sleepers++, then
 *                        heavy_barrier)
 *       re-check         pool.c:work_visible, then sleep.c:gather__sleep_leave
 *       park             sleep.c:gather__park (consumes the token)
 *       leave            sleep.c:gather__sleep_leave / unlink_parker
 *   inline wake_n        sleep.c:wake_n (wake_one: n = 1; light_barrier, then
 *                        unlink and gather__unpark up to n parkers under the
 *                        registry lock)
 *   proctype submitter   pool.c:gather_submit (thread outside the pool) ->
 *                        inject_push: append under inject_lock, wake only
 *                        when the queue was empty, and wake before unlocking
 *   proctype watchdog    no deadlock with work pending: when nothing can
 *                        move (timeout), every task has run
 *   ltl all_run          no lost wake-up: every submitted task eventually
 *                        runs, on every run where the holder of inject_lock
 *                        is not starved (see "Fairness" below)
 *
 * Size: NW = 4 workers; NPARENTS = 2 tasks submitted from outside, one at a
 * time, each of which spawns one
 * CHILD on the deque of the worker that runs it: 4 tasks. Override with
 * spin -DNW=3 -DNPARENTS=1 etc. (NW <= 4). About 3.9 million states for
 * the safety run, 5.3 million for the liveness run (tests/models).
 *
 * Fairness: the only way this model can loop without running a task is a
 * worker whose trylock in inject_take keeps failing while the submitter
 * holds inject_lock and is never scheduled (it re-checks, sees the queue,
 * leaves the registry, looks again). Weak fairness rules that out, and so
 * does the formula's premise []<> !inject_locked (the holder's remaining
 * steps never block), which is cheaper to check than pan -f. Every weakly
 * fair run satisfies the premise, so a fair violation would be reported;
 * pan -a -f on the plain <> formula (-DWEAK_FAIRNESS) agrees: SPIN_FAIR=1
 * in run_spin.sh.
 *
 * Abstraction, and why it is sound:
 *  - Sequentially consistent memory. The two barriers of the protocol
 *    (heavy_barrier after sleepers++, light_barrier before the sleepers
 *    load) are what give the store-load pairs "push task ; load sleepers"
 *    and "sleepers++ ; re-check queues" their SC outcome (C11 two-fence
 *    rule, docs/design.md "Sleeping and waking"). The model checks the
 *    logic built on that: who re-checks what, when a wake-up is issued or
 *    skipped (was_empty, the pass-on chain), the parker token.
 *  - A critical section is one atomic step (Lipton: lock acquire moves
 *    right, release moves left, accesses to data under the lock commute).
 *    inject_push holds inject_lock across its wake, as the C does, so a
 *    worker's trylock fails meanwhile; that is modelled.
 *  - wake_n's relaxed `sleepers == 0` early return is folded into its
 *    locked step: reading 0 there and returning is the same as taking the
 *    lock at that instant and finding the list empty, and reading non-zero
 *    then locking is the same as locking at the later instant.
 *    pass_wake_on's relaxed `sleepers != 0` hint is dropped: without it the
 *    model may also try a wake that the hint would have skipped, which
 *    then finds the list empty (a superset of behaviours).
 *  - The Chase-Lev deque is linearizable (deque.c, tests/check_deque.c), so
 *    push, pop and steal are atomic steps on a count; steal's EAGAIN only
 *    makes steal_any rescan (stuttering).
 *  - Scans (find_task's, work_visible's) are one step each, which the C's
 *    load-by-load scans are not. What a load-by-load scan adds is missing
 *    a task pushed to a queue it had already read (tasks never move from
 *    queue to queue). In the re-check, such a push comes after the
 *    registration, so its pusher's sleepers load, after the push, sees the
 *    registration: the case of a push after an atomic re-check, which the
 *    model covers step by step. In find_task, a miss only sends the worker
 *    to idle_wait, whose re-check comes next. (This step is argued here,
 *    not checked by spin.)
 *  - The waker takes ANY registered parker, not only the list's head: a
 *    superset of the C's choice. Tasks waiting inside tasks
 *    (wait.c:helping_sleep parks a waitset's parker in this registry, at
 *    the tail) are not modelled.
 *  - A task body is one step. `done` is a ghost counter: a child counts
 *    when a worker takes it, a parent with its spawn (a worker that took a
 *    task runs it without blocking, so this only moves the count earlier
 *    on a path that reaches it anyway). spin_for_work is left out: it only
 *    reads and goes back to the top of the loop, as idle_wait's re-check
 *    does. Shutdown and exit are in drain.pml.
 *
 * BUGGY (spin -DBUGGY -a): idle_wait parks without re-checking the queues
 * after registering. spin finds the lost wake-up: in the safety run the
 * watchdog's assertion (every worker parked, a task queued), in the
 * liveness run an acceptance cycle.
 */

#ifndef NW
#define NW 4
#endif
#ifndef NPARENTS
#define NPARENTS 2
#endif
#define NTASKS (2 * NPARENTS)

/* What a worker took (local `got`). */
#define NONE 0
#define PARENT 1     /* from the injection queue */
#define STOLEN 2     /* a child, from another worker's deque */
#define NOTHING 3    /* find_task found nothing: go idle */

byte inject_len;     /* pool.c: tasks in the injection queue */
bool inject_locked;  /* pool.c: inject_lock is held */
byte deque[NW];      /* tasks on each worker's deque */
byte done;           /* tasks that have run */

/* sleep.c: the registry (its lock is implied by the atomic steps). All
 * registered parkers are idle workers here, so `idle` equals `sleepers`. */
bool registered[NW]; /* gather__parker.registered */
byte sleepers;       /* gather__sleep.sleepers and .idle */
bool notified[NW];   /* gather__parker.notified: the token */

#ifdef WEAK_FAIRNESS /* checked with pan -a -f (run_spin.sh: SPIN_FAIR=1) */
ltl all_run { <> (done == NTASKS) }
#else
ltl all_run { ([]<> !inject_locked) -> <> (done == NTASKS) }
#endif

#define VISIBLE (inject_len != 0 || deque[0] != 0 || \
                 (NW > 1 && deque[1] != 0) || (NW > 2 && deque[2] != 0) || \
                 (NW > 3 && deque[3] != 0))

/* One case of find_task's steal: victim v, not ourselves. */
#define STEAL(v) :: NW > v && me != v && deque[v] > 0 -> \
                    deque[v]--; done++; got = STOLEN

/* sleep.c:unlink_parker (registry lock held). */
inline unlink(p)
{
    registered[p] = false;
    sleepers--
}

/* sleep.c:gather__sleep_wake_n: unlink and unpark up to n registered
 * parkers, any of them. Uses the caller's locals k and p. */
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
            notified[p] = true; /* gather__unpark, under the registry lock */
            k--
        :: else -> break
        od;
        k = 0;
        p = 0
    }
}

/* sleep.c:gather__sleep_leave */
inline sleep_leave(me)
{
    atomic {
        if
        :: registered[me] -> unlink(me)
        :: else -> skip
        fi
    }
}

active [NW] proctype worker()
{
    byte me = _pid; /* workers are the first processes: pids 0 .. NW-1 */
    byte got;
    byte k;
    byte p;

top: /* gather__worker_help -> find_task */
    atomic {
        if
        :: deque[me] > 0 -> deque[me]--; done++ /* own spawn: no chain */
        :: else ->
            if
            :: inject_len > 0 && !inject_locked -> inject_len--; got = PARENT
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
    :: got == NONE -> goto top
    :: got == NOTHING -> got = NONE; goto idle_wait
    :: else -> skip
    fi;
    /* pass_wake_on: still work visible? wake one more */
    if
    :: VISIBLE -> wake_n(1)
    :: else -> skip
    fi;
    /* run_task */
    if
    :: got == PARENT ->
        atomic { deque[me]++; done++; got = NONE } /* submit from a worker */
        wake_n(1)                                  /* gather__sleep_wake_one */
    :: else -> got = NONE
    fi;
    goto top;

idle_wait:
    atomic { /* gather__sleep_enter(idle = true), heavy_barrier() */
        registered[me] = true;
        sleepers++
    }
#ifndef BUGGY
    if
    :: VISIBLE -> sleep_leave(me); goto top /* work_visible: leave, look */
    :: else -> skip
    fi;
#endif
end_park: /* gather__park: wait for the token and consume it */
    atomic { notified[me] -> notified[me] = false }
    sleep_leave(me);
    goto top
}

/* A thread outside the pool: gather_submit -> inject_push, one task at a
 * time. */
active proctype submitter()
{
    byte i;     /* tasks submitted */
    bool was_empty;
    byte k;
    byte p;

    do
    :: i < NPARENTS ->
        atomic { /* lock inject_lock; append one */
            !inject_locked -> inject_locked = true;
            was_empty = (inject_len == 0);
            inject_len = inject_len + 1
        }
        if
        :: was_empty -> wake_n(1) /* still under inject_lock */
        :: else -> skip
        fi;
        atomic { inject_locked = false; was_empty = false; i = i + 1 }
    :: else -> break
    od
}

/* No deadlock with work pending: once nothing can move, all tasks ran. */
active proctype watchdog()
{
end_wait:
    timeout -> assert(done == NTASKS)
}
