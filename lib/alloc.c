/* SPDX-License-Identifier: MIT */
/*
 * alloc.c - the replaceable allocator.
 *
 * DESIGN: every allocation of the library goes through gather__malloc() and
 * gather__free(), which call the pair installed by gather_replace_allocator()
 * (malloc/free by default). The pair may only change before the first pool
 * exists: from then on blocks from one allocator could otherwise reach the
 * other's free. Allocation failures call gather__fault(), an empty function
 * to put a breakpoint on (after SQLite's sqlite3Fault).
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

static void *(*malloc_fn)(size_t) = malloc;
static void (*free_fn)(void *) = free;
/* Set once a pool exists. Release/acquire so a replace that raced a create
 * on another thread (a documented misuse) still sees a consistent answer. */
static atomic_bool frozen;

void gather__fault(void)
{
    /* Intentionally empty: a breakpoint target for allocation failures. */
}

void *gather__malloc(size_t size)
{
    void *p = malloc_fn(size ? size : 1);
    if (p == NULL)
        gather__fault();
    return p;
}

void gather__free(void *ptr)
{
    if (ptr == NULL)
        return;
    int saved = errno; /* a free must not clobber errno (after uv__free) */
    free_fn(ptr);
    errno = saved;
}

/* Is the system allocator installed? Then aligned blocks come from
 * posix_memalign() and start where their pointer does, so a leak checker
 * sees the blocks of a live pool (the default pool, never destroyed) as
 * reachable rather than "possibly lost". The pair cannot change while such
 * a block exists (it is frozen once a pool exists; a failed create frees
 * its blocks first). */
static bool system_allocator(void)
{
    return malloc_fn == malloc && free_fn == free;
}

void *gather__malloc_aligned(size_t size, size_t align)
{
    if (system_allocator()) {
        void *p = NULL;
        if (posix_memalign(&p, align, size ? size : 1) != 0) {
            gather__fault();
            return NULL;
        }
        return p;
    }
    /* The raw pointer is stored just below the aligned block. */
    size_t total;
    if (!gather__size(1, size, align + sizeof(void *), &total))
        return NULL;
    char *raw = gather__malloc(total);
    if (raw == NULL)
        return NULL;
    uintptr_t start = (uintptr_t)(raw + sizeof(void *));
    uintptr_t aligned = (start + align - 1) & ~(uintptr_t)(align - 1);
    ((void **)aligned)[-1] = raw;
    return (void *)aligned;
}

void gather__free_aligned(void *ptr)
{
    if (ptr == NULL)
        return;
    gather__free(system_allocator() ? ptr : ((void **)ptr)[-1]);
}

bool gather__size(size_t a, size_t b, size_t c, size_t *size)
{
    if (b != 0 && a > (SIZE_MAX - c) / b)
        return false;
    *size = a * b + c;
    return true;
}

void gather__allocator_freeze(void)
{
    atomic_store_explicit(&frozen, true, memory_order_release);
}

int gather_replace_allocator(void *(*new_malloc)(size_t),
                             void (*new_free)(void *))
{
    if ((new_malloc == NULL) != (new_free == NULL))
        return EINVAL;
    if (atomic_load_explicit(&frozen, memory_order_acquire))
        return EBUSY;
    malloc_fn = new_malloc ? new_malloc : malloc;
    free_fn = new_free ? new_free : free;
    return 0;
}

void gather__lock(pthread_mutex_t *m)
{
    int rc = pthread_mutex_lock(m);
    if (rc != 0) {
        /* Only EINVAL/EDEADLK/EAGAIN(recursive) exist for a default mutex,
         * all of which mean the mutex is corrupt or misused here. */
        fprintf(stderr, "gather: pthread_mutex_lock failed: %d\n", rc);
        abort();
    }
}

void gather__unlock(pthread_mutex_t *m)
{
    int rc = pthread_mutex_unlock(m);
    if (rc != 0) {
        fprintf(stderr, "gather: pthread_mutex_unlock failed: %d\n", rc);
        abort();
    }
}

const char *gather_version(void)
{
    return GATHER_VERSION_STRING;
}
