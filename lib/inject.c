/* SPDX-License-Identifier: MIT */
/*
 * inject.c - the injection queue: tasks submitted from threads that are not
 * workers of the pool, in a mutex-protected FIFO; and the "is any work
 * queued?" hint that the sleep protocol and the monitor read.
 *
 * Lock: inject_lock guards the queue and the store to `stopping`. A
 * submitter wakes a sleeper under it (inject_lock, then the sleep
 * registry's lock, then a parker's).
 */
#include "internal.h"

/*
 * Appends task f to its lane; 0, or ESHUTDOWN once the pool stopped taking
 * work from outside (the caller still owns f then). `counted`: f is counted
 * in the stats (not a gather_map chunk or a continuation, counted when
 * made). Only a push that makes the queue non-empty (read under the lock,
 * so exact) wakes a sleeper: while the queue is not empty, a worker woken
 * for its first task, or an awake worker's re-check before it parks, finds
 * the rest, and takers pass wake-ups on (worker.c). A blocking task always
 * wakes one: an overfull worker parks with CPU tasks queued, and only a
 * blocking task would make it stay. The wake-up is issued under
 * inject_lock, so that once the lock is released the submitter never
 * touches the pool again: the task may already have run and its waiter
 * destroyed the pool.
 */
int gather__inject_push(gather_pool *p, gather_future *f, bool counted,
                        bool inside)
{
    gather__lock(&p->inject_lock);
    /* relaxed: stopping is written under inject_lock, which we hold. */
    if (!inside && atomic_load_explicit(&p->stopping, memory_order_relaxed)) {
        gather__unlock(&p->inject_lock);
        return ESHUTDOWN;
    }
    f->next = NULL;
    /* relaxed: written only under the lock we hold; lock-free readers take
     * it as a hint, and the sleep protocol's barriers order it against the
     * sleeper count (sleep.c). */
    size_t len = atomic_load_explicit(&p->inject_len, memory_order_relaxed);
    unsigned lane = f->lane;
    if (p->lane[lane].tail != NULL)
        p->lane[lane].tail->next = f;
    else
        p->lane[lane].head = f;
    p->lane[lane].tail = f;
    atomic_store_explicit(&p->inject_len, len + 1, memory_order_relaxed);
    if (lane == GATHER__LANE_BLOCKING)
        atomic_store_explicit(&p->blocking_len,
                              atomic_load_explicit(&p->blocking_len, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    if (counted)
        atomic_fetch_add_explicit(&p->ext_submitted, 1, memory_order_relaxed);
    if (len == 0 || lane == GATHER__LANE_BLOCKING)
        gather__sleep_wake_one(&p->sleep);
    gather__unlock(&p->inject_lock);
    return 0;
}

/* The oldest task of the first non-empty lane up to `last` (lock held). */
static gather_future *inject_pop(gather_pool *p, unsigned last)
{
    for (unsigned lane = 0; lane <= last; lane++) {
        gather_future *f = p->lane[lane].head;
        if (f == NULL)
            continue;
        p->lane[lane].head = f->next;
        if (f->next == NULL)
            p->lane[lane].tail = NULL;
        atomic_store_explicit(&p->inject_len,
                              atomic_load_explicit(&p->inject_len, memory_order_relaxed) - 1,
                              memory_order_relaxed);
        if (lane == GATHER__LANE_BLOCKING)
            atomic_store_explicit(&p->blocking_len,
                                  atomic_load_explicit(&p->blocking_len, memory_order_relaxed) - 1,
                                  memory_order_relaxed);
        return f;
    }
    return NULL;
}

/*
 * Takes the oldest task of the first non-empty lane: blocking tasks first,
 * then higher priorities; within a lane, submission order. One task per
 * take, not a batch moved to our deque: a batch would wait behind this
 * worker when its first task blocks, and tasks submitted from outside
 * would no longer start in submission order across workers (users
 * saturating a pool with blocking tasks rely on that).
 */
gather_future *gather__inject_take(gather_pool *p, bool blocking_only)
{
    _Atomic size_t *len = blocking_only ? &p->blocking_len : &p->inject_len;
    if (atomic_load_explicit(len, memory_order_relaxed) == 0)
        return NULL;
    /* trylock: a busy lock means a submitter or another worker is at the
     * queue; rather than queue up behind it (futex sleeps on the submitter's
     * path), go steal or spin and look again. Nothing is missed: before it
     * parks, a worker re-checks inject_len (work_visible). */
    if (pthread_mutex_trylock(&p->inject_lock) != 0)
        return NULL;
    gather_future *f = inject_pop(p, blocking_only ? GATHER__LANE_BLOCKING
                                                   : GATHER__LANES - 1);
    gather__unlock(&p->inject_lock);
    return f;
}

gather_future *gather__inject_take_all(gather_pool *p)
{
    gather__lock(&p->inject_lock);
    gather_future *all = NULL, **tail = &all;
    for (unsigned lane = 0; lane < GATHER__LANES; lane++) {
        if (p->lane[lane].head == NULL)
            continue;
        *tail = p->lane[lane].head;
        tail = &p->lane[lane].tail->next;
        p->lane[lane].head = p->lane[lane].tail = NULL;
    }
    atomic_store_explicit(&p->inject_len, 0, memory_order_relaxed);
    atomic_store_explicit(&p->blocking_len, 0, memory_order_relaxed);
    gather__unlock(&p->inject_lock);
    return all;
}

bool gather__pool_work_visible(void *pool)
{
    gather_pool *p = pool;
    if (atomic_load_explicit(&p->inject_len, memory_order_seq_cst) != 0)
        return true;
    size_t n;
    gather__worker *const *w = gather__pool_workers(p, &n);
    for (size_t i = 0; i < n; i++)
        if (gather__deque_nonempty(&w[i]->deque))
            return true;
    return false;
}

size_t gather__pool_queued(gather_pool *p)
{
    /* relaxed: an estimate for the monitor; a wrong one costs a spare
     * started too few or too many, which the next tick corrects. */
    size_t q = atomic_load_explicit(&p->inject_len, memory_order_relaxed);
    size_t n;
    gather__worker *const *w = gather__pool_workers(p, &n);
    for (size_t i = 0; i < n; i++) {
        int64_t len = atomic_load_explicit(&w[i]->deque.bottom, memory_order_relaxed) -
                      atomic_load_explicit(&w[i]->deque.top, memory_order_relaxed);
        if (len > 0)
            q += (size_t)len;
    }
    return q;
}
