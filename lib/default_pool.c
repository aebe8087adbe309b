/* SPDX-License-Identifier: MIT */
/*
 * default_pool.c - the process-wide default pool (what a NULL pool means),
 * its environment variables, and what fork() does to pools.
 *
 * The default pool is created on first use and never destroyed. It is
 * elastic: `threads` from GATHER_THREADS or the CPUs, `max_threads` from
 * GATHER_MAX_THREADS or 512 (blocking.c starts spares for blocked tasks).
 *
 * Lock: default_lock guards the creation of the default pool; it is held
 * across fork() (before_fork), and nothing else is taken under it but what
 * pool creation takes.
 */
#include "internal.h"

#include <stdlib.h>

/* max_threads of the default pool when GATHER_MAX_THREADS says nothing. */
#define DEFAULT_MAX_THREADS 512

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(gather_pool *) default_pool;

_Atomic unsigned gather__fork_generation;
static gather_pool *abandoned_defaults; /* changed only in a forked child */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* ---- fork() ------------------------------------------------------------- */

/*
 * A forked child has one thread: the pools of its parent have no workers
 * there, and their locks may be held by threads that do not exist. So in
 * the child every call on a parent's pool fails (ESHUTDOWN) without
 * touching it, a wait for a parent's future that was not done fails
 * (EDEADLK, wait.c), and the default pool is forgotten, so that the first
 * use in the child creates a new one. The parent's memory stays as it was
 * (the child cannot free what the parent's threads were using); so do its
 * spare threads' and monitor's, which do not exist in the child.
 *
 * A pool remembers the fork generation it was made in; the child's handler
 * bumps the generation. Relaxed everywhere: it only changes while the child
 * is single-threaded, before any thread of the child can read it.
 */
bool gather__pool_from_parent(const gather_pool *p)
{
    return p->generation !=
           atomic_load_explicit(&gather__fork_generation, memory_order_relaxed);
}

/* Hold default_lock across fork(), so the child never inherits it locked
 * by a thread that is gone (halfway through creating the default pool). */
static void before_fork(void)
{
    gather__lock(&default_lock);
}

static void after_fork_in_parent(void)
{
    gather__unlock(&default_lock);
}

static void after_fork_in_child(void)
{
    atomic_store_explicit(&gather__fork_generation,
                          atomic_load_explicit(&gather__fork_generation,
                                               memory_order_relaxed) + 1,
                          memory_order_relaxed);
    /* The parent's default pool stays listed (reachable, for leak
     * checkers): its memory is the parent's state, never reused. */
    gather_pool *old = atomic_load_explicit(&default_pool, memory_order_relaxed);
    if (old != NULL) {
        old->abandoned = abandoned_defaults;
        abandoned_defaults = old;
    }
    atomic_store_explicit(&default_pool, NULL, memory_order_relaxed);
    /* The forking thread may have been a worker of a parent's pool: in
     * the child it is an ordinary thread. */
    gather__worker_forget_thread();
    gather__barrier_after_fork();
    gather__unlock(&default_lock);
}

static void register_fork_handlers(void)
{
    /* Failure (ENOMEM) leaves fork() unprepared; nothing better to do in a
     * pthread_once routine, and pools work the same in this process. */
    (void)pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

void gather__fork_handlers_once(void)
{
    pthread_once(&atfork_once, register_fork_handlers);
}

/* ---- environment -------------------------------------------------------- */

/* A value made only of decimal digits, in 1..max; else 0 ("ignored"). */
static size_t env_count(const char *var, size_t max)
{
    const char *s = getenv(var);
    if (s == NULL || *s == '\0')
        return 0;
    size_t v = 0;
    for (const char *c = s; *c != '\0'; c++) {
        if (*c < '0' || *c > '9')
            return 0;
        v = v * 10 + (size_t)(*c - '0');
        if (v > max)
            return 0;
    }
    return v;
}

/* GATHER_MAX_THREADS for a pool of `threads` (0: the CPUs): a value from
 * threads to 4096, else DEFAULT_MAX_THREADS (at least threads). */
static size_t env_max_threads(size_t threads)
{
    size_t t = threads != 0 ? threads : gather__cpu_count();
    size_t v = env_count("GATHER_MAX_THREADS", GATHER__MAX_SPARE_THREADS);
    if (v >= t)
        return v;
    return t > DEFAULT_MAX_THREADS ? t : DEFAULT_MAX_THREADS;
}

/* ---- the default pool --------------------------------------------------- */

gather_pool *gather__default_pool(int *err)
{
    /* acquire: pairs with the release store below; the pool is fully built. */
    gather_pool *p = atomic_load_explicit(&default_pool, memory_order_acquire);
    if (p != NULL)
        return p;
    /* Before default_lock: a fork() while we hold it must find the
     * handlers that take it (see before_fork). */
    gather__fork_handlers_once();
    gather__lock(&default_lock);
    p = atomic_load_explicit(&default_pool, memory_order_relaxed);
    if (p == NULL) {
        gather_pool_options o = {0};
        o.threads = env_count("GATHER_THREADS", GATHER__MAX_THREADS);
        o.max_threads = env_max_threads(o.threads);
        int rc = gather__pool_create(&p, &o, true);
        if (rc != 0) {
            *err = rc;
            p = NULL;
        } else {
            atomic_store_explicit(&default_pool, p, memory_order_release);
        }
    }
    gather__unlock(&default_lock);
    return p;
}
