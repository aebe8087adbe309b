/* SPDX-License-Identifier: MIT */
/*
 * wait.c - every blocking wait: gather_future_wait(), wait_for(), and the
 * engine under gather_futures(), gather_map() and gather_wait_any().
 *
 * DESIGN: a wait first checks its condition. On a pool thread it then helps:
 * it runs tasks of its own pool (own deque, injection queue, steals) while
 * checking the condition between tasks, without registering anything. Only
 * when there is nothing to run, or off the pool at once, does it register a
 * wait record ("waitset"): a heap block with a parker and one listener entry
 * per future. Each entry fires once when its future completes, counts it,
 * and unparks the waiter when the mode's condition is met (all done; all
 * done or one failed; one done).
 *
 * A waiter may return before every entry fired (fail-fast, wait_any, a
 * timeout), so the waitset is reference-counted: one reference per
 * registered entry plus the waiter's. Nothing is ever unlinked from a
 * future's list, so there is no lock and no removal race. Each thread keeps
 * one spare waitset (thread-specific data) and reuses it when no late entry
 * holds it, so steady-state waits allocate nothing.
 *
 * A pool thread with nothing to help with parks on the waitset's parker,
 * registered in its pool's sleep registry, so that both new work and the
 * condition wake it (sleep.c's protocol).
 */
#include "internal.h"

#include <stdlib.h>

/* Up to this many futures a helping wait re-checks the whole list after
 * each task; above it, a cursor over the done prefix plus a full re-check
 * every n/8 tasks (amortised O(1) per task). */
#define SMALL_LIST 32

typedef struct wait_entry {
    gather__listener listener; /* first: fire() casts back */
    gather__waitset *ws;
    gather_future *f;          /* what it listens to (reuse, see ws_get) */
} wait_entry;

struct gather__waitset {
    _Atomic size_t refs;
    enum gather__wait_mode mode; /* written before the entries are pushed */
    _Atomic size_t remaining;    /* entries not fired, counting duplicates */
    _Atomic bool triggered;      /* the condition was met */
    size_t capacity;
    size_t armed_n;              /* entries of the last arm (waiter only) */
    gather__parker parker;
    wait_entry entry[];
};

static pthread_key_t spare_key;
static bool spare_key_ok;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;

/* ---- waitset lifetime --------------------------------------------------- */

static void ws_release(gather__waitset *ws)
{
    /* acq_rel: the last holder frees after every other holder's accesses. */
    if (atomic_fetch_sub_explicit(&ws->refs, 1, memory_order_acq_rel) == 1) {
        gather__parker_destroy(&ws->parker);
        gather__free(ws);
    }
}

static void spare_destructor(void *ws)
{
    ws_release(ws);
}

static void spare_init(void)
{
    spare_key_ok = pthread_key_create(&spare_key, spare_destructor) == 0;
}

static gather__waitset *ws_alloc(size_t n)
{
    size_t cap = n < 4 ? 4 : n;
    size_t size;
    if (!gather__size(cap, sizeof(wait_entry), sizeof(gather__waitset), &size))
        return NULL;
    gather__waitset *ws = gather__malloc(size);
    if (ws == NULL)
        return NULL;
    if (gather__parker_init(&ws->parker) != 0) {
        gather__free(ws);
        return NULL;
    }
    atomic_init(&ws->refs, 1);
    atomic_init(&ws->remaining, 0);
    atomic_init(&ws->triggered, false);
    ws->capacity = cap;
    ws->armed_n = 0;
    return ws;
}

/* A waitset owned by the caller (one reference), reused when possible. */
/* Is ws, kept by this thread after a wait that timed out, still listening
 * to exactly fs[0..n) in `mode` (some of its entries have not fired)? Then
 * the same wait again can use it as it is: its counts and `triggered` are
 * those of these futures. */
static bool armed_for(gather__waitset *ws, gather_future *const fs[], size_t n,
                      enum gather__wait_mode mode)
{
    /* relaxed: only the waiter (this thread) arms; a stale count errs
     * towards "fired" (refs only drops), which re-arms a fresh waitset. */
    if (ws->armed_n != n || ws->mode != mode ||
        atomic_load_explicit(&ws->refs, memory_order_relaxed) <= 1)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ws->entry[i].f != fs[i])
            return false;
    return true;
}

/* The thread's spare waitset when no entry holds it any more (and it is
 * big enough), else a new one. */
static gather__waitset *ws_get_fresh(size_t n)
{
    pthread_once(&spare_once, spare_init);
    if (spare_key_ok) {
        gather__waitset *spare = pthread_getspecific(spare_key);
        /* acquire: refs == 1 means every entry of its last use has fired
         * and released it; their writes are visible before we reuse it. */
        if (spare != NULL && spare->capacity >= n &&
            atomic_load_explicit(&spare->refs, memory_order_acquire) == 1) {
            pthread_setspecific(spare_key, NULL);
            return spare;
        }
    }
    return ws_alloc(n);
}

/* A waitset for fs[0..n): the spare, still armed for this very list after
 * a wait that timed out (*armed: use it as it is), so that a polling loop
 * keeps one waitset instead of leaving one behind per poll; else as
 * ws_get_fresh(). */
static gather__waitset *ws_get(gather_future *const fs[], size_t n,
                               enum gather__wait_mode mode, bool *armed)
{
    pthread_once(&spare_once, spare_init);
    gather__waitset *spare = spare_key_ok ? pthread_getspecific(spare_key) : NULL;
    *armed = spare != NULL && armed_for(spare, fs, n, mode);
    if (*armed) {
        pthread_setspecific(spare_key, NULL);
        return spare;
    }
    return ws_get_fresh(n);
}

/* Largest waitset a thread keeps as its spare (entries): a bigger one,
 * made for one long list, is freed after use rather than kept forever. */
#define SPARE_MAX 1024

/* Gives the caller's reference back: into the spare slot, or released. */
static void ws_put(gather__waitset *ws)
{
    if (!spare_key_ok || ws->capacity > SPARE_MAX) {
        ws_release(ws);
        return;
    }
    gather__waitset *spare = pthread_getspecific(spare_key);
    if (spare == NULL) {
        if (pthread_setspecific(spare_key, ws) != 0)
            ws_release(ws);
        return;
    }
    bool spare_busy = atomic_load_explicit(&spare->refs, memory_order_relaxed) > 1;
    if (spare_busy || spare->capacity < ws->capacity) {
        if (pthread_setspecific(spare_key, ws) == 0) {
            ws_release(spare);
            return;
        }
    }
    ws_release(ws);
}

gather__waitset *gather__waitset_reserve(size_t n)
{
    return ws_get_fresh(n);
}

void gather__waitset_unreserve(gather__waitset *ws)
{
    if (ws != NULL)
        ws_put(ws);
}

/* ---- the condition ------------------------------------------------------ */

/*
 * Progress over a list, kept between checks: every entry below `lo` and
 * above `hi` is done (and, in FAIL_FAST mode, succeeded). Two ends because
 * a waiter that helps runs its own subtasks newest first, so the list
 * usually completes from the top down; the cursors make the check between
 * helped tasks O(1) in either order. A failure elsewhere in the list is
 * noticed through gather__failures (future.c): when it moved, the next
 * check scans the whole range, so fail-fast stays prompt without scanning
 * a long list after every task.
 */
typedef struct progress {
    size_t lo, hi;         /* hi is one past the last entry not known done */
    uint64_t failures;     /* gather__failures at the last full check */
} progress;

static bool failed(const gather_future *f)
{
    return f->error != 0; /* only called once f is known DONE (acquire) */
}

static bool done(const gather_future *f)
{
    return (gather__future_state(f) & GATHER__DONE) != 0;
}

/* Moves the cursors over done entries at both ends of the range; true when
 * a FAIL_FAST failure was among them. */
static bool advance(gather_future *const fs[], enum gather__wait_mode mode,
                    progress *pg)
{
    bool fail_fast = mode == GATHER__WAIT_FAIL_FAST;
    while (pg->lo < pg->hi && done(fs[pg->lo])) {
        if (fail_fast && failed(fs[pg->lo]))
            return true;
        pg->lo++;
    }
    while (pg->lo < pg->hi && done(fs[pg->hi - 1])) {
        if (fail_fast && failed(fs[pg->hi - 1]))
            return true;
        pg->hi--;
    }
    return false;
}

/* The full check of the range between the cursors. */
static bool check_full(gather_future *const fs[], size_t n,
                       enum gather__wait_mode mode, progress *pg)
{
    if (mode == GATHER__WAIT_ANY) {
        for (size_t i = 0; i < n; i++)
            if (done(fs[i]))
                return true;
        return false;
    }
    /* acquire: pairs with the release increment after a failing
     * completion; a count we saw is a failure this scan will see. */
    pg->failures = atomic_load_explicit(&gather__failures, memory_order_acquire);
    if (advance(fs, mode, pg))
        return true;
    if (mode == GATHER__WAIT_FAIL_FAST)
        for (size_t i = pg->lo; i < pg->hi; i++)
            if (done(fs[i]) && failed(fs[i]))
                return true;
    return pg->lo == pg->hi;
}

/* The check made between helped tasks: O(1) unless a failure happened. */
static bool check_between_tasks(gather_future *const fs[], size_t n,
                                enum gather__wait_mode mode, progress *pg)
{
    if (n <= SMALL_LIST || mode == GATHER__WAIT_ANY)
        return check_full(fs, n, mode, pg);
    if (mode == GATHER__WAIT_FAIL_FAST &&
        atomic_load_explicit(&gather__failures, memory_order_acquire) != pg->failures)
        return check_full(fs, n, mode, pg);
    return advance(fs, mode, pg) || pg->lo == pg->hi;
}

/* ---- entries ------------------------------------------------------------ */

static void trigger(gather__waitset *ws)
{
    /* acq_rel exchange: exactly one triggerer unparks; the waiter's acquire
     * load of `triggered` sees what the completion published. */
    if (!atomic_exchange_explicit(&ws->triggered, true, memory_order_acq_rel))
        gather__unpark(&ws->parker);
}

static void fire_entry(gather__listener *l, gather_future *f)
{
    gather__waitset *ws = ((wait_entry *)l)->ws;
    /* acq_rel: counts are combined across completing threads. */
    size_t left = atomic_fetch_sub_explicit(&ws->remaining, 1,
                                            memory_order_acq_rel) - 1;
    if (ws->mode == GATHER__WAIT_ANY || left == 0 ||
        (ws->mode == GATHER__WAIT_FAIL_FAST && failed(f)))
        trigger(ws);
    ws_release(ws); /* the entry's reference */
}

/* Registers one entry per future; handles those already done. */
static void arm(gather__waitset *ws, gather_future *const fs[], size_t n,
                enum gather__wait_mode mode)
{
    ws->mode = mode;
    ws->armed_n = n;
    /* relaxed: no entry is published yet; the pushes below release these. */
    atomic_store_explicit(&ws->triggered, false, memory_order_relaxed);
    atomic_store_explicit(&ws->remaining, n, memory_order_relaxed);
    atomic_store_explicit(&ws->refs, 1 + n, memory_order_relaxed);
    size_t skipped = 0;
    bool hit = false;
    for (size_t i = 0; i < n; i++) {
        wait_entry *e = &ws->entry[i];
        e->listener.fire = fire_entry;
        e->ws = ws;
        e->f = fs[i];
        if (gather__future_listen(fs[i], &e->listener))
            continue;
        skipped++; /* already done: listen() acquired its result */
        if (mode == GATHER__WAIT_ANY ||
            (mode == GATHER__WAIT_FAIL_FAST && failed(fs[i])))
            hit = true;
    }
    if (skipped > 0) {
        atomic_fetch_sub_explicit(&ws->refs, skipped,
                                  memory_order_relaxed); /* we hold one more */
        if (atomic_fetch_sub_explicit(&ws->remaining, skipped,
                                      memory_order_acq_rel) == skipped)
            hit = true;
    }
    if (hit)
        trigger(ws);
}

/* ---- the wait ------------------------------------------------------------ */


static bool expired(const struct timespec *deadline)
{
    if (deadline == NULL)
        return false;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* Could one of fs never be done for this thread? Tasks ask (one may run
 * beneath them); in a forked child every thread asks (a future of the
 * parent's pools may never finish there). */
static bool waits_on_caller(gather__worker *w, gather_future *const fs[],
                            size_t n)
{
    if (w == NULL &&
        atomic_load_explicit(&gather__fork_generation, memory_order_relaxed) == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (gather__future_never_done_for_caller(fs[i]))
            return true;
    return false;
}

static bool triggered(gather__waitset *ws)
{
    return atomic_load_explicit(&ws->triggered, memory_order_acquire);
}

/* On a pool thread with the waitset armed: help, or park until new work or
 * the condition. Returns false on timeout. */
static bool parked_sleep(gather__waitset *ws, const struct timespec *deadline)
{
    while (!triggered(ws)) {
        if (gather__park(&ws->parker, deadline) == ETIMEDOUT)
            return triggered(ws);
    }
    return true;
}

/* How long a deep wait parks before it looks at the queues again. */
#define DEEP_RECHECK_NS 1000000u

/*
 * A wait nested too deep to take other work (or any work, near the end of
 * its stack) parks for the condition; while it does, work it cannot run
 * may be queued (what it waits for, from outside, or its own spawns), so
 * it asks the pool for another thread to run it (blocking.c), and looks
 * again every millisecond and whenever new work wakes it (it is in the
 * registry, after every idle thread: wake_one prefers those).
 */
static bool deep_sleep(gather__worker *w, gather__waitset *ws,
                       const struct timespec *deadline)
{
    gather_pool *p = gather_current_pool();
    gather__sleep *s = gather__worker_sleep(w);
    bool in_time = true;
    gather__deep_wait_enter(p);
    /* relaxed, own line: not running, for the monitor and overfull checks. */
    atomic_store_explicit(&w->waiting, 1, memory_order_relaxed);
    while (!triggered(ws)) {
        gather__sleep_enter(s, &ws->parker, false);
        if (triggered(ws)) {
            gather__sleep_leave(s, &ws->parker);
            break;
        }
        if (gather__worker_work_visible(w))
            gather__deep_wait_compensate(p);
        struct timespec recheck;
        gather__deadline(&recheck, DEEP_RECHECK_NS);
        const struct timespec *until = deadline != NULL &&
            gather__ns(deadline) < gather__ns(&recheck) ? deadline : &recheck;
        int rc = gather__park(&ws->parker, until);
        gather__sleep_leave(s, &ws->parker);
        if (rc == ETIMEDOUT && until == deadline && !triggered(ws)) {
            in_time = false;
            break;
        }
    }
    atomic_store_explicit(&w->waiting, 0, memory_order_relaxed);
    gather__deep_wait_leave(p);
    return in_time;
}

static bool helping_sleep(gather__worker *w, gather__waitset *ws,
                          const struct timespec *deadline)
{
    if (gather__worker_helps_locally_only()) {
        /* Too deep to take other work: run what is left of our own deque
         * (nothing can be added to it while we wait) while the stack has
         * room, then park, with another thread running the work. */
        while (!triggered(ws) && gather__worker_help(w))
            ;
        return deep_sleep(w, ws, deadline);
    }
    gather__sleep *s = gather__worker_sleep(w);
    bool woken_for_work = false;
    bool in_time = true;
    while (!triggered(ws)) {
        if (gather__worker_help(w)) {
            woken_for_work = false;
            if (expired(deadline)) {
                in_time = false;
                break;
            }
            continue;
        }
        gather__sleep_enter(s, &ws->parker, false);
        if (triggered(ws) || gather__worker_work_visible(w)) {
            woken_for_work = !gather__sleep_leave(s, &ws->parker);
            continue;
        }
        /* relaxed, own line: tells the monitor that this worker is parked
         * where new work wakes it (not blocked, not running; blocking.c). */
        atomic_store_explicit(&w->waiting, 1, memory_order_relaxed);
        int rc = gather__park(&ws->parker, deadline);
        atomic_store_explicit(&w->waiting, 0, memory_order_relaxed);
        woken_for_work = !gather__sleep_leave(s, &ws->parker);
        if (rc == ETIMEDOUT && !triggered(ws)) {
            in_time = false;
            break;
        }
    }
    /* A submitter's wake-up that reached us as we leave must not be lost:
     * hand it to another sleeper. */
    if (woken_for_work && gather__worker_work_visible(w))
        gather__sleep_wake_one(s);
    return in_time;
}

int gather__wait(gather_future *const fs[], size_t n,
                 enum gather__wait_mode mode, const struct timespec *deadline,
                 bool *timed_out, gather__waitset *reserved)
{
    progress pg = {0, n, 0};
    bool in_time = true;
    int rc = 0;
    gather__worker *w = gather__worker_self();
    gather__waitset *ws = NULL;

    /* A task listing its own future (or one beneath it), or a forked child
     * listing a future its parent had not finished, gets EDEADLK at once,
     * before any other answer, except wait_any, which answers with a done
     * entry when there is one (as documented). */
    if (mode != GATHER__WAIT_ANY && waits_on_caller(w, fs, n)) {
        rc = EDEADLK;
        goto out;
    }
    if (check_full(fs, n, mode, &pg))
        goto out;
    if (mode == GATHER__WAIT_ANY && waits_on_caller(w, fs, n)) {
        rc = EDEADLK;
        goto out;
    }
    /* Helping without registering: the child we wait for is usually on top
     * of our own deque. */
    while (w != NULL) {
        if (expired(deadline)) {
            in_time = check_full(fs, n, mode, &pg);
            goto out;
        }
        if (!gather__worker_help(w))
            break;
        if (check_between_tasks(fs, n, mode, &pg))
            goto out;
    }
    if (check_full(fs, n, mode, &pg))
        goto out;
    /* A poll (timeout 0, or one that ran out while helping) looks only:
     * no waitset, nothing left listening, no sleep. */
    if (expired(deadline)) {
        in_time = false;
        goto out;
    }

    bool armed = false;
    if (reserved != NULL)
        ws = reserved;
    else
        ws = ws_get(fs, n, mode, &armed);
    reserved = NULL;
    if (ws == NULL) {
        rc = ENOMEM;
        goto out;
    }
    if (!armed)
        arm(ws, fs, n, mode);
    in_time = w != NULL ? helping_sleep(w, ws, deadline)
                        : parked_sleep(ws, deadline);
out:
    if (ws != NULL)
        ws_put(ws);
    if (reserved != NULL)
        ws_put(reserved);
    if (timed_out != NULL)
        *timed_out = !in_time;
    return rc;
}

/* ---- single-future waits ------------------------------------------------ */

/* Fork-join fast path: a task waiting for a child it has not seen start
 * runs the tasks of its own deque (newest first, so usually that child
 * first) until the child is done. A task that is not claimed cannot be
 * beneath the caller, so no deadlock check is needed here. */
static bool wait_on_own_deque(gather_future *f, uintptr_t state)
{
    gather__worker *w = gather__worker_self();
    if (w == NULL || (state & GATHER__CLAIMED))
        return false;
    while (gather__worker_help_local(w))
        if (gather__future_state(f) & GATHER__DONE)
            return true;
    return false;
}

int gather_future_wait(gather_future *f, void **value)
{
    if (f == NULL)
        return EINVAL;
    uintptr_t state = gather__future_state(f);
    if (!(state & GATHER__DONE) && !wait_on_own_deque(f, state)) {
        int rc = gather__wait(&f, 1, GATHER__WAIT_ALL, NULL, NULL, NULL);
        if (rc != 0)
            return rc;
    }
    if (value != NULL)
        *value = f->value;
    return f->error;
}

bool gather_future_wait_for(gather_future *f, uint64_t timeout_ns)
{
    if (f == NULL)
        return false;
    if (gather__future_state(f) & GATHER__DONE)
        return true;
    struct timespec deadline;
    if (timeout_ns != GATHER_FOREVER)
        gather__deadline(&deadline, timeout_ns);
    bool timed_out = false;
    /* EDEADLK, ENOMEM and timeouts all answer "not done". */
    (void)gather__wait(&f, 1, GATHER__WAIT_ALL,
                       timeout_ns != GATHER_FOREVER ? &deadline : NULL,
                       &timed_out, NULL);
    return gather_future_done(f);
}
