/* SPDX-License-Identifier: MIT */
/*
 * sleep.c - parkers, and the registry through which new work wakes one
 * sleeping thread.
 *
 * DESIGN: a parker is a mutex, a CLOCK_MONOTONIC condition variable and a
 * token (after Java's LockSupport.park). An idle worker parks on its own
 * parker; a pool thread waiting inside a task parks on its wait record's
 * parker (wait.c), so that both "work arrived" and "what you wait for is
 * done" can wake it. A sleeping parker is listed in its pool's registry.
 *
 * No lost wake-up (the Dekker pattern; proof sketch in docs/design.md):
 *   sleeper:   enter registry (sleepers++) ; heavy barrier ; re-check the
 *              queues ; park
 *   submitter: publish task ; light barrier ; load sleepers ; if > 0, take
 *              a parker out of the registry and unpark it
 * (heavy/light: membarrier + compiler barrier, or two seq_cst fences.)
 * Either the submitter sees sleepers > 0, or the sleeper's re-check sees the
 * task. A waker removes the parker it wakes from the registry, so each
 * wake-up goes to a different sleeper: wake one, never all.
 *
 * Locks: registry lock `s->lock` guards the list and the idle count. A
 * parker's lock guards its token. Nesting: registry lock, then a parker's
 * lock (wakers unpark under the registry lock, so that a parker that has
 * left the registry is never touched again). Nothing else is taken while
 * either is held.
 */
#include "internal.h"

#include <sched.h>
#include <stdlib.h>
#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

/*
 * Asymmetric fences. The Dekker pattern needs a full barrier on both sides;
 * the submitter's side runs on every submission, the sleeper's side only
 * when a thread is about to park. Where Linux offers
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), the sleeper issues it (it
 * makes every running thread of the process execute a full barrier) and the
 * submitter needs only a compiler barrier: the same guarantee as two
 * fences (membarrier(2); liburcu and folly's asymmetric barriers rely on
 * it). Elsewhere, or with GATHER_MEMBARRIER=0 in the environment, both sides
 * use seq_cst fences.
 */
#ifdef GATHER__TSAN
_Atomic unsigned gather__tsan_fence_word;
#endif

static pthread_once_t barrier_once = PTHREAD_ONCE_INIT;
static atomic_bool use_membarrier; /* written once, under barrier_once */

static void barrier_init(void)
{
#if defined(__linux__) && defined(__NR_membarrier)
    const char *env = getenv("GATHER_MEMBARRIER");
    if (env != NULL && env[0] == '0')
        return;
    long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0);
    if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) ||
        !(cmds & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED))
        return;
    if (syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) != 0)
        return;
    atomic_store_explicit(&use_membarrier, true, memory_order_relaxed);
#endif
}

void gather__barrier_init(void)
{
    pthread_once(&barrier_once, barrier_init);
}

void gather__barrier_after_fork(void)
{
    /* The child is single-threaded here. Registration is per process:
     * renew it (a no-op where the kernel copied it), and fall back to
     * fences if the kernel refuses. */
#if defined(__linux__) && defined(__NR_membarrier)
    if (atomic_load_explicit(&use_membarrier, memory_order_relaxed) &&
        syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) != 0)
        atomic_store_explicit(&use_membarrier, false, memory_order_relaxed);
#endif
}

/* The sleeper's heavy side. */
static void heavy_barrier(void)
{
#if defined(__linux__) && defined(__NR_membarrier)
    if (atomic_load_explicit(&use_membarrier, memory_order_relaxed) &&
        syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) == 0)
        return;
#endif
    gather__fence_seq_cst();
}

/* The submitter's light side. */
static inline void light_barrier(void)
{
    /* relaxed: use_membarrier is set once, before any pool thread exists
     * (gather__barrier_init from pool creation), and never changes. A
     * failing membarrier() call falls back to a fence on the heavy side
     * only, which is why that call cannot fail here in practice: the
     * registration succeeded. */
    if (atomic_load_explicit(&use_membarrier, memory_order_relaxed))
        atomic_signal_fence(memory_order_seq_cst);
    else
        gather__fence_seq_cst();
}

int gather__parker_init(gather__parker *p)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc != 0)
        return rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&p->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0)
        return rc;
    rc = pthread_mutex_init(&p->lock, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&p->cond);
        return rc;
    }
    p->notified = false;
    p->prev = p->next = NULL;
    p->registered = false;
    p->idle = false;
    return 0;
}

void gather__parker_destroy(gather__parker *p)
{
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
}

int gather__park(gather__parker *p, const struct timespec *deadline)
{
    int rc = 0;
    gather__lock(&p->lock);
    /* p->lock is held at every test of the token. */
    while (!p->notified && rc == 0) {
        if (deadline == NULL)
            pthread_cond_wait(&p->cond, &p->lock);
        else
            rc = pthread_cond_timedwait(&p->cond, &p->lock, deadline);
    }
    if (p->notified) {
        p->notified = false;
        rc = 0;
    }
    gather__unlock(&p->lock);
    return rc;
}

void gather__unpark(gather__parker *p)
{
    gather__lock(&p->lock);
    p->notified = true;
    pthread_cond_signal(&p->cond);
    gather__unlock(&p->lock);
}

int gather__sleep_init(gather__sleep *s)
{
    int rc = pthread_mutex_init(&s->lock, NULL);
    if (rc != 0)
        return rc;
    s->head = s->tail = NULL;
    atomic_init(&s->idle, 0);
    atomic_init(&s->alive, 0);
    atomic_init(&s->sleepers, 0);
    atomic_init(&s->retiring, 0);
    s->closed = false;
    s->watcher = NULL;
    return 0;
}

void gather__sleep_destroy(gather__sleep *s)
{
    pthread_mutex_destroy(&s->lock);
}

/* s->lock held: the counters it guards change only under it, so a plain
 * read-modify-write suffices; relaxed, because lock-free readers (the
 * monitor, stats) only take them as hints. */
static void inc(_Atomic size_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static void dec(_Atomic size_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - 1,
                          memory_order_relaxed);
}

/* s->lock held. */
static void unlink_parker(gather__sleep *s, gather__parker *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        s->head = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    else
        s->tail = p->prev;
    p->prev = p->next = NULL;
    p->registered = false;
    if (p->idle)
        dec(&s->idle);
    /* relaxed: only a hint for wakers, who re-check under the lock. */
    atomic_fetch_sub_explicit(&s->sleepers, 1, memory_order_relaxed);
}

/*
 * Idle workers go to the head of the list, waiting tasks to the tail:
 * wakers take the head, so new work goes to an idle worker first, and to a
 * task parked in a wait (which would run it on top of itself, delaying its
 * own return) only when no idle worker sleeps.
 */
bool gather__sleep_enter(gather__sleep *s, gather__parker *p, bool idle)
{
    gather__lock(&s->lock);
    p->idle = idle;
    p->registered = true;
    if (idle) {
        p->prev = NULL;
        p->next = s->head;
        if (s->head != NULL)
            s->head->prev = p;
        else
            s->tail = p;
        s->head = p;
        inc(&s->idle);
    } else {
        p->next = NULL;
        p->prev = s->tail;
        if (s->tail != NULL)
            s->tail->next = p;
        else
            s->head = p;
        s->tail = p;
    }
    bool all_idle = atomic_load_explicit(&s->idle, memory_order_relaxed) ==
                    atomic_load_explicit(&s->alive, memory_order_relaxed);
    /* seq_cst: the sleeper's half of the Dekker pattern; ordered before the
     * re-check of the queues that the caller does next. */
    atomic_fetch_add_explicit(&s->sleepers, 1, memory_order_seq_cst);
    gather__unlock(&s->lock);
    /* The sleeper's barrier, pairing with light_barrier() in
     * gather__sleep_wake_n(): with two seq_cst fences, whichever comes
     * second in the single total order sees the other side's write (C11
     * 7.17.3, the rule on fences X and Y); with membarrier, the submitter's
     * compiler barrier is promoted to a full barrier (docs/design.md). */
    heavy_barrier();
    return all_idle;
}

/* s->lock held. The first thread to leave an idle pool wakes the watcher
 * (the monitor of an elastic pool, blocking.c), which sleeps while every
 * thread is idle. Done by the thread that leaves, not by its waker, so a
 * submitter's path is not lengthened. */
static void wake_watcher(gather__sleep *s)
{
    if (s->watcher != NULL) {
        gather__parker *w = s->watcher;
        s->watcher = NULL;
        gather__unpark(w);
    }
}

bool gather__sleep_leave(gather__sleep *s, gather__parker *p)
{
    gather__lock(&s->lock);
    bool was = p->registered;
    if (was)
        unlink_parker(s, p);
    wake_watcher(s);
    gather__unlock(&s->lock);
    return was;
}

void gather__sleep_unadmit(gather__sleep *s)
{
    gather__lock(&s->lock);
    dec(&s->alive);
    gather__unlock(&s->lock);
}

void gather__sleep_retired(gather__sleep *s)
{
    /* release: the thread's touches of the pool happen before a destroy's
     * acquire load that sees the count drop. */
    atomic_fetch_sub_explicit(&s->retiring, 1, memory_order_release);
}

void gather__sleep_close(gather__sleep *s)
{
    /* After this no thread retires (they exit as destroy tells them); a
     * few instructions separate an earlier retire from its last touch:
     * yield. The lock orders the load after any retire. */
    gather__lock(&s->lock);
    s->closed = true;
    gather__unlock(&s->lock);
    while (atomic_load_explicit(&s->retiring, memory_order_acquire) != 0)
        sched_yield();
}

bool gather__sleep_watch(gather__sleep *s, gather__parker *watcher)
{
    gather__lock(&s->lock);
    bool idle = atomic_load_explicit(&s->idle, memory_order_relaxed) ==
                atomic_load_explicit(&s->alive, memory_order_relaxed);
    if (idle)
        s->watcher = watcher;
    gather__unlock(&s->lock);
    return idle;
}

void gather__sleep_unwatch(gather__sleep *s)
{
    gather__lock(&s->lock);
    s->watcher = NULL;
    gather__unlock(&s->lock);
}

bool gather__sleep_admit(gather__sleep *s, size_t limit, size_t *alive)
{
    gather__lock(&s->lock);
    size_t n = atomic_load_explicit(&s->alive, memory_order_relaxed);
    bool ok = n < limit;
    if (ok)
        inc(&s->alive);
    *alive = ok ? n + 1 : n;
    gather__unlock(&s->lock);
    return ok;
}

bool gather__sleep_retire(gather__sleep *s, gather__parker *p, size_t keep)
{
    gather__lock(&s->lock);
    bool taken = p != NULL && !p->registered;
    bool retire = false;
    if (p != NULL && p->registered)
        unlink_parker(s, p);
    /* A parker a waker already took was woken for work: it stays. */
    if (!taken && !s->closed &&
        atomic_load_explicit(&s->alive, memory_order_relaxed) > keep) {
        dec(&s->alive);
        /* relaxed: ordered by the lock for gather__sleep_close,
         * which reads it after quiescence was observed under this lock. */
        atomic_fetch_add_explicit(&s->retiring, 1, memory_order_relaxed);
        retire = true;
    }
    gather__unlock(&s->lock);
    return retire;
}

size_t gather__sleep_wake_n(gather__sleep *s, size_t n)
{
    /* The submitter's half of the Dekker pattern: the tasks were published
     * before it, the sleeper count is read after it. */
    light_barrier();
    if (atomic_load_explicit(&s->sleepers, memory_order_relaxed) == 0)
        return 0;
    size_t woken = 0;
    gather__lock(&s->lock);
    for (; woken < n && s->head != NULL; woken++) {
        gather__parker *p = s->head;
        unlink_parker(s, p);
        gather__unpark(p);
    }
    gather__unlock(&s->lock);
    return woken;
}

void gather__sleep_wake_one(gather__sleep *s)
{
    (void)gather__sleep_wake_n(s, 1);
}

void gather__sleep_wake_all(gather__sleep *s)
{
    /* The flag the sleepers must see (stopping, exiting) was stored before
     * the call: the same pairing as for a published task. */
    (void)gather__sleep_wake_n(s, SIZE_MAX);
}

bool gather__sleep_quiescent(gather__sleep *s, bool (*work_visible)(void *),
                             void *ctx)
{
    gather__lock(&s->lock);
    bool quiet = atomic_load_explicit(&s->idle, memory_order_relaxed) ==
                     atomic_load_explicit(&s->alive, memory_order_relaxed) &&
                 !work_visible(ctx);
    gather__unlock(&s->lock);
    return quiet;
}
