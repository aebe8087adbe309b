/* SPDX-License-Identifier: MIT */
/*
 * shims.h - what the GenMC harnesses need around the real lib/ sources.
 *
 * GenMC runs a program built from the sources it is given, with its own
 * pthread.h, stdatomic.h, stdlib.h and assert.h. The files of lib/ that a
 * harness includes call a few helpers of lib/alloc.c; they are defined here
 * with the same contracts (alloc.c's replaceable allocator and fault hook
 * have nothing to check under the memory model).
 */
#ifndef GATHER_GENMC_SHIMS_H
#define GATHER_GENMC_SHIMS_H

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/*
 * GenMC's pthread.h has mutexes but no condition variables and no
 * pthread_once. lib/internal.h names the types and lib/sleep.c calls the
 * functions, so they are modelled here. A harness never blocks on a
 * condition variable (a parker's token is checked after the joins instead,
 * see sleep_*.c): wait is modelled as a spurious wake-up, which POSIX
 * allows, and signal as nothing beyond the token its caller set under the
 * same mutex.
 */
typedef int pthread_cond_t;
typedef int pthread_condattr_t;
typedef int pthread_once_t;

static inline int pthread_condattr_init(pthread_condattr_t *a)
{
    *a = 0;
    return 0;
}
static inline int pthread_condattr_setclock(pthread_condattr_t *a, clockid_t c)
{
    (void)a;
    (void)c;
    return 0;
}
static inline int pthread_condattr_destroy(pthread_condattr_t *a)
{
    (void)a;
    return 0;
}
static inline int pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *a)
{
    (void)a;
    *c = 0;
    return 0;
}
static inline int pthread_cond_destroy(pthread_cond_t *c)
{
    (void)c;
    return 0;
}
static inline int pthread_cond_signal(pthread_cond_t *c)
{
    (void)c;
    return 0;
}
static inline int pthread_cond_broadcast(pthread_cond_t *c)
{
    (void)c;
    return 0;
}
static inline int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    (void)c;
    pthread_mutex_unlock(m);
    pthread_mutex_lock(m);
    return 0;
}
static inline int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                                         const struct timespec *deadline)
{
    (void)deadline;
    return pthread_cond_wait(c, m);
}
/* Single-threaded use only (the harnesses call it before any thread). */
static inline int pthread_once(pthread_once_t *once, void (*fn)(void))
{
    if (*once == 0) {
        *once = 1;
        fn();
    }
    return 0;
}

#include "internal.h"

/* GenMC's malloc/free: under RC11 it reports a use of freed memory and a
 * double free. */
void *gather__malloc(size_t size)
{
    return malloc(size);
}

/* Under IMM, GenMC 0.10 reports no memory errors at all (its IMM checker
 * has no error checks: no race, no use after free), so a freed block is
 * also made visibly dead: a real allocator hands it out again and it gets
 * overwritten. The only blocks lib/deque.c and lib/sleep.c free are deque
 * rings, so every slot gets FREED_SLOT (relaxed, as the slots are used), a
 * value no taker accepts as an item. */
#define FREED_SLOT ((void *)1)

void gather__free(void *ptr)
{
    gather__deque_buf *ring = ptr;
    if (ring != NULL)
        for (int64_t i = 0; i <= ring->mask; i++)
            atomic_store_explicit(&ring->slot[i], FREED_SLOT, memory_order_relaxed);
    free(ptr);
}

/* As lib/alloc.c: size = a * b + c, false on overflow. */
bool gather__size(size_t a, size_t b, size_t c, size_t *size)
{
    if (b != 0 && a > (SIZE_MAX - c) / b)
        return false;
    *size = a * b + c;
    return true;
}

void gather__lock(pthread_mutex_t *m)
{
    int rc = pthread_mutex_lock(m);
    assert(rc == 0);
    (void)rc;
}

void gather__unlock(pthread_mutex_t *m)
{
    int rc = pthread_mutex_unlock(m);
    assert(rc == 0);
    (void)rc;
}

#endif /* GATHER_GENMC_SHIMS_H */
