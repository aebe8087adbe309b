/* SPDX-License-Identifier: MIT */
/*
 * pool.c - a pool's life: create, shutdown, destroy, resize; starting its
 * worker threads; submit; stats.
 *
 * Threads: a pool has `threads` workers from the start; an elastic one
 * (blocking.c) adds spares up to `max_threads`. Every thread has a slot (a
 * worker with its deque) in `slots`; a slot is never freed before the pool
 * is, so thieves may look at any slot ever published. A thread that leaves
 * marks its slot ZOMBIE and is joined by the monitor (woken for it), or by
 * a later start that reuses the slot,
 * and destroy joins whatever is left. The live count is the sleep
 * registry's `alive` (changed under its lock, so that quiescence compares
 * it with the idle count exactly).
 *
 * Drain: shutdown sets `stopping` under the injection lock, after which no
 * thread outside the pool can add work. The pool is drained when all its
 * live threads are registered idle and no queue holds a task: then no task
 * runs (a running task's worker is not idle), none can be added, and none
 * is queued. The last worker to go idle, or shutdown itself, observes this
 * under the sleep registry's lock (gather__sleep_quiescent) and sets
 * `drained`. Nothing is counted per task for it.
 *
 * Locks: grow_lock guards the slots, thread starts, resize and the monitor
 * pointer; inject_lock guards the injection queue and the store to
 * `stopping`; drain_lock guards `drained` and `shutdown_waiters`. Nesting:
 * grow_lock, then the sleep registry's lock (gather__sleep_admit); a
 * submitter wakes sleepers under inject_lock (inject_lock, then the sleep
 * registry's lock, then a parker's; inject.c). No other lock is held while
 * another is taken; gather__sleep_quiescent() reads the queues' atomics
 * (not their locks) under the registry lock.
 */
#include "internal.h"

#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Slots allocated at first; the array doubles when full. */
#define SLOTS_INITIAL 8

_Static_assert(offsetof(gather__worker, deque) == 0,
               "the deque leads the worker, on its own cache lines");
_Static_assert(sizeof(gather__worker) % GATHER__CACHELINE == 0,
               "workers do not share cache lines");

/* ---- small helpers ------------------------------------------------------ */

static void add_to(_Atomic uint64_t *counter, uint64_t n)
{
    /* Single writer: a plain increment is enough and costs no lock prefix. */
    atomic_store_explicit(counter,
                          atomic_load_explicit(counter, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

bool gather__pool_cancelling(const gather_pool *pool)
{
    /* relaxed: a flag polled by tasks; nothing is published through it. */
    return atomic_load_explicit(&((gather_pool *)pool)->cancelling,
                                memory_order_relaxed);
}

void gather__pool_count_cancel(gather_pool *pool)
{
    atomic_fetch_add_explicit(&pool->ext_cancelled, 1, memory_order_relaxed);
}

static bool on_own_thread(const gather_pool *p)
{
    gather__worker *w = gather__worker_self();
    return w != NULL && w->pool == p;
}

size_t gather__cpu_count(void)
{
    size_t n = 0;
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = (size_t)CPU_COUNT(&set);
#endif
    if (n == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online > 0 ? (size_t)online : 1;
    }
    return n > GATHER__MAX_THREADS ? GATHER__MAX_THREADS : n;
}

static size_t stack_size_for(size_t requested)
{
    if (requested == 0)
        return 0;
    long page = sysconf(_SC_PAGESIZE);
    size_t pg = page > 0 ? (size_t)page : 4096;
    size_t min = PTHREAD_STACK_MIN;
    if (requested < min)
        requested = min;
    if (requested > SIZE_MAX - pg)
        return SIZE_MAX; /* refused by pthread_attr_setstacksize: EINVAL */
    return (requested + pg - 1) / pg * pg;
}

/* threads and max_threads as gather_pool_create and resize read them;
 * EINVAL for values out of range (SPEC.md, "Blocking work"). */
static int sizes_for(size_t threads, size_t max, size_t *t_out, size_t *m_out)
{
    if (threads > GATHER__MAX_THREADS || max > GATHER__MAX_SPARE_THREADS)
        return EINVAL;
    if (threads != 0 && max != 0 && max < threads)
        return EINVAL;
    size_t t = threads != 0 ? threads : gather__cpu_count();
    *t_out = t;
    *m_out = max < t ? t : max; /* 0, or below the CPUs: raised */
    return 0;
}

/* ---- worker slots ------------------------------------------------------- */

static int init_worker(gather_pool *p, gather__worker *w, size_t i)
{
    memset(w, 0, sizeof *w);
    if (gather__deque_init(&w->deque, 64) != 0)
        return ENOMEM;
    if (gather__parker_init(&w->parker) != 0) {
        gather__deque_destroy(&w->deque);
        return ENOMEM;
    }
    w->pool = p;
    w->index = i;
    w->rng = 0x9E3779B97F4A7C15ull * (i + 1) ^ (uint64_t)(uintptr_t)p;
    if (w->rng == 0)
        w->rng = 1;
    return 0;
}

static void free_worker(gather__worker *w)
{
    while (w->cache != NULL) {
        gather_future *f = w->cache;
        w->cache = f->next;
        gather__free(f);
    }
    gather__parker_destroy(&w->parker);
    gather__deque_destroy(&w->deque);
    gather__free_aligned(w);
}

/* Joins w's thread if it has left (ZOMBIE); true when it did. grow_lock
 * held, or destroy. */
static bool reap_slot(gather_pool *p, gather__worker *w)
{
    /* acquire: pairs with the leaving thread's release store. */
    if (atomic_load_explicit(&w->slot_state, memory_order_acquire) != GATHER__SLOT_ZOMBIE)
        return false;
    pthread_join(w->thread, NULL);
    atomic_store_explicit(&w->slot_state, GATHER__SLOT_FREE, memory_order_relaxed);
    atomic_fetch_sub_explicit(&p->zombies, 1, memory_order_relaxed);
    return true;
}

void gather__pool_reap(gather_pool *p)
{
    size_t n;
    gather__worker *const *slot = gather__pool_workers(p, &n);
    for (size_t i = 0; i < n; i++)
        reap_slot(p, slot[i]);
}

/* A slot whose thread is gone (joined here) or was never started; else a
 * new one, published to readers. grow_lock held. NULL: out of memory. */
static gather__worker *take_slot(gather_pool *p)
{
    size_t n = atomic_load_explicit(&p->nslots, memory_order_relaxed);
    gather__slots *s = atomic_load_explicit(&p->slots, memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        gather__worker *w = s->w[i];
        reap_slot(p, w);
        if (atomic_load_explicit(&w->slot_state, memory_order_relaxed) == GATHER__SLOT_FREE)
            return w;
    }
    if (s == NULL || n == s->cap) {
        size_t cap = s == NULL ? SLOTS_INITIAL : s->cap * 2;
        gather__slots *bigger = gather__malloc(sizeof *bigger + cap * sizeof bigger->w[0]);
        if (bigger == NULL)
            return NULL;
        bigger->cap = cap;
        bigger->retired = s;
        for (size_t i = 0; i < n; i++)
            bigger->w[i] = s->w[i];
        /* release: readers that load this array see its entries. */
        atomic_store_explicit(&p->slots, bigger, memory_order_release);
        s = bigger;
    }
    gather__worker *w = gather__malloc_aligned(sizeof *w, GATHER__CACHELINE);
    if (w == NULL)
        return NULL;
    if (init_worker(p, w, n) != 0) {
        gather__free_aligned(w);
        return NULL;
    }
    s->w[n] = w;
    /* release: a reader that sees the count sees the entry and the worker
     * (and the array holding it, stored before). */
    atomic_store_explicit(&p->nslots, n + 1, memory_order_release);
    return w;
}

/* Starts w's thread; 0, EINVAL (stack size refused) or EAGAIN. */
static int spawn(gather_pool *p, gather__worker *w)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return EAGAIN;
    int rc = 0;
    if (p->stack_size != 0 && pthread_attr_setstacksize(&attr, p->stack_size) != 0)
        rc = EINVAL;
    if (rc == 0) {
        atomic_store_explicit(&w->slot_state, GATHER__SLOT_LIVE, memory_order_relaxed);
        atomic_store_explicit(&w->started_ns, gather__now_ns(), memory_order_relaxed);
        int err = pthread_create(&w->thread, &attr, gather__worker_main, w);
        if (err != 0) {
            gather__fault();
            atomic_store_explicit(&w->slot_state, GATHER__SLOT_FREE, memory_order_relaxed);
            rc = err == EINVAL ? EINVAL : EAGAIN;
        }
    }
    pthread_attr_destroy(&attr);
    return rc;
}

int gather__pool_start_worker(gather_pool *p, size_t limit, bool spare)
{
    size_t alive;
    if (!gather__sleep_admit(&p->sleep, limit, &alive))
        return EAGAIN;
    gather__worker *w = take_slot(p);
    /* Counted before the thread starts, so that a task it runs is never
     * seen done before its thread is counted; undone if the start fails.
     * relaxed: statistics, written under grow_lock. */
    uint64_t peak = atomic_load_explicit(&p->threads_peak, memory_order_relaxed);
    if (alive > peak)
        atomic_store_explicit(&p->threads_peak, alive, memory_order_relaxed);
    if (spare)
        add_to(&p->spares_started, 1);
    int rc = w != NULL ? spawn(p, w) : ENOMEM;
    if (rc != 0) {
        atomic_store_explicit(&p->threads_peak, peak, memory_order_relaxed);
        if (spare)
            add_to(&p->spares_started, (uint64_t)-1);
        gather__sleep_unadmit(&p->sleep);
        /* The last worker may have gone idle while this thread was still
         * counted, and made no drain check then (found with
         * lib/elastic.pml): make it now. Lock nesting: grow_lock, then the
         * registry's, then drain_lock. */
        if (atomic_load_explicit(&p->stopping, memory_order_acquire))
            gather__pool_check_drained(p);
        return rc;
    }
    return 0;
}

/* Destroy, or a failed create: every thread has been told to exit. */
static void join_threads(gather_pool *p)
{
    size_t n;
    gather__worker *const *slot = gather__pool_workers(p, &n);
    for (size_t i = 0; i < n; i++) {
        /* LIVE or ZOMBIE, read once: a LIVE thread may turn ZOMBIE at any
         * moment, and is joined either way. acquire: pairs with its
         * release store. */
        if (atomic_load_explicit(&slot[i]->slot_state, memory_order_acquire) !=
            GATHER__SLOT_FREE) {
            pthread_join(slot[i]->thread, NULL);
            atomic_store_explicit(&slot[i]->slot_state, GATHER__SLOT_FREE,
                                  memory_order_relaxed);
        }
    }
}


static void stop_threads(gather_pool *p)
{
    /* Order: no more retiring and every retired thread past its last
     * touch (it may wake the monitor), then the monitor, then the rest. */
    gather__sleep_close(&p->sleep);
    gather__monitor_stop(p);
    atomic_store_explicit(&p->exiting, true, memory_order_release);
    gather__sleep_wake_all(&p->sleep);
    join_threads(p);
}

static void free_pool(gather_pool *p)
{
    size_t n;
    gather__worker *const *slot = gather__pool_workers(p, &n);
    for (size_t i = 0; i < n; i++)
        free_worker(slot[i]);
    gather__slots *s = atomic_load_explicit(&p->slots, memory_order_relaxed);
    while (s != NULL) {
        gather__slots *older = s->retired;
        gather__free(s);
        s = older;
    }
    pthread_cond_destroy(&p->drain_cond);
    pthread_mutex_destroy(&p->drain_lock);
    gather__sleep_destroy(&p->sleep);
    pthread_mutex_destroy(&p->inject_lock);
    pthread_mutex_destroy(&p->grow_lock);
    gather__free(p->name);
    gather__free_aligned(p);
}

/* ---- create ------------------------------------------------------------- */

static int init_locks(gather_pool *p)
{
    if (pthread_mutex_init(&p->inject_lock, NULL) != 0)
        return ENOMEM;
    if (gather__sleep_init(&p->sleep) != 0)
        goto fail_sleep;
    if (pthread_mutex_init(&p->drain_lock, NULL) != 0)
        goto fail_drain_lock;
    if (pthread_cond_init(&p->drain_cond, NULL) != 0)
        goto fail_drain_cond;
    if (pthread_mutex_init(&p->grow_lock, NULL) != 0)
        goto fail_grow_lock;
    return 0;
fail_grow_lock:
    pthread_cond_destroy(&p->drain_cond);
fail_drain_cond:
    pthread_mutex_destroy(&p->drain_lock);
fail_drain_lock:
    gather__sleep_destroy(&p->sleep);
fail_sleep:
    pthread_mutex_destroy(&p->inject_lock);
    return ENOMEM;
}

/* Starts the `threads` workers, and the monitor of an elastic pool. */
static int start_threads(gather_pool *p, size_t threads)
{
    int rc = 0;
    gather__lock(&p->grow_lock);
    for (size_t i = 0; i < threads && rc == 0; i++)
        rc = gather__pool_start_worker(p, threads, false);
    if (rc == 0 && gather__elastic(p))
        rc = gather__monitor_start(p);
    gather__unlock(&p->grow_lock);
    return rc;
}

int gather__pool_create(gather_pool **out, const gather_pool_options *opts,
                        bool is_default)
{
    size_t threads, max;
    int rc = sizes_for(opts != NULL ? opts->threads : 0,
                       opts != NULL ? opts->max_threads : 0, &threads, &max);
    if (rc != 0)
        return rc;
    const char *name = opts != NULL && opts->name != NULL ? opts->name : "gather";
    gather__barrier_init();
    gather__fork_handlers_once();

    gather_pool *p = gather__malloc_aligned(sizeof *p, GATHER__CACHELINE);
    if (p == NULL)
        return ENOMEM;
    memset(p, 0, sizeof *p);
    atomic_init(&p->threads, threads);
    atomic_init(&p->max_threads, max);
    atomic_init(&p->slots, NULL);
    atomic_init(&p->monitor, NULL);
    atomic_init(&p->zombies, 0);
    atomic_init(&p->nslots, 0);
    atomic_init(&p->threads_peak, 0);
    atomic_init(&p->spares_started, 0);
    p->is_default = is_default;
    p->generation = atomic_load_explicit(&gather__fork_generation,
                                         memory_order_relaxed);
    p->stack_size = stack_size_for(opts != NULL ? opts->stack_size : 0);
    atomic_init(&p->inject_len, 0);
    atomic_init(&p->blocking_len, 0);
    atomic_init(&p->stopping, false);
    atomic_init(&p->cancelling, false);
    atomic_init(&p->exiting, false);
    atomic_init(&p->ext_submitted, 0);
    atomic_init(&p->ext_cancelled, 0);
    atomic_init(&p->holds, 1); /* the owner's */

    size_t name_len = strlen(name);
    p->name = gather__malloc(name_len + 1);
    if (p->name == NULL) {
        gather__free_aligned(p);
        return ENOMEM;
    }
    memcpy(p->name, name, name_len + 1);
    if (init_locks(p) != 0) {
        gather__free(p->name);
        gather__free_aligned(p);
        return ENOMEM;
    }
    rc = start_threads(p, threads);
    if (rc != 0) {
        stop_threads(p);
        free_pool(p);
        return rc;
    }
    /* A pool exists from here on: its blocks must be freed by the allocator
     * that made them, so the allocator can no longer change. (A failed
     * create freed everything it allocated.) */
    gather__allocator_freeze();
    *out = p;
    return 0;
}

int gather_pool_create(gather_pool **pool, const gather_pool_options *opts)
{
    if (pool == NULL)
        return EINVAL;
    *pool = NULL;
    return gather__pool_create(pool, opts, false);
}

/* ---- shutdown, destroy -------------------------------------------------- */

void gather__pool_check_drained(gather_pool *p)
{
    if (!gather__sleep_quiescent(&p->sleep, gather__pool_work_visible, p))
        return;
    gather__lock(&p->drain_lock);
    /* A sweep holds tasks it took from the queues: not drained until it
     * has completed them (it checks again when it ends). */
    if (p->sweeping == 0) {
        p->drained = true;
        pthread_cond_broadcast(&p->drain_cond);
    }
    gather__unlock(&p->drain_lock);
}

/* A task taken from p's queues by a cancelling shutdown: cancelled, except
 * a gather_map chunk, which runs here and cancels its jobs itself (the
 * pool is cancelling, so it runs none of them). */
static void sweep_one(gather_pool *p, gather_future *f)
{
    if (!gather__future_try_claim(f)) {
        gather__discard_cancelled(f); /* a canceller got it first */
        return;
    }
    if (f->kind == GATHER__CHUNK) {
        void *result = NULL;
        int rc = f->fn(f->arg, &result);
        gather__future_complete_release(f, rc, result, false);
        return;
    }
    gather__pool_count_cancel(p);
    void (*over)(gather_future *) = gather__ops(f)->task_over;
    if (over != NULL)
        over(f); /* say, arg_free: before DONE */
    gather__future_complete_release(f, ECANCELED, NULL, true);
}

/*
 * GATHER_CANCEL_PENDING: cancels every queued task now, on the calling
 * thread, instead of when a worker would have popped it: with every worker
 * in a long task, their waiters are woken at once (SPEC.md). Takes the
 * injection queue and steals from every deque (any thread may steal); what
 * workers pop meanwhile they cancel themselves, as the pool is cancelling.
 */
static void sweep_queued(gather_pool *p)
{
    gather__lock(&p->drain_lock);
    p->sweeping++;
    gather__unlock(&p->drain_lock);
    gather_future *f;
    while ((f = gather__inject_take_all(p)) != NULL) {
        while (f != NULL) {
            gather_future *next = f->next;
            sweep_one(p, f);
            f = next;
        }
    }
    size_t n;
    gather__worker *const *slot = gather__pool_workers(p, &n);
    for (size_t i = 0; i < n; i++) {
        void *item;
        int rc;
        while ((rc = gather__deque_steal(&slot[i]->deque, &item)) != ENOENT)
            if (rc == 0)
                sweep_one(p, item);
    }
    gather__lock(&p->drain_lock);
    p->sweeping--;
    gather__unlock(&p->drain_lock);
    gather__pool_check_drained(p);
}

int gather_pool_shutdown(gather_pool *pool, unsigned flags)
{
    if (pool == NULL || (flags & ~GATHER_CANCEL_PENDING) != 0 || pool->is_default)
        return EINVAL;
    if (gather__pool_from_parent(pool))
        return ESHUTDOWN; /* its threads and locks are the parent's */
    if (on_own_thread(pool))
        return EDEADLK;
    /* Counted before touching anything else: a concurrent destroy frees the
     * pool only once every caller in here has left (found with lib/drain.pml). */
    gather__lock(&pool->drain_lock);
    pool->shutdown_waiters++;
    gather__unlock(&pool->drain_lock);
    if (flags & GATHER_CANCEL_PENDING)
        atomic_store_explicit(&pool->cancelling, true, memory_order_relaxed);
    gather__lock(&pool->inject_lock);
    /* release: a worker that reads stopping == true (acquire, idle_wait)
     * also sees every task pushed before it. */
    atomic_store_explicit(&pool->stopping, true, memory_order_release);
    gather__unlock(&pool->inject_lock);
    if (flags & GATHER_CANCEL_PENDING)
        sweep_queued(pool);
    /* Wake sleepers so that queued tasks are cancelled promptly and the
     * last idle worker re-checks for the drain. */
    gather__sleep_wake_all(&pool->sleep);
    gather__pool_check_drained(pool);
    gather__lock(&pool->drain_lock);
    while (!pool->drained)
        pthread_cond_wait(&pool->drain_cond, &pool->drain_lock);
    pool->shutdown_waiters--;
    pthread_cond_broadcast(&pool->drain_cond); /* a destroy may wait for us */
    gather__unlock(&pool->drain_lock);
    return 0;
}

int gather_pool_destroy(gather_pool *pool)
{
    int rc = gather_pool_shutdown(pool, 0);
    if (rc != 0)
        return rc;
    /* Other threads may still be returning from gather_pool_shutdown() on
     * this pool, or from a submit that was refused (it held inject_lock),
     * or from a resize (grow_lock): let them leave before the pool is
     * freed. */
    gather__lock(&pool->drain_lock);
    while (pool->shutdown_waiters > 0)
        pthread_cond_wait(&pool->drain_cond, &pool->drain_lock);
    gather__unlock(&pool->drain_lock);
    gather__lock(&pool->inject_lock);
    gather__unlock(&pool->inject_lock);
    gather__lock(&pool->grow_lock);
    gather__unlock(&pool->grow_lock);
    stop_threads(pool);
    gather__pool_unhold(pool); /* the owner's hold: freed unless held */
    return 0;
}

void gather__pool_hold(gather_pool *p)
{
    /* relaxed: the caller already has the pool alive (its own hold). */
    atomic_fetch_add_explicit(&p->holds, 1, memory_order_relaxed);
}

void gather__pool_unhold(gather_pool *p)
{
    /* acq_rel: the last one frees after every holder's use of the pool. */
    if (atomic_fetch_sub_explicit(&p->holds, 1, memory_order_acq_rel) == 1)
        free_pool(p);
}

size_t gather_pool_threads(const gather_pool *pool)
{
    int err;
    gather_pool *p = gather__pool_resolve(pool, &err);
    return p != NULL ? atomic_load_explicit(&p->threads, memory_order_relaxed) : 0;
}

/* ---- resize ------------------------------------------------------------- */

int gather_pool_resize(gather_pool *pool, size_t threads, size_t max_threads)
{
    int err = 0;
    gather_pool *p = gather__pool_resolve(pool, &err);
    if (p == NULL)
        return err;
    size_t t, m;
    int rc = sizes_for(threads, max_threads, &t, &m);
    if (rc != 0)
        return rc;
    gather__lock(&p->grow_lock);
    /* relaxed: stopping is only ever set; a resize racing with shutdown
     * either lands before the drain (and its threads help it) or is
     * refused. */
    if (atomic_load_explicit(&p->stopping, memory_order_relaxed)) {
        gather__unlock(&p->grow_lock);
        return ESHUTDOWN;
    }
    atomic_store_explicit(&p->threads, t, memory_order_relaxed);
    atomic_store_explicit(&p->max_threads, m, memory_order_relaxed);
    /* The missing workers start now; extra ones leave after their task
     * (worker.c: beyond_max and the spare keep-alive). */
    while (rc == 0 && atomic_load_explicit(&p->sleep.alive, memory_order_relaxed) < t)
        rc = gather__pool_start_worker(p, t, false);
    /* The monitor also joins the threads that leave after a resize. */
    int mrc = gather__monitor_start(p);
    if (rc == 0)
        rc = mrc;
    gather__unlock(&p->grow_lock);
    /* Idle threads re-read the sizes: the extra ones exit, and a pool
     * allowed to run more tasks takes queued ones. */
    gather__sleep_wake_all(&p->sleep);
    return rc == ENOMEM ? EAGAIN : rc;
}

/* ---- resolve, submit ---------------------------------------------------- */

gather_pool *gather__pool_resolve(const gather_pool *pool, int *err)
{
    if (pool == NULL)
        return gather__default_pool(err);
    if (gather__pool_from_parent(pool)) {
        *err = ESHUTDOWN; /* its threads and locks are the parent's */
        return NULL;
    }
    return (gather_pool *)pool;
}


gather_future *gather__task_new(gather_pool *p, uint8_t kind, gather_fn fn,
                               void *arg, uint32_t refs)
{
    gather_future *f = gather__task_alloc();
    if (f != NULL) {
        gather__future_init(f, kind, refs);
        f->fn = fn;
        f->arg = arg;
        f->pool = p;
        f->lane = GATHER__LANE_NORMAL;
    }
    return f;
}

/* gather__pool_queue() for the calling thread's worker of p, w (or NULL). */
static int queue_task(gather_pool *p, gather__worker *w, gather_future *f,
                      bool counted)
{
    if (w == NULL || f->lane == GATHER__LANE_BLOCKING) {
        /* A blocking task starts on an idle or spare thread at once, from
         * outside or inside alike: not behind its submitter's own work. */
        if (f->lane == GATHER__LANE_BLOCKING)
            gather__blocking_prepare(p);
        return gather__inject_push(p, f, counted, w != NULL); /* wakes under its lock */
    }
    if (counted)
        add_to(&w->submitted, 1); /* before the push: a thief may finish it first */
    if (gather__deque_push_owner(&w->deque, f) != 0) {
        if (counted)
            atomic_store_explicit(&w->submitted,
                                  atomic_load_explicit(&w->submitted, memory_order_relaxed) - 1,
                                  memory_order_relaxed);
        return ENOMEM;
    }
    /* On our own deque: the pool cannot be destroyed while this task runs,
     * so waking after the push is safe. */
    gather__sleep_wake_one(&p->sleep);
    return 0;
}

int gather__pool_queue(gather_pool *p, gather_future *f, bool counted)
{
    return queue_task(p, on_own_thread(p) ? gather__worker_self() : NULL, f,
                      counted);
}

/* gather_submit() once the pool is resolved. */
static int submit_one(gather_pool *p, uint8_t kind, gather_fn fn, void *arg,
                      gather_future **future)
{
    gather__worker *w = on_own_thread(p) ? gather__worker_self() : NULL;
    if (w == NULL && atomic_load_explicit(&p->stopping, memory_order_relaxed))
        return ESHUTDOWN; /* early answer; inject_push decides under the lock */
    gather_future *f = gather__task_new(p, kind, fn, arg, future != NULL ? 2 : 1);
    if (f == NULL)
        return ENOMEM;
    int rc = queue_task(p, w, f, kind != GATHER__CHUNK);
    if (rc != 0) {
        gather__task_free(f);
        return rc;
    }
    /* With a NULL `future` the task may already be finished and freed: f is
     * not touched again below, nor is the pool. */
    if (future != NULL)
        *future = f;
    return 0;
}

int gather_submit(gather_pool *pool, gather_fn fn, void *arg,
                  gather_future **future)
{
    if (future != NULL)
        *future = NULL;
    if (fn == NULL)
        return EINVAL;
    int err = 0;
    gather_pool *p = gather__pool_resolve(pool, &err);
    if (p == NULL)
        return err;
    return submit_one(p, GATHER__TASK, fn, arg, future);
}

int gather__submit_chunk(gather_pool *p, gather_fn fn, void *arg)
{
    return submit_one(p, GATHER__CHUNK, fn, arg, NULL);
}

void gather__pool_count_jobs(gather_pool *p, uint64_t submitted,
                             uint64_t completed, uint64_t cancelled)
{
    gather__worker *w = on_own_thread(p) ? gather__worker_self() : NULL;
    if (w != NULL) {
        add_to(&w->submitted, submitted);
        add_to(&w->completed, completed);
        add_to(&w->cancelled, cancelled);
        return;
    }
    /* Off the pool: jobs are submitted or cancelled here, but completed
     * only by chunks, which run on the pool's workers. */
    (void)completed;
    atomic_fetch_add_explicit(&p->ext_submitted, submitted, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->ext_cancelled, cancelled, memory_order_relaxed);
}

bool gather__pool_has_sleepers(const gather_pool *p)
{
    /* relaxed: a hint for splitting work; a wrong answer costs a split. */
    return atomic_load_explicit(&((gather_pool *)p)->sleep.sleepers,
                                memory_order_relaxed) != 0;
}

int gather_pool_stats_get(const gather_pool *pool, gather_pool_stats *stats)
{
    if (stats == NULL)
        return EINVAL;
    int err = 0;
    gather_pool *p = gather__pool_resolve(pool, &err);
    if (p == NULL)
        return err;
    gather_pool_stats s = {0};
    s.submitted = atomic_load_explicit(&p->ext_submitted, memory_order_relaxed);
    s.cancelled = atomic_load_explicit(&p->ext_cancelled, memory_order_relaxed);
    size_t n;
    gather__worker *const *slot = gather__pool_workers(p, &n);
    for (size_t i = 0; i < n; i++) {
        gather__worker *w = slot[i];
        s.submitted += atomic_load_explicit(&w->submitted, memory_order_relaxed);
        s.completed += atomic_load_explicit(&w->completed, memory_order_relaxed);
        s.cancelled += atomic_load_explicit(&w->cancelled, memory_order_relaxed);
        s.stolen += atomic_load_explicit(&w->stolen, memory_order_relaxed);
    }
    s.threads = atomic_load_explicit(&p->sleep.alive, memory_order_relaxed);
    s.threads_peak = atomic_load_explicit(&p->threads_peak, memory_order_relaxed);
    s.spares_started = atomic_load_explicit(&p->spares_started, memory_order_relaxed);
    *stats = s;
    return 0;
}
