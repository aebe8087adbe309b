/* SPDX-License-Identifier: MIT */
/*
 * elastic.pml - spin model of an elastic pool's spare threads (blocking.c,
 * worker.c, sleep.c, pool.c): spares started for blocked tasks by the
 * monitor and by gather_blocking_begin, spares parking and retiring after
 * the keep-alive, the monitor asleep while the pool idles, and destroy.
 * Checked by tests/models/run_spin.sh (CTest: model_elastic).
 *
 * What mirrors what:
 *   proctype worker      worker.c:gather__worker_main on one worker slot
 *                        (pool.c slot_state FREE, LIVE, ZOMBIE): waits for
 *                        its slot to be spawned, runs the loop, marks the
 *                        slot ZOMBIE when it leaves, and may be spawned
 *                        again (take_slot reuses the slot). Not modelled:
 *                        the monitor also joins ZOMBIE slots when a
 *                        retiring thread kicks it (gather__pool_reap; a
 *                        join changes no count), and destroy's
 *                        gather__sleep_close, after which nobody retires
 *     top                gather__elastic_overfull (alive > threads and
 *                        `threads` others counts_as_running: busy, no
 *                        region, not marked blocked), then find_task ->
 *                        gather__inject_take, then pass_wake_on
 *     run_task           set_busy(true); the task; its completion with
 *                        set_busy(false) (clears `blocked` and `regions`)
 *     a REGION task      gather_blocking_begin first (regions 0 -> 1),
 *                        then compensate: loads alive and idle; idle > 0:
 *                        work_visible, gather__sleep_wake_one; else, alive
 *                        < max: start_spares(p, 1); then blocks until
 *                        released (gather_blocking_end with the completion)
 *     a QUIET task       runs, then blocks in a system call without saying
 *                        so (`stalled`): only the monitor's sample sees it
 *     a CPU task         runs and completes
 *     idle_wait          gather__sleep_enter (all_idle), `exiting`, the
 *                        re-check (work_visible; !overfull for a worker
 *                        that parks because it is overfull),
 *                        check_drained when all idle and stopping, spare =
 *                        alive > threads, gather__park (a spare's
 *                        keep-alive: a timeout that may come whenever the
 *                        token is not there), gather__sleep_retire(threads)
 *                        after a timeout, gather__sleep_leave
 *   inline wake_n        sleep.c:gather__sleep_wake_n (unlink and unpark
 *                        up to n registered parkers, any of them)
 *   inline wake_watcher  sleep.c:wake_watcher (in gather__sleep_leave)
 *   inline start_spares  blocking.c:start_spares: grow_lock; while started
 *                        < n and !exiting, pool.c:gather__pool_start_worker
 *                        (gather__sleep_admit: alive < max under the
 *                        registry lock, asserting alive <= MAXT; take_slot
 *                        joining a ZOMBIE; spawn); unlock
 *   proctype monitor     blocking.c:monitor_main: gather__sleep_watch (every
 *                        live thread registered idle: become the watcher,
 *                        park without deadline), else park until a tick or
 *                        the token, then check(): work_visible; sample
 *                        every busy worker (a stalled QUIET one is marked
 *                        `blocked`, a REGION one does not run, the others
 *                        run); looking = alive - idle - busy; need =
 *                        threads - running - looking; wake_n(need); then
 *                        start_spares(batch), batch from 1 to
 *                        gather__pool_queued (the slow start's need *
 *                        burst capped by the queued tasks);
 *                        gather__sleep_unwatch when stopped
 *   proctype submitter   gather_submit from outside the pool -> inject.c:
 *                        gather__inject_push (refused once stopping; wakes
 *                        one when the queue was empty), one task at a
 *                        time; each task REGION, QUIET or CPU (KINDS)
 *   proctype watchdog    (default scenario) once nothing can move: every
 *                        task started, and alive == threads if all ran
 *   proctype destroyer   (-DDESTROY) gather_pool_destroy once the submitter
 *                        returned: gather_pool_shutdown (stopping,
 *                        wake_all, check_drained, wait for drained),
 *                        grow_lock, stop_threads (gather__monitor_stop:
 *                        stop, unpark, join; exiting; wake_all;
 *                        join_threads), free_pool
 *
 * Properties (threads P = 1, max_threads MAXT = 3 or 2, NTASKS <= MAXT):
 *  (1) never more than max_threads threads alive: assert in admit;
 *  (2) no lost wake-up, no lost compensation: every task starts, also
 *      while the tasks that run stay blocked for ever (with NTASKS <= MAXT
 *      a task queued while every live thread is blocked always finds
 *      alive < max, so the pool must start a thread for it);
 *  (3) once every task completed, every spare leaves: alive == threads;
 *  (4) -DDESTROY: the pool is freed only after the monitor and every
 *      thread, spares included, left and were joined (assert at
 *      free_pool); nothing touches the pool after the free (assert(!freed)
 *      at every pool access); destroy returns.
 *  Safety run (spin -a; pan with -DSAFETY): the assertions, and invalid
 *  end states (destroy waiting for ever; the watchdog checks (2) and (3)
 *  where everything stopped). Liveness run (pan -a):
 *    ltl elastic          <> started == NTASKS &&
 *                         [] (done == NTASKS -> <> alive == P)
 *    ltl destroy_returns  (-DDESTROY) <> destroyed
 *  without fairness: with the ticks that change nothing left out (below),
 *  no thread can loop for ever on its own. (With P = 2 a monitor whose
 *  start fails at alive == max can: check those with SPIN_FAIR=1.) In the
 *  default scenario a blocking task is released some time or never
 *  (end_blocked); with -DDESTROY it is released some time, since destroy
 *  waits for the drain.
 *
 * Sizes (KINDS: 0, the default, lets the submitter pick each task's kind;
 * 1 all REGION, 2 all QUIET, 3 all CPU, 4 REGION, QUIET, CPU in that
 * order), states stored, safety / liveness:
 *   -DMAXT=2 -DNTASKS=2              0.5 M / 0.8 M (the BUGGY runs too)
 *   -DKINDS=4 (MAXT 3, 3 tasks)       10.7 M / 16.3 M (15 s / 33 s; the
 *                                     liveness run peaks at 1.8 GB)
 *   -DDESTROY -DMAXT=2 -DNTASKS=2     4.8 M / 4.8 M (with BUGGY_JOIN)
 * CTest runs these three (about 95 s). Verified once, too large for a unit
 * test: the default (MAXT 3, 3 tasks of any kind), safety, 203 M states,
 * no error (9 min, 11.6 GB with -DCOLLAPSE); -DMAXT=3 -DNTASKS=2, 7.1 M /
 * 9.9 M; -DDESTROY -DMAXT=3 -DNTASKS=2, safety, 112 M states (6 min);
 * -DP=2 -DKINDS=2, liveness with SPIN_FAIR=1 (pan -a -f), 20 M states.
 *
 * Abstraction, and why it is sound:
 *  - As in sleep.pml and drain.pml: sequentially consistent memory given
 *    the Dekker fences of sleep.c (sleep.pml checks the protocol; here a
 *    push or a registration is one step with its barrier); a critical
 *    section is one atomic step; wake_n's relaxed `sleepers` test is folded
 *    into its locked step; a waker takes any registered parker;
 *    spin_for_work is left out; a load of a flag that is only ever set
 *    (stopping, exiting, stop) that reads true is merged with the step
 *    after it.
 *  - inject_push (append and wake under inject_lock) is one step, so a
 *    worker's trylock never fails here. sleep.pml checks that failure; it
 *    only sends the worker through idle_wait's re-check, which sees the
 *    task and looks again. Modelled here, each such round could also let
 *    the monitor start a spare from a snapshot that saw the worker
 *    registered (as other stale snapshots do, which are modelled), and the
 *    state space grows thirtyfold.
 *  - Only the injection queue: no spawns, so no deques and no steals (a
 *    worker's own deque is always empty: the deque tests of retire and
 *    beyond_max pass). No resize: threads and max_threads are constants,
 *    so beyond_max never fires and is left out. No waits inside tasks
 *    (`waiting` stays false, every registered parker is an idle worker:
 *    `idle` is also `sleepers`). No cancelling.
 *  - The monitor's sample is exact: a stalled QUIET task's CPU clock stops
 *    and its kernel state is not 'R', which is what the heuristic reads; a
 *    released task completes in the step that releases it, so no resample
 *    of a resumed task is needed. check()'s loads (stop, work_visible, the
 *    workers' flags, alive, idle) are one snapshot: relaxed hints, whose
 *    staleness costs a wake-up or a spare too many or too few, as the
 *    interleavings between the snapshot, the wake and the starts here do.
 *    compensate's loads of alive and idle are one snapshot, too. A start
 *    decided on them is checked again by admit under the registry lock.
 *  - Ticks that change nothing are stuttering and left out: the timed park
 *    of the monitor returns (and check() runs) only when that check would
 *    act (work visible, and running + looking < threads or a stalled busy
 *    worker not yet marked), when every live thread is idle (the loop
 *    then watches), or when stopped. The token ends either park at any
 *    time. Without this, a ticking monitor could spin for ever in the
 *    liveness run while the other threads stand still. FAST/RAMP ticks
 *    and the burst counter only change when ticks come and how many
 *    spares one starts (any batch from 1 to the queued count here).
 *  - A REGION task enters its region at once (busy and regions in one
 *    step): a task that runs first and then enters a region is a QUIET
 *    task until then.
 *  - A thread's exit is one step: the retire (or the exiting test and
 *    gather__sleep_leave) with the slot's ZOMBIE store, the last touch of
 *    the pool. Between the two the C's thread only forgets its TLS and
 *    clears its tid; a take_slot meanwhile would skip the LIVE slot and
 *    allocate another one, which differs only in the slot's name. Admit,
 *    take_slot and spawn are one step under grow_lock (others only see
 *    `alive` move before the thread runs, which its first step may follow
 *    arbitrarily late); taking grow_lock is merged with the first admit
 *    and releasing it with the last.
 *  - gather__sleep_leave after a park that consumed a waker's token is one
 *    step with it: the thread is out of the registry and alive, so the
 *    watcher cannot be set meanwhile. After a retire that keeps the
 *    thread, likewise.
 *  - check_drained's quiescent test and its `drained = true` are one step:
 *    the store commutes with every step between them except the shutdown
 *    caller's wait, which may then only return earlier.
 *  - Locals are reset when a thread exits, so a respawned slot starts from
 *    the same state as a fresh one.
 *
 * BUGGY variants (spin -DBUGGY_... -a), run by CTest through run_spin.sh:
 *  BUGGY_ADMIT   a starter trusts the relaxed `alive` it read before
 *                grow_lock (compensate's load, the monitor's snapshot)
 *                instead of admit's test under the registry lock: a
 *                REGION task's compensate and the monitor both start a
 *                spare; assertion alive <= MAXT in admit.
 *  BUGGY_RETIRE  gather__sleep_retire ignores `taken`: a spare that a
 *                submitter woke for its task retires on its keep-alive
 *                without gather__sleep_leave, so the monitor, asleep as the
 *                watcher, is not woken, and the worker that stays parks
 *                without deadline (it saw alive == threads): the task never
 *                starts. Watchdog assertion; acceptance cycle.
 *  BUGGY_WATCH   the monitor sleeps while the pool idles without
 *                registering as the watcher: when the only worker's task
 *                blocks, nobody compensates and the queued task never
 *                starts. Watchdog assertion; acceptance cycle.
 *  BUGGY_JOIN    (-DDESTROY) join_threads joins only the first `threads`
 *                slots: the pool is freed while a spare still runs
 *                (assertion at free_pool).
 *
 * Scenario -DSPAWN_FAIL: one spare's start may fail after admit
 * (take_slot's allocation, pthread_create's EAGAIN), and
 * gather__pool_start_worker uncounts it (gather__sleep_unadmit). Assumed
 * (KEEPALIVE_OK): a start, from the starter's decision to the spawn or the
 * uncount, is shorter than the keep-alive, so no keep-alive expires
 * meanwhile (without that, the last worker can retire against the admitted
 * count and the uncount leaves alive == 0).
 *   The uncount lowers `alive` while no thread registers idle: the last
 *   worker to go idle during a drain may have registered while the failing
 *   spare was still counted (all_idle false, no check_drained) and park
 *   without deadline. So after the uncount, if stopping, the starter makes
 *   the drain check (found with this model; pool.c). BUGGY_UNCOUNT leaves
 *   it out: with -DDESTROY, gather_pool_shutdown and gather_pool_destroy
 *   wait for ever (invalid end state of the destroyer). A thread that
 *   retires (keep-alive, or worker.c:beyond_max after a resize) makes the
 *   same check in worker.c:leave().
 */

#ifndef P
#define P 1            /* the pool's threads (1 or 2) */
#endif
#ifndef MAXT
#define MAXT 3         /* max_threads: worker slots (at most 4) */
#endif
#ifndef NTASKS
#define NTASKS 3       /* <= MAXT (property (2)), <= 3 (the batch) */
#endif
#ifndef KINDS
#define KINDS 0        /* 0: any kind per task; 1 REGION, 2 QUIET, 3 CPU */
#endif

/* slot states (pool.c: GATHER__SLOT_*) */
#define FREE 0
#define LIVE 1
#define ZOMBIE 2

/* task kinds */
#define REGION 1       /* blocks inside gather_blocking_begin/end */
#define QUIET 2        /* blocks without saying so */
#define CPU 3          /* runs and completes */

byte submitted;        /* tasks pushed on the injection queue */
byte taken;            /* tasks taken from it: the queue is [taken, submitted) */
byte kind[NTASKS];

byte slot[MAXT];       /* pool.c: slot_state */
bool busy[MAXT];       /* worker.c: busy (a top-level task runs) */
bool regions[MAXT];    /* regions != 0 */
bool bmark[MAXT];      /* the monitor's `blocked` mark */
bool stalled[MAXT];    /* ghost: a QUIET task is blocked in the kernel */

/* sleep.c registry: every registered parker is an idle worker here, so
 * `idle` is also `sleepers`. */
bool registered[MAXT];
bool notified[MAXT];   /* a parker's token */
byte idle;
byte alive;
bool watcher;          /* s->watcher == the monitor's parker */
bool mnotified;        /* the monitor parker's token */

bool grow_locked;      /* pool.c: grow_lock */
bool stopping;
bool drained;
bool exiting;
bool mstop;            /* monitor->stop */
bool mexited;          /* monitor_main returned */
bool freed;            /* free_pool ran */
bool destroyed;        /* gather_pool_destroy returned */
bool submitter_done;
bool spawn_failed;     /* -DSPAWN_FAIL: the one failure happened */
byte starting;         /* -DSPAWN_FAIL: starts in flight (decided, not done) */

/* ghosts */
byte accepted;         /* tasks the pool took */
byte started;          /* tasks taken by a worker */
byte done;             /* tasks completed */

#ifdef DESTROY
ltl destroy_returns { <> destroyed }
#else
ltl elastic { (<> (started == NTASKS)) && [] ((done == NTASKS) -> <> (alive == P)) }
#endif

#define TOUCH assert(!freed)
#define VISIBLE (submitted > taken)

/* blocking.c:counts_as_running, as the overfull check reads it */
#define RUNS(i) (busy[i] && !regions[i] && !bmark[i])
#define OTHERS_RUNNING(me) \
    ((me != 0 && RUNS(0)) + (MAXT > 1 && me != 1 && RUNS(1)) + \
     (MAXT > 2 && me != 2 && RUNS(2)) + (MAXT > 3 && me != 3 && RUNS(3)))
/* blocking.c:gather__elastic_overfull */
#define OVERFULL(me) (alive > P && OTHERS_RUNNING(me) >= P)

/* What check()'s samples find: running (sample true) and busy workers. */
#define MRUNS(i) (busy[i] && !regions[i] && !stalled[i])
#define MRUNNING (MRUNS(0) + (MAXT > 1 && MRUNS(1)) + (MAXT > 2 && MRUNS(2)) + \
                  (MAXT > 3 && MRUNS(3)))
#define NBUSY (busy[0] + (MAXT > 1 && busy[1]) + (MAXT > 2 && busy[2]) + \
               (MAXT > 3 && busy[3]))
#define LOOKING (alive > idle + NBUSY -> alive - idle - NBUSY : 0)
#define NEEDY (MRUNNING + LOOKING < P)
#define UNMARKED(i) (busy[i] && stalled[i] && !bmark[i])
#define ANY_UNMARKED (UNMARKED(0) || (MAXT > 1 && UNMARKED(1)) || \
                      (MAXT > 2 && UNMARKED(2)) || (MAXT > 3 && UNMARKED(3)))
/* A tick whose check() would act. */
#define TICK_ACTS (VISIBLE && (NEEDY || ANY_UNMARKED))

/* sleep.c:gather__sleep_quiescent with work_visible */
#define QUIESCENT (idle == alive && !VISIBLE)

#define NO_LIVE_SLOT (slot[0] != LIVE && (MAXT < 2 || slot[1] != LIVE) && \
                      (MAXT < 3 || slot[2] != LIVE) && (MAXT < 4 || slot[3] != LIVE))

/* -DSPAWN_FAIL: a start, from the starter's decision (check()'s snapshot,
 * compensate's idle load) to its spawn or uncount, is shorter than the
 * keep-alive: no keep-alive expires meanwhile. */
#ifdef SPAWN_FAIL
#define START_BEGIN starting++
#define START_END starting--
#define KEEPALIVE_OK (starting == 0)
#else
#define START_BEGIN skip
#define START_END skip
#define KEEPALIVE_OK true
#endif

/* sleep.c:unlink_parker (registry lock held) */
inline unlink(i)
{
    registered[i] = false;
    idle--
}

/* sleep.c:wake_watcher (registry lock held) */
inline wake_watcher()
{
    if
    :: watcher -> watcher = false; mnotified = true
    :: else -> skip
    fi
}

/* sleep.c:gather__sleep_wake_n, inside an atomic step: unlinks and unparks
 * up to n registered parkers, any of them; k gets how many. Local p. */
inline wake_n(n)
{
    TOUCH;
    k = 0;
    do
    :: k < n && idle > 0 ->
        if
        :: registered[0] -> p = 0
        :: MAXT > 1 && registered[1] -> p = 1
        :: MAXT > 2 && registered[2] -> p = 2
        :: MAXT > 3 && registered[3] -> p = 3
        fi;
        unlink(p);
        notified[p] = true; /* gather__unpark, under the registry lock */
        k++
    :: else -> break
    od;
    p = 0
}

/* take_slot (joins a ZOMBIE, reuses a FREE slot) + spawn: slot LIVE. */
inline spawn()
{
    if
    :: slot[0] != LIVE -> slot[0] = LIVE
    :: else ->
        if
        :: MAXT > 1 && slot[1] != LIVE -> slot[1] = LIVE
        :: else ->
            if
            :: MAXT > 2 && slot[2] != LIVE -> slot[2] = LIVE
            :: else -> assert(MAXT > 3 && slot[3] != LIVE); slot[3] = LIVE
            fi
        fi
    fi
}

/*
 * blocking.c:start_spares(n) with pool.c:gather__pool_start_worker(max):
 * grow_lock; while k < n and !exiting: gather__sleep_admit (alive < max
 * under the registry lock), take_slot + spawn; unlock. `a` is the caller's
 * relaxed read of alive (used only by BUGGY_ADMIT). Taking grow_lock is
 * merged with the first admit and releasing it with the last step. Locals
 * k (started), ok.
 */
inline start_spares(n, a)
{
    atomic { !grow_locked -> grow_locked = true; k = 0 }
    do
    :: atomic {
        TOUCH;
        if
        :: k < n && !exiting ->
#ifdef BUGGY_ADMIT
            ok = (a + k < MAXT);
#else
            ok = (alive < MAXT);
#endif
            if
            :: ok -> /* admitted */
                alive++;
                assert(alive <= MAXT);
                ok = false;
#ifdef SPAWN_FAIL
                if
                :: !spawn_failed -> ok = true /* its spawn fails, below */
                :: true -> skip
                fi;
                if
                :: ok -> goto sp_fail
                :: else -> skip
                fi;
#endif
                spawn();
                k++
            :: else -> grow_locked = false; k = 0; break /* EAGAIN */
            fi
        :: else -> grow_locked = false; k = 0; break
        fi
       }
    od;
#ifdef SPAWN_FAIL
    goto sp_done;
sp_fail: /* take_slot or pthread_create failed: gather__pool_start_worker
          * uncounts it, gather__sleep_unadmit */
    atomic { TOUCH; spawn_failed = true; ok = false; alive--; grow_locked = false; k = 0 }
#ifndef BUGGY_UNCOUNT
    /* the fix (pool.c): then, if stopping (acquire load), check_drained */
    if
    :: stopping ->
        atomic {
            if
            :: QUIESCENT -> drained = true
            :: else -> skip
            fi
        }
    :: else -> skip
    fi;
#endif
sp_done:
#endif
    skip
}

proctype worker(byte me)
{
    byte t;          /* the task taken */
    bool ovf;        /* idle_wait(w, overfull) */
    bool all_idle;   /* gather__sleep_enter's answer */
    bool spare;      /* parks with the keep-alive */
    bool ok;
    byte a;
    byte k;
    byte p;

end_free: /* waits for spawn (slots 0 .. P-1 are LIVE from the start) */
    slot[me] == LIVE;
top:
    atomic { /* gather__elastic_overfull */
        if
        :: OVERFULL(me) -> ovf = true; goto idle_wait
        :: else -> skip
        fi
    }
    atomic { /* find_task -> gather__inject_take (spin_for_work left out) */
        if
        :: VISIBLE -> TOUCH; t = taken; taken++; started++
        :: else -> goto idle_wait
        fi
    }
    atomic { /* pass_wake_on: work still visible (the sleepers hint dropped) */
        if
        :: VISIBLE -> skip
        :: else -> goto run_task
        fi
    }
    atomic { wake_n(1); k = 0 } /* gather__sleep_wake_one */
run_task: /* set_busy(true) */
    atomic {
        busy[me] = true;
        if
        :: kind[t] == CPU -> goto finish
        :: kind[t] == QUIET -> goto quiet
        :: kind[t] == REGION ->
            /* its first act: gather_blocking_begin (regions 0 -> 1) */
            regions[me] = true
        fi
    }
    atomic { /* compensate: its loads of alive and idle */
#ifdef BUGGY_ADMIT
        a = alive;
#endif
        if
        :: idle > 0 -> skip
        :: idle == 0 && alive < MAXT -> START_BEGIN; goto comp_start
        :: else -> goto blocked
        fi
    }
    atomic { /* work_visible */
        if
        :: VISIBLE -> skip
        :: else -> goto blocked
        fi
    }
    atomic { wake_n(1); k = 0; goto blocked } /* gather__sleep_wake_one */
comp_start:
    start_spares(1, a);
    atomic {
        START_END;
#ifdef BUGGY_ADMIT
        a = 0;
#endif
        goto blocked
    }
quiet: /* it runs, then blocks in a system call */
    stalled[me] = true;
blocked: /* until released: some time, or (default scenario) never */
    if
    :: true -> skip
#ifndef DESTROY
    :: true -> goto end_blocked
#endif
    fi;
finish:
    atomic { /* released (gather_blocking_end); the task completes;
              * set_busy(false) clears `blocked` and `regions` */
        done++;
        busy[me] = false;
        stalled[me] = false;
        regions[me] = false;
        bmark[me] = false;
        t = 0;
        goto top
    }

idle_wait:
    atomic { /* gather__sleep_enter(idle = true), heavy_barrier */
        TOUCH;
        registered[me] = true;
        idle++;
#ifdef DESTROY
        all_idle = (idle == alive);
#endif
        skip
    }
    atomic { /* exiting (then gather__sleep_leave, leave the loop), and
              * the re-check */
#ifdef DESTROY
        if
        :: exiting ->
            if
            :: registered[me] -> unlink(me)
            :: else -> skip
            fi;
            wake_watcher();
            slot[me] = ZOMBIE; /* the thread's last touch of the pool */
            all_idle = false;
            ovf = false;
            goto end_free
        :: else -> skip
        fi;
#endif
        if
        :: ovf && !OVERFULL(me) -> goto leave
        :: !ovf && VISIBLE -> goto leave
        :: else -> skip
        fi;
        if
        :: !all_idle -> goto keepalive
        :: else -> skip
        fi
    }
#ifdef DESTROY
    atomic { /* all idle and stopping: gather__pool_check_drained */
        if
        :: all_idle && stopping && QUIESCENT -> TOUCH; drained = true
        :: else -> skip
        fi;
        all_idle = false
    }
#endif
keepalive: /* a spare parks with the keep-alive */
    atomic { spare = (alive > P); all_idle = false }
end_park: /* gather__park */
    if
    :: atomic {
        notified[me] -> notified[me] = false; spare = false;
        if
        :: !registered[me] -> /* taken by a waker: gather__sleep_leave
                               * only wakes the watcher */
            TOUCH; wake_watcher(); ovf = false; goto top
        :: else -> goto leave /* a stale token */
        fi
       }
    :: atomic { spare && !notified[me] && KEEPALIVE_OK -> spare = false } /* ETIMEDOUT */
    fi;
    atomic { /* gather__sleep_retire(s, parker, threads) */
        TOUCH;
        ok = !registered[me]; /* taken: woken for work */
        if
        :: registered[me] -> unlink(me)
        :: else -> skip
        fi;
#ifdef BUGGY_RETIRE
        ok = false;
#endif
        if
        :: !ok && alive > P ->
            alive--;
            slot[me] = ZOMBIE; /* leaves: the last touch of the pool */
            ovf = false;
            goto end_free
        :: else -> /* stays: gather__sleep_leave (unregistered now) */
            ok = false;
            wake_watcher();
            ovf = false;
            goto top
        fi
    }
leave: /* gather__sleep_leave */
    atomic {
        TOUCH;
        if
        :: registered[me] -> unlink(me)
        :: else -> skip
        fi;
        wake_watcher();
        ovf = false;
        goto top
    }
end_blocked: /* a task blocked for ever */
    false
}

/* check()'s snapshot, after the monitor's park returned (the stop test
 * first). Leaves need at 0 when the tick does nothing. */
inline check_snapshot()
{
    if
    :: mstop -> goto out
    :: else -> skip
    fi;
    if
    :: VISIBLE ->
        TOUCH;
        bmark[0] = bmark[0] || UNMARKED(0);
        if
        :: MAXT > 1 -> bmark[1] = bmark[1] || UNMARKED(1)
        :: else -> skip
        fi;
        if
        :: MAXT > 2 -> bmark[2] = bmark[2] || UNMARKED(2)
        :: else -> skip
        fi;
        if
        :: MAXT > 3 -> bmark[3] = bmark[3] || UNMARKED(3)
        :: else -> skip
        fi;
        if
        :: NEEDY ->
            need = P - MRUNNING - LOOKING;
            START_BEGIN;
#ifdef BUGGY_ADMIT
            a = alive;
#endif
            skip
        :: else -> goto loop
        fi
    :: else -> goto loop
    fi
}

proctype monitor()
{
    bool ok;
    byte need;
    byte batch;
    byte a;
    byte k;
    byte p;

loop:
#ifdef DESTROY
    atomic {
        if
        :: mstop -> goto out
        :: else -> skip
        fi
    }
#endif
    atomic { /* gather__sleep_watch */
        TOUCH;
        if
        :: idle == alive ->
#ifndef BUGGY_WATCH
            watcher = true;
#endif
            skip
        :: else -> goto end_tick
        fi
    }
end_watch: /* gather__park(&m->parker, NULL) */
    atomic { mnotified -> mnotified = false; goto loop }
end_tick: /* gather__park with the tick's deadline: the token, or a tick */
    if
    :: atomic { mnotified -> mnotified = false; check_snapshot() }
    :: atomic { (mstop || idle == alive || TICK_ACTS) -> check_snapshot() }
    fi;
    atomic { /* wake_n(need) */
        wake_n(need);
        need = need - k;
        k = 0;
        if
        :: need == 0 -> START_END; a = 0; goto loop
        :: else -> skip
        fi
    }
    atomic { /* gather__pool_queued; batch = need * burst, capped by it */
        if
        :: !VISIBLE -> START_END; a = 0; need = 0; goto loop
        :: submitted - taken >= 1 -> batch = 1
        :: submitted - taken >= 2 -> batch = 2
        :: submitted - taken >= 3 -> batch = 3
        fi;
        need = 0
    }
    start_spares(batch, a);
    atomic { START_END; batch = 0; a = 0; goto loop }

out:
    atomic { TOUCH; watcher = false; mexited = true } /* gather__sleep_unwatch */
}

/* gather_submit from outside the pool, one task at a time: inject_push
 * (lock inject_lock; refused once stopping; append; wake one when the
 * queue was empty; unlock) is one step. */
proctype submitter()
{
    byte i;
    byte k;
    byte p;

    do
    :: i < NTASKS ->
        atomic {
            TOUCH;
            if
            :: stopping -> break /* ESHUTDOWN */
            :: else -> skip
            fi;
#if KINDS == 0
            if
            :: kind[i] = REGION
            :: kind[i] = QUIET
            :: kind[i] = CPU
            fi;
#elif KINDS == 4
            kind[i] = 1 + i % 3; /* REGION, QUIET, CPU */
#else
            kind[i] = KINDS;
#endif
            accepted++;
            submitted++;
            i++;
            if
            :: submitted - taken == 1 -> wake_n(1); k = 0 /* was empty */
            :: else -> skip
            fi
        }
    :: else -> break
    od;
    submitter_done = true
}

#ifdef DESTROY
proctype destroyer()
{
    byte k;
    byte p;

    /* gather_pool_destroy once the submitter returned (no call on the pool
     * may be under way when destroy starts; drain.pml races shutdown with
     * submits): gather_pool_shutdown(pool, 0) */
    submitter_done;
    atomic { TOUCH; stopping = true } /* under inject_lock */
    atomic { wake_n(MAXT); k = 0 } /* gather__sleep_wake_all */
    atomic { /* check_drained */
        if
        :: QUIESCENT -> drained = true
        :: else -> skip
        fi
    }
    drained; /* cond_wait on drain_cond */
    !grow_locked; /* lock grow_lock, unlock: a start in flight finishes */
    /* stop_threads */
    atomic { TOUCH; mstop = true; mnotified = true } /* gather__monitor_stop */
    mexited; /* pthread_join */
    exiting = true;
    atomic { wake_n(MAXT); k = 0 } /* gather__sleep_wake_all */
#ifdef BUGGY_JOIN
    slot[0] != LIVE && (P < 2 || slot[1] != LIVE); /* joins `threads` slots */
#else
    NO_LIVE_SLOT; /* join_threads */
#endif
    atomic { /* free_pool */
        assert(done == accepted && mexited && NO_LIVE_SLOT && !grow_locked);
        freed = true
    }
    destroyed = true
}
#else
/* When nothing can move: every task started (no lost wake-up or
 * compensation), and once all ran, only `threads` threads are alive. */
proctype watchdog()
{
end_wait:
    timeout -> assert(started == NTASKS && (done < NTASKS || alive == P))
}
#endif

/* gather_pool_create: the first P workers and the monitor; the users. */
init
{
    atomic {
        slot[0] = LIVE;
        if
        :: P > 1 -> slot[1] = LIVE
        :: else -> skip
        fi;
        alive = P;
        run worker(0);
        if
        :: MAXT > 1 -> run worker(1)
        :: else -> skip
        fi;
        if
        :: MAXT > 2 -> run worker(2)
        :: else -> skip
        fi;
        if
        :: MAXT > 3 -> run worker(3)
        :: else -> skip
        fi;
        run monitor();
        run submitter();
#ifdef DESTROY
        run destroyer()
#else
        run watchdog()
#endif
    }
}
